"""The developer commands take the job's parameters as `bertqa run` does: refused with run's messages before any
work, and their accuracy gate is the one a job with those parameters has."""

import types

import pytest

from bertqa.cli import main as bertqa_main
from bertqa.params import build_params
from bertqa.tools import export_onnx

WRONG = ((["--doc_stride=1000"], "doc_stride=1000 is larger than the passage part of a window"),
         (["--max_seq_length=70000"], "--max_seq_length=70000: Input should be less than"),
         (["--max_changed_spans=2"], "--max_changed_spans=2: Input should be less than or equal to 1"),
         (["--n_best_size=0"], "--n_best_size=0: Input should be greater than or equal to 1"))


@pytest.mark.parametrize("wrong, expected", WRONG, ids=[wrong[0] for wrong, _ in WRONG])
def test_int8_export_and_benchmark_refuse_what_bertqa_run_refuses_before_any_work(wrong, expected, tmp_path, capsys,
                                                                                  vocab_path):
    assert bertqa_main(["export-onnx", f"--onnx={tmp_path / 'none.onnx'}", "--quantize=int8",
                        f"--output={tmp_path / 'int8.onnx'}", f"--vocab_path={vocab_path}", *wrong]) == 2
    assert expected in capsys.readouterr().err
    assert bertqa_main(["benchmark", f"--onnx={tmp_path / 'none.onnx'}", f"--vocab_path={vocab_path}",
                        f"--input={tmp_path / 'q.jsonl'}", f"--output={tmp_path / 'bench'}", *wrong]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()  # refused before it wrote anything


def test_the_int8_gate_is_the_jobs_with_the_same_parameters(tmp_path, capsys, vocab_path, onnx_model, monkeypatch):
    gates = []

    def quantize(fp32_path, int8_path, gate):
        gates.append(gate)
        return types.SimpleNamespace(describe=lambda: "as checked")

    monkeypatch.setattr(export_onnx, "quantize_int8", quantize)
    settings = {"max_seq_length": "64", "doc_stride": "20", "max_query_length": "16", "max_batch_size": "4",
                "max_answer_length": "9", "n_best_size": "7", "max_changed_spans": "0.03"}
    assert bertqa_main(["export-onnx", f"--onnx={onnx_model()}", "--quantize=int8", f"--output={tmp_path / 'q.onnx'}",
                        f"--vocab_path={vocab_path}", *(f"--{name}={value}" for name, value in settings.items())]) == 0
    job = build_params({"input": "q.jsonl", "output": "out", "model_path": onnx_model(), "backend": "onnxruntime",
                        "vocab_path": vocab_path, **settings})
    [gate] = gates
    assert (gate.window_settings, gate.decode_settings, gate.max_batch_size, gate.max_changed_spans) == (
        job.window_settings, job.decode_settings, 4, 0.03)
    assert gate.tokenizer == job.tokenizer
