"""--backend=pytorch: a Hugging Face checkpoint of any of the architectures people serve, run as it is (no export):
the same answers as ONNX Runtime on its export, on two worker processes sharing one model, from gs://, and every
checkpoint it cannot run refused before the job with the reason."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil

import numpy as np
import pytest

from bertqa.cli import main as bertqa_main
from bertqa.qa.decoding import decode_answers
from bertqa.demo import data
from bertqa.io.tokenizer_files import TokenizerSpec
from bertqa.qa.windows import Featurizer, WindowSettings

from conftest import DECODE, write_jsonl
from hf_checkpoints import ARCHITECTURES, save_checkpoint

torch = pytest.importorskip("torch", reason="the hf extra (torch, transformers) is not installed")
transformers = pytest.importorskip("transformers")
# One test process builds this module's checkpoints and exports once (`make test` runs with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("pytorch-checkpoints")

SETTINGS = WindowSettings(max_seq_length=128, doc_stride=40, max_query_length=32)
WINDOW_ARGS = ["--max_seq_length=128", "--doc_stride=40", "--max_query_length=32", "--max_batch_size=8"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, vocab_path):
    """`checkpoint(kind)`: the directory of a tiny checkpoint of that architecture, built once per module."""

    @functools.lru_cache(maxsize=None)
    def build(kind: str, positions: int = 512) -> str:
        directory = tmp_path_factory.mktemp(f"{kind}-{positions}")
        save_checkpoint(kind, directory, vocab_path, positions)
        return str(directory)

    return build


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(data.generate(seed=5, passages=12))


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    """`exported(kind)`: `bertqa export-onnx --hf_model` of that checkpoint (model.onnx with its tokenizer.json),
    once per module: PyTorch's exporter takes seconds a model."""

    @functools.lru_cache(maxsize=None)
    def export(kind: str) -> str:
        output = tmp_path_factory.mktemp(f"{kind}-onnx") / "model.onnx"
        assert bertqa_main(["export-onnx", f"--hf_model={checkpoint(kind)}", f"--output={output}"]) == 0
        return str(output)

    return export


def results(spec, tokenizer_dir: str, records):
    """The answers and the packed logits of a list of questions through the model step, as the job runs them."""
    from bertqa.backends.base import QAModelHandler

    featurizer = Featurizer(TokenizerSpec(tokenizer_dir, wordpiece=False).load(), SETTINGS)
    questions = [featurizer.featurize(r, featurizer.question_ids(r["question"]),
                                      featurizer.tokenize_passage(r["context"])) for r in records]
    handler = QAModelHandler(spec, SETTINGS.max_seq_length, max_batch_size=8)
    result = handler.infer_questions(questions, handler.load_model())
    assert result.failures == [None] * len(records)
    answers = decode_answers(result.packed_windows(range(len(records))), [r["context"] for r in records],
                             [q.passage.offsets for q in questions], DECODE)
    return answers, result.logits


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_pytorch_answers_equal_onnxruntimes_on_the_exported_file(kind, checkpoint, exported, records, capsys):
    from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec
    from bertqa.backends.pytorch import PyTorchModelSpec

    onnx_path = exported(kind)
    capsys.readouterr()
    torch_answers, torch_logits = results(PyTorchModelSpec(checkpoint(kind), "fp32"), checkpoint(kind), records)
    onnx_answers, onnx_logits = results(OnnxRuntimeModelSpec(onnx_path), os.path.dirname(onnx_path), records)  # its own
    np.testing.assert_allclose(torch_logits, onnx_logits, atol=1e-4)
    assert [a.text for a in torch_answers] == [a.text for a in onnx_answers]
    assert sum(1 for a in torch_answers if a.text) >= len(records) // 2  # real spans compared, not only ""


def run_job(tmp_path, name, *args) -> dict:
    output = tmp_path / name
    assert bertqa_main(["run", f"--input={tmp_path}/q.jsonl", f"--output={output}", *WINDOW_ARGS, *args]) == 0
    return {"predictions": json.loads((output / "predictions.json").read_text()),
            "summary": json.loads((output / "summary.json").read_text())}


