"""Bad parameters stop the program before any job (exit 2, the parameter named, nothing written);
a run owns its output directory; ignored settings are warned about."""

import json
import os

import pytest

from bertqa.cli import run_command

from conftest import write_jsonl

WINDOWS = ["--max_seq_length=64", "--doc_stride=24", "--max_query_length=16", "--max_batch_size=8"]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, sample_records, vocab_path, saved_model):
    root = tmp_path_factory.mktemp("preflight")
    write_jsonl(root / "q.jsonl", sample_records[:4])
    (root / "model.onnx").write_bytes(b"not really onnx")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (root / "words.txt").write_text("just\nsome\nwords\n")
    (root / "a_file").write_text("x")
    (root / "folder").mkdir()
    (root / "checkpoint").mkdir()  # a Hugging Face checkpoint as save_pretrained writes it
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (root / "checkpoint" / name).write_text("{}")
    (root / "folder" / "q.jsonl").write_text((root / "q.jsonl").read_text())
    return {"root": str(root), "input": str(root / "q.jsonl"), "model": saved_model(), "vocab": vocab_path}


# (arguments replacing or adding to a good run, the text the message must hold)
BAD = [
    (["--max_seq_lenght=128"], "--max_seq_lenght: not a template parameter or Beam pipeline option; "
                               "did you mean --max_seq_length?"),
    (["--inptu=x.jsonl"], "did you mean --input?"),
    (["--overwrite=false", "--overwrite=true"], "--overwrite: given 2 times; give it once"),
    (["stray"], "'stray': unexpected argument"),
    (["--num_workers=abc"], "--num_workers: invalid int value: 'abc'"),
    (["--null_score_diff_threshold=nan"], "--null_score_diff_threshold=nan: Input should be a finite number"),
    (["--null_score_diff_threshold=-inf"], "--null_score_diff_threshold=-inf: Input should be a finite number"),
    (["--max_answer_length=99999999999999999999999"], "--max_answer_length=99999999999999999999999: Input "
                                                      "should be less than or equal to 4096"),
    (["--max_context_chars=0"], "--max_context_chars=0"),
    (["--overwrite=maybe"], "--overwrite=maybe: Input should be a valid boolean"),
    (["--gpu_type=nvidia-l4", "--gpu_count=2"], "gpu_count=2: a worker's model process drives one GPU, so the "
                                                 "other 1 would sit idle"),
    (["--gpu_type=nvidia-l4", "--gpu_machine_type=n1-standard-8"], "gpu_machine_type=n1-standard-8 cannot take one "
                                                                   "nvidia-l4: use g2-standard-4, 8, 12, 16 or 32"),
    (["--gpu_type=nvidia-tesla-a100", "--gpu_machine_type=a2-highgpu-2g"], "use a2-highgpu-1g"),
    (["--gpu_type=nvidia-tesla-t4", "--disk_size_gb=20"], "disk_size_gb=20: GPU workers need at least 50 GB"),
    (["--gpu_type=nvidia-l4", "--gpu_scope=all_workers", "--machine_type=n1-standard-8"],
     "--machine_type=n1-standard-8 cannot take one nvidia-l4 (gpu_scope=all_workers gives every worker one)"),
    (["--model_path={root}/model.onnx"], "--model_path={root}/model.onnx: is a file; --backend=tensorflow loads "
                                         "a SavedModel directory"),
    (["--model_path={root}/folder"], "--model_path={root}/folder: no SavedModel there"),
    (["--model_path={root}/checkpoint/model.safetensors", "--backend=onnxruntime"],
     "--model_path={root}/checkpoint/model.safetensors: is a Hugging Face checkpoint file: run its directory with "
     "--backend=pytorch --model_path={root}/checkpoint, or export it to ONNX with `bertqa export-onnx "
     "--hf_model={root}/checkpoint --output=model.onnx` for --backend=onnxruntime or tensorrt"),
    (["--model_path={root}/checkpoint/tokenizer.json"], "is a Hugging Face checkpoint file: run its directory"),
    (["--model_path={root}/checkpoint"], "--model_path={root}/checkpoint: is a Hugging Face checkpoint: run its"),
    (["--model_path={root}/missing"], "--model_path={root}/missing: not found"),
    (["--backend=onnxruntime"], "--model_path={model}: is a SavedModel directory; --backend=onnxruntime loads an "
                                ".onnx file"),
    (["--backend=onnxruntime", "--model_path={root}/model.onnx"], "--model_path={root}/model.onnx: cannot be "
                                                                   "loaded with --backend=onnxruntime"),
    (["--backend=tensorrt", "--model_path={root}/model.onnx"], "cannot be loaded with --backend=tensorrt: "
                                                               "RuntimeError: --backend=tensorrt needs the tensorrt"),
    (["--vocab_path={root}/binary.txt"], "--vocab_path={root}/binary.txt: not UTF-8 text"),
    (["--vocab_path={root}/words.txt"], "--vocab_path={root}/words.txt: vocab has no [CLS], [SEP], [UNK] token"),
    (["--vocab_path={root}/folder"], "--vocab_path={root}/folder: not a file"),
    (["--signature_name=nope"], "no signature 'nope'; it has: serving_default"),
    (["--input_names=input_ids=nope"], "input_names maps input_ids to 'nope', which the model does not have"),
    (["--input={root}/folder"], "--input={root}/folder: {root}/folder is a directory; name the files"),
    (["--input={root}/none-*.jsonl"], "--input={root}/none-*.jsonl: no file matches"),
    (["--output={root}/a_file"], "--output={root}/a_file: is a file, not a directory"),
    (["--dead_letter_output={root}/a_file/dead"], "--dead_letter_output={root}/a_file/dead: {root}/a_file is a file"),
    (["--max_seq_length=1024", "--doc_stride=128"], "--max_seq_length=1024: the model fails on a window of 1024 "
                                                    "tokens"),
]


