"""Writing outputs: predictions.json streamed from the row shards, with bounded memory."""

import json
import subprocess
import sys

import pytest

from bertqa.io.outputs import json_line, write_predictions_json


def write_shards(directory, rows_per_shard):
    paths = []
    for index, rows in enumerate(rows_per_shard):
        path = directory / f"predictions-{index:05d}-of-{len(rows_per_shard):05d}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(json_line(row) + "\n" for row in rows)
        paths.append(str(path))
    return paths


def test_predictions_json_is_the_map_of_every_row_however_the_strings_look(tmp_path):
    rows = [{"id": "a", "answer": "Ulm", "score": 1.5}, {"id": "b", "answer": ""},
            {"id": "c\u2028d", "answer": "line\u2029break \u0085 \"quoted\" \\ é 😀"},
            {"id": "e", "answer": "\udc80 byte kept as an escape"},
            {"id": 'f", "answer": "not the answer', "answer": "the answer"},
            {"answer": "fields in another order", "id": "g"}]
    shards = write_shards(tmp_path, [rows[:2], [], rows[2:]])
    path = write_predictions_json(shards, str(tmp_path / "predictions.json"))
    text = (tmp_path / "predictions.json").read_text(encoding="utf-8")
    assert path.endswith("predictions.json") and not (tmp_path / "predictions.json.partial").exists()
    assert json.loads(text) == {row["id"]: row["answer"] for row in rows}
    assert len(text.splitlines()) == len(rows) + 2  # one answer per line, as a reader scrolling it expects
    write_predictions_json(write_shards(tmp_path / "..", [[]]), str(tmp_path / "empty.json"))
    assert json.loads((tmp_path / "empty.json").read_text()) == {}


MEASURE = """
import resource, sys, time
from bertqa.io.outputs import write_predictions_json
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
write_predictions_json(sys.argv[2:], sys.argv[1])
elapsed = time.perf_counter() - started
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, elapsed)
"""


def test_a_million_answers_are_written_in_bounded_memory(tmp_path):
    per_shard = 250_000
    shards = write_shards(tmp_path, [
        [{"id": f"q{shard}-{n:09d}", "answer": f"answer number {n}", "score": 0.5, "probability": 0.25,
          "start_char": n, "end_char": n + 9, "null_score_diff": -1.0} for n in range(per_shard)]
        for shard in range(4)])
    target = tmp_path / "predictions.json"
    # A process of its own: its peak resident memory, less what it held before writing, is the writer's.
    done = subprocess.run([sys.executable, "-c", MEASURE, str(target), *shards], capture_output=True, text=True,
                          check=True)
    growth_kib, elapsed = done.stdout.split()
    size = target.stat().st_size
    print(f"\n1,000,000 answers: predictions.json {size / 1e6:.1f} MB in {float(elapsed):.1f} s, peak resident "
          f"memory grew {int(growth_kib) / 1024:.1f} MiB")
    assert int(growth_kib) < 50 * 1024  # a dict of all of them would take about 176 MB (issue 13)
    answers = json.loads(target.read_text(encoding="utf-8"))
    assert len(answers) == 4 * per_shard and answers["q3-000249999"] == "answer number 249999"


def test_the_summary_holds_no_line_break_inside_a_string(tmp_path):
    from bertqa.io.outputs import write_json

    path = write_json(str(tmp_path / "summary.json"), {"outputs": ["/runs/a\u2028b/predictions.json"],
                                                        "reason": "x\u0085y\u2029z", "n": 1})
    text = (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert len(text.splitlines()) == text.count("\n") + 1  # splitlines sees only the JSON's own line breaks
    assert json.loads(text)["outputs"] == ["/runs/a\u2028b/predictions.json"] and path.endswith("summary.json")


def test_on_cloud_storage_outputs_are_written_in_place_whole_or_not_at_all(bucket, monkeypatch):
    # A Cloud Storage object appears only once its upload completes: no temporary name, and no rename (which
    # there is a full copy of the object on the server).
    from apache_beam.io.filesystems import FileSystems

    from bertqa.io.outputs import write_json

    def no_rename(sources, destinations):
        raise AssertionError(f"renamed {sources} on Cloud Storage")

    monkeypatch.setattr(FileSystems, "rename", no_rename)
    assert write_json("gs://qa/out/summary.json", {"answered": 3}) == "gs://qa/out/summary.json"
    assert json.loads(bucket.blob("out/summary.json").download_as_bytes()) == {"answered": 3}
    bucket.blob("out/predictions-00000-of-00001.jsonl").upload_from_string(json_line({"id": "q", "answer": "Ulm"}) + "\n")
    write_predictions_json(["gs://qa/out/predictions-00000-of-00001.jsonl"], "gs://qa/out/predictions.json")
    assert json.loads(bucket.blob("out/predictions.json").download_as_bytes()) == {"q": "Ulm"}
    assert not [blob.name for blob in bucket.list_blobs() if blob.name.endswith(".partial")]
    # A write that fails halfway leaves no object behind.
    with pytest.raises(ValueError):
        write_json("gs://qa/out/broken.json", {"value": float("nan")})  # strict JSON: NaN is refused
    assert not bucket.blob("out/broken.json").exists()