def test_a_roberta_job_on_two_processes_sharing_one_model_answers_as_its_onnx_export(
        checkpoint, exported, records, tmp_path, capsys):
    write_jsonl(tmp_path / "q.jsonl", records)
    directory = checkpoint("roberta")
    shared = run_job(tmp_path, "pytorch", f"--model_path={directory}", "--backend=pytorch", "--gpu_type=nvidia-l4",
                     "--direct_num_workers=2", "--direct_running_mode=multi_processing")
    onnx_path = exported("roberta")
    onnx = run_job(tmp_path, "onnx", f"--model_path={onnx_path}", "--backend=onnxruntime",
                   f"--tokenizer_path={os.path.dirname(onnx_path)}")
    assert shared["predictions"] == onnx["predictions"] and len(shared["predictions"]) == len(records)
    assert shared["summary"]["dead_lettered"] == 0 and shared["summary"]["timing"]["model_windows"] > len(records)


def test_a_gs_checkpoint_is_copied_once_per_machine_with_only_the_weights_it_loads(bucket, checkpoint, records,
                                                                                     tmp_path, capsys):
    from bertqa.backends.pytorch import PyTorchModelSpec, checkpoint_files
    from bertqa.io.files import localize_dir

    directory = checkpoint("deberta-v2")
    for name in os.listdir(directory):
        bucket.blob(f"ckpt/{name}").upload_from_filename(os.path.join(directory, name))
    # What hub checkpoints carry besides: the same weights for other frameworks, and an ONNX export.
    for extra in ("pytorch_model.bin", "tf_model.h5", "onnx/model.onnx"):
        bucket.blob(f"ckpt/{extra}").upload_from_string(b"not loaded")
    first = localize_dir("gs://qa/ckpt", checkpoint_files)
    assert sorted(os.listdir(first)) == sorted(os.listdir(directory))
    stamps = {name: os.stat(os.path.join(first, name)).st_mtime_ns for name in os.listdir(first)}
    assert localize_dir("gs://qa/ckpt", checkpoint_files) == first  # the second process of a machine
    assert {name: os.stat(os.path.join(first, name)).st_mtime_ns for name in os.listdir(first)} == stamps

    bucket.blob("q.jsonl").upload_from_string("".join(json.dumps(r) + "\n" for r in records[:8]))
    assert bertqa_main(["run", "--input=gs://qa/q.jsonl", "--output=gs://qa/out", "--model_path=gs://qa/ckpt",
                        "--backend=pytorch", *WINDOW_ARGS]) == 0
    summary = json.loads(bucket.blob("out/summary.json").download_as_bytes())
    assert summary["predicted"] == 8 and summary["dead_lettered"] == 0
    assert PyTorchModelSpec("gs://qa/ckpt").load().predict(*[np.ones((1, 8), np.int32)] * 3)[0].shape == (1, 8)


def preflight_error(capsys, *args) -> str:
    assert bertqa_main(["run", "--input=unused.jsonl", "--output=unused", *args]) == 2
    return capsys.readouterr().err