@pytest.mark.parametrize("changes, message", BAD, ids=[" ".join(c)[:40] for c, _ in BAD])
def test_a_bad_parameter_stops_before_the_job_naming_it(changes, message, paths, tmp_path, capsys):
    given = {"input": paths["input"], "output": str(tmp_path / "out"), "model_path": paths["model"],
             "vocab_path": paths["vocab"]}
    extra = []
    for change in (c.format(**paths) for c in changes):
        name = change[2:].split("=", 1)[0]
        if change.startswith("--") and name in given:
            given[name] = change.split("=", 1)[1]
        else:
            extra.append(change)
    windows = [w for w in WINDOWS if not any(e.startswith(w.split("=")[0] + "=") for e in extra)]
    code = run_command([f"--{name}={value}" for name, value in given.items()] + windows + extra)
    error = capsys.readouterr().err
    assert code == 2, error
    assert message.format(**paths) in error
    assert "Traceback" not in error and error.startswith("error: ")
    assert not os.path.exists(tmp_path / "out")


def job(paths, output, *extra):
    return run_command([f"--input={paths['input']}", f"--output={output}", f"--model_path={paths['model']}",
                        f"--vocab_path={paths['vocab']}", *WINDOWS, *extra])


def test_a_run_owns_its_output_directory(paths, tmp_path, capsys):
    output = tmp_path / "out"
    assert job(paths, output) == 0
    first = {path: (output / path).read_bytes() for path in ("summary.json", "predictions.json")}
    capsys.readouterr()

    assert job(paths, output) == 2  # a second run into the same directory is refused, nothing touched
    error = capsys.readouterr().err
    assert f"--output={output}: holds" in error and "--overwrite=true" in error
    assert all((output / path).read_bytes() == data for path, data in first.items())

    stale = output / "predictions-00007-of-00009.jsonl"
    stale.write_text('{"id": "stale"}\n')
    (output / "notes.txt").write_text("mine")
    assert job(paths, output, "--overwrite=true", "--precision=fp32", "--gpu_machine_type=g2-standard-8") == 0
    error = capsys.readouterr().err
    assert ("warning: --precision has no effect with --backend=tensorflow (TensorRT and PyTorch only: the model file "
            "runs in its own precision)") in error
    assert "warning: --gpu_machine_type has no effect without --gpu_type" in error
    assert "deleted" in error and not stale.exists() and (output / "notes.txt").read_text() == "mine"
    summary = json.loads((output / "summary.json").read_text())
    written = sorted(str(p) for p in output.rglob("*.json*"))  # the summary names itself too
    assert summary["outputs"] == written and len(written) >= 4


