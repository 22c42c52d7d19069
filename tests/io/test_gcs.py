"""gs:// end to end against a Cloud Storage emulator started here on a free localhost port."""

import json
import os

import pytest
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from bertqa.io import inputs
from bertqa.cli import run_command

from conftest import write_jsonl

WINDOWS = ["--max_seq_length=64", "--doc_stride=24", "--max_query_length=16", "--max_batch_size=8"]


def upload(bucket, local: str, name: str) -> str:
    paths = [local] if os.path.isfile(local) else [os.path.join(d, f) for d, _, fs in os.walk(local) for f in fs]
    for path in paths:
        bucket.blob(name + path[len(local):]).upload_from_filename(path)
    return f"gs://qa/{name}"


def test_gs_paths_give_the_same_answers_and_the_same_checks_as_local_ones(bucket, tmp_path, sample_records,
                                                                          saved_model, vocab_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setattr(inputs, "MIN_PART_BYTES", 1000)  # the input is read in parts: seeks in gs:// files
    write_jsonl(tmp_path / "q.jsonl", sample_records[:8])
    local = [f"--input={tmp_path}/q.jsonl", f"--output={tmp_path}/out", f"--model_path={saved_model()}",
             f"--vocab_path={vocab_path}", *WINDOWS]
    assert run_command(local) == 0
    remote = {"input": upload(bucket, str(tmp_path / "q.jsonl"), "in/q.jsonl").replace("q.jsonl", "*.jsonl"),
              "output": "gs://qa/out", "model_path": upload(bucket, saved_model(), "model"),
              "vocab_path": upload(bucket, vocab_path, "vocab.txt")}

    (uploaded,) = FileSystems.match([remote["input"]])[0].metadata_list
    assert len(list(inputs.file_parts(fileio.ReadableFile(uploaded), "auto"))) > 2

    def run(**changes):
        return run_command([f"--{name}={value}" for name, value in {**remote, **changes}.items()] + WINDOWS)

    assert run() == 0
    expected = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert json.loads(bucket.blob("out/predictions.json").download_as_bytes()) == expected
    summary = json.loads(bucket.blob("out/summary.json").download_as_bytes())
    assert summary["predicted"] == 8 and "gs://qa/out/predictions.json" in summary["outputs"]
    capsys.readouterr()

    for changes, message in [
        ({}, "--output=gs://qa/out: holds"),
        ({"input": "gs://qa/in/none-*.jsonl"}, "--input=gs://qa/in/none-*.jsonl: no file matches"),
        ({"model_path": "gs://qa/nomodel", "output": "gs://qa/out2"}, "--model_path=gs://qa/nomodel: no SavedModel"),
        ({"vocab_path": "gs://qa/none.txt", "output": "gs://qa/out2"}, "--vocab_path=gs://qa/none.txt: not found"),
        ({"output": "gs://no-such-bucket/out"}, "--output=gs://no-such-bucket/out: bucket gs://no-such-bucket does "
                                                "not exist"),
    ]:
        assert run(**changes) == 2
        assert message in capsys.readouterr().err
    assert not list(bucket.list_blobs(prefix="out2"))
    assert run(overwrite="true") == 0
    assert json.loads(bucket.blob("out/predictions.json").download_as_bytes()) == expected


def test_a_gs_model_file_is_copied_once_per_machine_and_again_when_it_changes(bucket):
    # Every SDK process of a worker loads the model: one copy on the machine's disk, not one per process.
    from bertqa.io.files import localize_file

    bucket.blob("models/model.onnx").upload_from_string(b"first version")
    first = localize_file("gs://qa/models/model.onnx")
    assert first.endswith("/model.onnx") and open(first, "rb").read() == b"first version"
    stamp = os.stat(first).st_mtime_ns
    assert localize_file("gs://qa/models/model.onnx") == first and os.stat(first).st_mtime_ns == stamp
    bucket.blob("models/model.onnx").upload_from_string(b"second, longer version")
    second = localize_file("gs://qa/models/model.onnx")
    assert second != first and open(second, "rb").read() == b"second, longer version"
    with pytest.raises(FileNotFoundError, match="no file gs://qa/models/missing.onnx"):
        localize_file("gs://qa/models/missing.onnx")


def test_compressed_inputs_and_questions_files_on_gcs_read_as_local_ones(bucket, tmp_path, sample_records):
    # Python's decompressors read through Beam's GCS reader as through a local file.
    import bz2
    import gzip

    from bertqa.io.documents import load_questions

    from test_inputs import read_file

    write_jsonl(tmp_path / "q.jsonl", sample_records)
    expected = read_file(tmp_path / "q.jsonl")
    assert len(expected) == len(sample_records) > 10
    for suffix, compress in ((".gz", gzip.compress), (".bz2", bz2.compress)):
        bucket.blob(f"in/q.jsonl{suffix}").upload_from_string(compress((tmp_path / "q.jsonl").read_bytes()))
        assert read_file(f"gs://qa/in/q.jsonl{suffix}") == expected
        bucket.blob(f"questions.txt{suffix}").upload_from_string(compress(b"Who?\nWhere?\n"))
        assert load_questions(f"gs://qa/questions.txt{suffix}").questions == (("q1", "Who?"), ("q2", "Where?"))