def test_what_pytorch_cannot_run_is_refused_before_the_job_naming_why(checkpoint, records, tmp_path, capsys,
                                                                       saved_model, vocab_path):
    write_jsonl(tmp_path / "q.jsonl", records[:2])
    base = [f"--input={tmp_path}/q.jsonl", f"--output={tmp_path}/out", "--backend=pytorch", *WINDOW_ARGS]
    roberta = checkpoint("roberta")

    def refused(*args) -> str:
        assert bertqa_main(["run", *base, *args]) == 2
        return capsys.readouterr().err

    if not torch.cuda.is_available():
        assert "--precision=fp16 needs a GPU, and PyTorch sees none on this machine" in refused(
            f"--model_path={roberta}", "--precision=fp16")
    assert "is a SavedModel directory; --backend=pytorch loads a Hugging Face checkpoint" in refused(
        f"--model_path={saved_model()}", f"--vocab_path={vocab_path}")
    assert "no Hugging Face checkpoint there (no config.json)" in refused(f"--model_path={tmp_path}",
                                                                          f"--vocab_path={vocab_path}")
    # Another model's tokenizer, with more tokens than this model embeds.
    assert "embeds" in refused(f"--model_path={checkpoint('bert')}", f"--tokenizer_path={roberta}")
    # A position table of 128 rows: RoBERTa numbers positions from 2, so 126 tokens fit, and windows are padded
    # to multiples of 64.
    short = checkpoint("roberta", 126)
    error = refused(f"--model_path={short}")
    assert "--max_seq_length=128: the model fails on a window of 128 tokens" in error
    assert "the longest it takes is 64 tokens" in error
    # One message gives a whole set of window settings (RoBERTa's 4 special tokens counted), and they work.
    fitting = "--max_seq_length=64 --max_query_length=16 --doc_stride=22"
    assert error.rstrip().endswith(f"with windows that long: {fitting}")
    assert bertqa_main(["run", f"--input={tmp_path}/q.jsonl", f"--output={tmp_path}/fitting", "--backend=pytorch",
                        f"--model_path={short}", *fitting.split()]) == 0
    capsys.readouterr()
    # A base model (no fine-tuned QA head): transformers would start the head at random and answer at random.
    headless = tmp_path / "base"
    transformers.AutoModel.from_pretrained(roberta).save_pretrained(headless)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(roberta, name), headless / name)
    error = refused(f"--model_path={headless}")
    assert "it has no question-answering head, so it is a base model" in error and "qa_outputs.weight" in error
    assert bertqa_main(["export-onnx", f"--hf_model={headless}", f"--output={tmp_path / 'base.onnx'}"]) == 1
    assert "it has no question-answering head" in capsys.readouterr().err
    # A tokenizer.json whose post-processor adds no [CLS]/<s>: nowhere to read the "no answer" score.
    bare = tmp_path / "bare"
    shutil.copytree(roberta, bare)
    tokenizer = json.loads((bare / "tokenizer.json").read_text())
    tokenizer["post_processor"] = None
    (bare / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert "adds no special token before the question" in refused(f"--model_path={bare}")
    assert not (tmp_path / "out").exists()


def test_token_ids_outside_the_models_vocabulary_are_refused_before_the_call(checkpoint):
    from bertqa.backends.pytorch import PyTorchQAModel

    model = PyTorchQAModel(checkpoint("bert"), "fp32")
    ids = np.full((1, 8), 10_000, np.int32)  # on a GPU: a device-side assert that breaks every later call
    with pytest.raises(ValueError, match="token id 10000 is outside the model's vocabulary of"):
        model.predict(ids, np.ones_like(ids), np.zeros_like(ids))


def test_fp16_and_bf16_models_must_pass_the_accuracy_gate_against_fp32(checkpoint, monkeypatch):
    from bertqa.backends import pytorch
    from bertqa.backends.accuracy import AccuracyGate, AccuracyGateError

    # bf16 runs on this CPU too: the gate's code is the GPU's, on a model whose random logits are near-ties.
    monkeypatch.setattr(pytorch, "torch_dtype", lambda precision, device: {
        "bf16": torch.bfloat16, "fp32": torch.float32}[precision])
    directory = checkpoint("xlm-roberta")
    gate = AccuracyGate(TokenizerSpec(directory, wordpiece=False), SETTINGS, 8, DECODE, max_changed_spans=0.0)
    with pytest.raises(AccuracyGateError, match="the PyTorch bf16 model moves answers too far from the fp32 model"):
        pytorch.PyTorchModelSpec(directory, "bf16", gate=gate).load()
    accepted = pytorch.PyTorchModelSpec(directory, "bf16", gate=dataclasses.replace(gate, max_changed_spans=1.0))
    assert accepted.load().dtype == torch.bfloat16


def test_calls_in_flight_are_bounded_whatever_the_number_of_threads(checkpoint):
    import threading
    import time

    from bertqa.backends.pytorch import PyTorchQAModel

    model = PyTorchQAModel(checkpoint("bert"), "fp32")
    forward, running, most = model._model, [0], [0]
    lock = threading.Lock()

    def slow_forward(**inputs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return forward(**inputs)

    model._model = slow_forward
    ids = np.full((2, 16), 7, np.int32)
    threads = [threading.Thread(target=model.predict, args=(ids, np.ones_like(ids), np.zeros_like(ids)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1  # on the CPU one call at a time (two on a GPU): each holds its batch's activations


def test_another_models_larger_tokenizer_is_refused_for_an_onnx_model_too(checkpoint, exported, records, tmp_path,
                                                                          capsys):
    write_jsonl(tmp_path / "q.jsonl", records[:2])
    onnx_path = exported("bert")  # a 600-token WordPiece model
    capsys.readouterr()
    assert bertqa_main(["run", f"--input={tmp_path}/q.jsonl", f"--output={tmp_path}/out", f"--model_path={onnx_path}",
                        "--backend=onnxruntime", f"--tokenizer_path={checkpoint('roberta')}", *WINDOW_ARGS]) == 2
    error = capsys.readouterr().err
    assert f"--tokenizer_path={checkpoint('roberta')}: the tokenizer's largest token id, 999, fails in the model" in error
    assert "it is not this model's tokenizer" in error and not (tmp_path / "out").exists()