def test_an_interrupted_runs_leftovers_are_an_earlier_run_and_overwrite_clears_every_place(paths, tmp_path, capsys):
    output = tmp_path / "out"
    # What a run killed while writing leaves: Beam's temporary shards (one folder empty), a .partial summary, and
    # the dead letters of an earlier run in the output's own dead_letter/ while this run sends its own elsewhere.
    (output / "beam-temp-predictions-1f2e").mkdir(parents=True)
    (output / "beam-temp-predictions-1f2e" / "a1b2.predictions.jsonl").write_text('{"id": "half"}\n')
    (output / "dead_letter" / "beam-temp-dead_letter-9c").mkdir(parents=True)
    (output / "summary.json.partial").write_text("{")
    (output / "dead_letter" / "dead_letter-00000-of-00001.jsonl").write_text('{"stage": "parse"}\n')
    assert job(paths, output, f"--dead_letter_output={tmp_path / 'letters'}") == 2
    assert "holds 5 output file(s) of an earlier run" in capsys.readouterr().err
    assert job(paths, output, f"--dead_letter_output={tmp_path / 'letters'}", "--overwrite=true") == 0
    left = sorted(str(path.relative_to(output)) for path in output.rglob("*"))
    assert left == ["dead_letter", "predictions-00000-of-00001.jsonl", "predictions.json", "summary.json"]


def test_overwriting_deletes_the_summary_first(monkeypatch, tmp_path):
    from bertqa.io import outputs

    deleted = []
    monkeypatch.setattr(outputs.FileSystems, "delete", lambda paths: deleted.append(list(paths)))
    outputs.remove_outputs(["o/predictions-00000-of-00001.jsonl", "o/summary.json", "o/beam-temp-predictions-1",
                            "o/beam-temp-predictions-1/x.jsonl", "o/predictions.json"])
    assert deleted == [["o/summary.json"], ["o/predictions.json", "o/predictions-00000-of-00001.jsonl",
                                             "o/beam-temp-predictions-1/x.jsonl", "o/beam-temp-predictions-1"]]


@pytest.mark.parametrize("changes, message", [
    (["--output={root}/run?"], "--output={root}/run?: Value error, an output location is a path, not a pattern: it "
                               "holds '?'"),
    (["--dead_letter_output={root}/letters[1]"], "an output location is a path, not a pattern: it holds '['"),
    (["--input={root}/**", "--output={root}/runs/one"], "--input={root}/**: matches files this run writes "
                                                        "({root}/runs/one/predictions-00000-of-00001.jsonl): it would "
                                                        "read an earlier run's outputs as questions"),
    (["--input={root}/folder/*.jsonl", "--output={root}/folder"], "matches files this run writes ({root}/folder/"
                                                                    "predictions-00000-of-00001.jsonl)"),
])
def test_output_locations_are_paths_that_the_input_does_not_cover(changes, message, paths, tmp_path, capsys):
    root = paths["root"]
    args = {"input": paths["input"], "output": str(tmp_path / "fine")}
    for change in changes:
        name, value = change[2:].split("=", 1)
        args[name] = value.format(root=root)
    assert run_command([f"--{name}={value}" for name, value in args.items()] + [
        f"--model_path={paths['model']}", f"--vocab_path={paths['vocab']}", *WINDOWS]) == 2
    assert message.format(root=root) in capsys.readouterr().err
    assert not os.path.exists(os.path.join(root, "runs")) and os.listdir(os.path.join(root, "folder")) == ["q.jsonl"]


def test_a_pipe_or_device_as_input_is_refused_before_the_job(paths, tmp_path, capsys):
    fifo = tmp_path / "questions.fifo"
    os.mkfifo(fifo)
    for special in (str(fifo), "/dev/null"):
        assert run_command([f"--input={special}", f"--output={tmp_path / 'out'}", f"--model_path={paths['model']}",
                            f"--vocab_path={paths['vocab']}", *WINDOWS]) == 2
        assert (f"--input={special}: {special} is not a regular file (a pipe, device or socket): the job's workers "
                "read their input as files") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_symbolic_link_to_nothing_among_the_inputs_is_refused_naming_it(paths, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "real.jsonl").write_text(open(paths["input"]).read())
    os.symlink(tmp_path / "in" / "real.jsonl", tmp_path / "in" / "alias.jsonl")  # a good link is read
    os.symlink(tmp_path / "in" / "gone.jsonl", tmp_path / "in" / "broken.jsonl")
    args = [f"--output={tmp_path / 'out'}", f"--model_path={paths['model']}", f"--vocab_path={paths['vocab']}",
            *WINDOWS]
    assert run_command([f"--input={tmp_path}/in/*.jsonl", *args]) == 2
    assert (f"{tmp_path}/in/broken.jsonl is a symbolic link to nothing (its target is missing, or links loop)"
            in capsys.readouterr().err)
    os.remove(tmp_path / "in" / "broken.jsonl")
    os.symlink(tmp_path / "in" / "loop.jsonl", tmp_path / "in" / "loop.jsonl")
    assert run_command([f"--input={tmp_path}/in/**", *args]) == 2
    assert f"{tmp_path}/in/loop.jsonl is a symbolic link to nothing" in capsys.readouterr().err
