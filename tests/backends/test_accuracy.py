"""The accuracy gate on the bundled demo model (a trained QA model): same model, fp16-rounded weights, damage."""

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from bertqa.backends.accuracy import SAMPLE_WINDOWS, AccuracyGate, AccuracyGateError
from bertqa.backends.tensorrt import PolygraphyQAModel, fp32_reference, onnx_io
from bertqa.cli import main as bertqa_main
from bertqa.demo.train import DEMO_DECODE, DEMO_WINDOWS
from bertqa.io.tokenizer_files import TokenizerSpec


ROOT = Path(__file__).resolve().parents[2]
GATE = AccuracyGate(TokenizerSpec(str(ROOT / "demo" / "vocab.txt")), DEMO_WINDOWS, max_batch_size=16,
                    decode_settings=DEMO_DECODE, max_changed_spans=0.02)


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("demo") / "demo.onnx")
    assert bertqa_main(["export-onnx", f"--saved_model={ROOT / 'demo' / 'model'}", f"--output={path}"]) == 0
    return path


def changed_weights(source: str, target: str, change) -> str:
    """`source` with every float weight passed through `change`."""
    model = onnx.load(source)
    for initializer in model.graph.initializer:
        weights = numpy_helper.to_array(initializer)
        if weights.dtype == np.float32 and weights.size > 1:
            initializer.CopyFrom(numpy_helper.from_array(change(weights).astype(np.float32), initializer.name))
    onnx.save(model, target)
    return target


def onnx_runner_model(path: str) -> PolygraphyQAModel:
    """The candidate through Polygraphy's ONNX-Runtime runner: the same code path as a TensorRT engine."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    return PolygraphyQAModel(lambda: OnnxrtRunner(SessionFromOnnx(path)), onnx_io(path)[1], {}, contexts=1)


def test_the_sample_is_real_text_windows_of_the_jobs_settings():
    questions = GATE.sample()
    windows = [window for question in questions for window in question.windows()]
    assert len(windows) == SAMPLE_WINDOWS
    assert max(w.length for w in windows) == DEMO_WINDOWS.max_seq_length  # long passages fill whole windows
    assert len({w.question_id for w in windows}) > 10


def test_the_sample_is_fixed_text_that_does_not_follow_the_demo_generator(monkeypatch):
    from bertqa.demo import data

    before = dataclasses.replace(GATE).fingerprint  # a new gate each time: a gate makes its sample once
    monkeypatch.setattr(data, "generate", lambda *args, **kwargs: iter(()))
    assert dataclasses.replace(GATE).fingerprint == before


def test_the_gate_runs_the_models_through_the_jobs_model_step(demo_onnx, monkeypatch):
    from bertqa.backends import accuracy, base

    calls = []
    real = base.infer_questions
    monkeypatch.setattr(accuracy, "infer_questions", lambda *args: calls.append(args[2]) or real(*args))
    GATE.check(fp32_reference(demo_onnx, {}), onnx_runner_model(demo_onnx), "the same model")
    assert calls == [GATE.max_batch_size] * 2


def test_a_stored_verdict_is_held_to_a_later_gates_limit_and_sample(demo_onnx, tmp_path):
    rounded = changed_weights(demo_onnx, str(tmp_path / "fp16.onnx"),
                              lambda w: np.clip(w, -65504, 65504).astype(np.float16) + 0.01 * np.sign(w))
    report = dataclasses.replace(GATE, max_changed_spans=1.0).compare(fp32_reference(demo_onnx, {}),
                                                                      onnx_runner_model(rounded))
    assert report.changed_spans > 0, "the candidate must change some spans for the limits to differ"
    record = GATE.record(report)
    looser = dataclasses.replace(GATE, max_changed_spans=1.0)
    assert looser.check_record(record, "the cached engine") == report
    stricter = dataclasses.replace(GATE, max_changed_spans=report.changed_share / 2)
    with pytest.raises(AccuracyGateError, match="the cached engine moves answers too far"):
        stricter.check_record(record, "the cached engine")
    # Another sample (other windows, other decoding): the verdict says nothing of it; the engine is gated again.
    other_windows = dataclasses.replace(GATE, window_settings=dataclasses.replace(DEMO_WINDOWS, doc_stride=40))
    assert other_windows.check_record(record, "the cached engine") is None
    other_decoding = dataclasses.replace(GATE, decode_settings=dataclasses.replace(DEMO_DECODE, max_answer_length=5))
    assert other_decoding.check_record(record, "the cached engine") is None
    assert GATE.check_record(None, "an engine cached before verdicts were stored") is None


def test_the_same_model_passes_with_no_change(demo_onnx):
    report = GATE.check(fp32_reference(demo_onnx, {}), onnx_runner_model(demo_onnx), "the same model")
    assert report.windows == SAMPLE_WINDOWS and report.changed_spans == 0
    assert report.max_start_logit_difference < 1e-4 and report.max_end_logit_difference < 1e-4


def test_weights_rounded_to_fp16_pass_and_the_report_gives_their_small_differences(demo_onnx, tmp_path):
    # As an fp16 engine keeps weights: rounded, and constants past fp16's range clamped to it.
    rounded = changed_weights(demo_onnx, str(tmp_path / "fp16.onnx"),
                              lambda w: np.clip(w, -65504, 65504).astype(np.float16))
    report = GATE.check(fp32_reference(demo_onnx, {}), onnx_runner_model(rounded), "fp16 weights")
    assert 0 < max(report.max_start_logit_difference, report.max_end_logit_difference) < 0.1
    assert report.changed_share <= GATE.max_changed_spans


def test_a_damaged_model_is_refused_naming_both_numbers(demo_onnx, tmp_path):
    rng = np.random.default_rng(3)
    damaged = changed_weights(demo_onnx, str(tmp_path / "damaged.onnx"),
                              lambda w: w + rng.normal(0, 0.5 * float(np.std(w)), w.shape))
    with pytest.raises(AccuracyGateError) as refused:
        GATE.check(fp32_reference(demo_onnx, {}), onnx_runner_model(damaged), "the damaged model")
    message = str(refused.value)
    assert "the damaged model moves answers too far from the fp32 model: largest start/end logit difference" in message
    assert f"of {SAMPLE_WINDOWS} windows" in message and "--max_changed_spans=0.02" in message


def test_overflowed_logits_count_as_changed_answers(demo_onnx):
    from bertqa.backends.accuracy import compare_models

    class Overflowing(PolygraphyQAModel):
        """An fp16 engine whose start logits overflowed."""

        def predict(self, *inputs):
            start, end = super().predict(*inputs)
            return np.full_like(start, np.inf), end

    candidate = onnx_runner_model(demo_onnx)
    candidate.__class__ = Overflowing
    report = compare_models(fp32_reference(demo_onnx, {}), candidate, GATE.sample()[:8], 8, DEMO_DECODE)
    assert report.changed_spans == report.windows >= 8 and report.max_start_logit_difference == np.inf


def int8_args(demo_onnx, output):
    return ["export-onnx", f"--onnx={demo_onnx}", "--quantize=int8", f"--output={output}",
            f"--vocab_path={ROOT / 'demo' / 'vocab.txt'}", "--max_seq_length=128", "--doc_stride=48",
            "--max_query_length=32", f"--max_answer_length={DEMO_DECODE.max_answer_length}"]


def test_int8_quantization_of_the_demo_model_passes_the_gate_and_answers_the_same(demo_onnx, tmp_path, capsys):
    output = tmp_path / "demo-int8.onnx"
    assert bertqa_main(int8_args(demo_onnx, output)) == 0
    out = capsys.readouterr().out
    assert "int8, dynamic quantization); against the fp32 model: largest start/end logit difference" in out
    changed = int(out.split("best span changed in ")[1].split()[0])
    assert changed <= 0.02 * SAMPLE_WINDOWS
    assert output.stat().st_size < 0.5 * Path(demo_onnx).stat().st_size  # weights stored as int8
    assert any(node.op_type in ("MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul")
               for node in onnx.load(str(output)).graph.node)


def test_int8_is_refused_naming_both_numbers_when_quantization_wrecks_the_model(demo_onnx, tmp_path, capsys):
    # One huge weight per matrix: int8's per-tensor scale then rounds every other weight to zero, while the
    # fp32 model only has one odd unit. The quantized model must be refused, not shipped.
    def outlier(weights):
        if weights.ndim != 2:
            return weights
        weights = weights.copy()
        weights.flat[0] = 1000 * np.abs(weights).max()
        return weights

    wrecked = changed_weights(demo_onnx, str(tmp_path / "outliers.onnx"), outlier)
    output = tmp_path / "wrecked-int8.onnx"
    assert bertqa_main(int8_args(wrecked, output)) == 1
    err = capsys.readouterr().err
    assert "the int8 model moves answers too far from the fp32 model: largest start/end logit difference" in err
    assert "--max_changed_spans=0.02; keep the fp32 model" in err and "was not kept" in err
    assert not output.exists()


def test_int8_needs_the_vocabulary_its_check_cuts_text_with(demo_onnx, tmp_path, capsys):
    import pytest as _pytest

    with _pytest.raises(SystemExit):
        bertqa_main(["export-onnx", f"--onnx={demo_onnx}", "--quantize=int8", f"--output={tmp_path / 'x.onnx'}"])
    assert "--quantize=int8 needs --vocab_path or --tokenizer_path" in capsys.readouterr().err


def test_int8_with_windows_the_model_cannot_take_says_which_settings_work(demo_onnx, tmp_path, capsys):
    # The README's command as written (the template's 384-token windows) on the 128-position demo model.
    output = tmp_path / "demo-int8.onnx"
    assert bertqa_main(["export-onnx", f"--onnx={demo_onnx}", "--quantize=int8", f"--output={output}",
                        f"--vocab_path={ROOT / 'demo' / 'vocab.txt'}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "the longest it takes is 128 tokens" in err
    fitting = err.split("with windows that long: ")[1].split(" (the int8 check")[0]
    assert fitting == "--max_seq_length=128 --max_query_length=32 --doc_stride=46"
    # A stride too long for the windows, refused as `bertqa run` refuses it.
    assert bertqa_main(["export-onnx", f"--onnx={demo_onnx}", "--quantize=int8", f"--output={output}",
                        f"--vocab_path={ROOT / 'demo' / 'vocab.txt'}", "--max_seq_length=128"]) == 2
    assert "doc_stride=128 is larger than the passage part of a window" in capsys.readouterr().err
    assert not output.exists()
    assert bertqa_main(["export-onnx", f"--onnx={demo_onnx}", "--quantize=int8", f"--output={output}",
                        f"--vocab_path={ROOT / 'demo' / 'vocab.txt'}", *fitting.split()]) == 0
