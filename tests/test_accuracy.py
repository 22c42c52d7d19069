"""The accuracy gate on the bundled demo model (a trained QA model): same model, fp16-rounded weights, damage."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from bertqa.backends.accuracy import SAMPLE_WINDOWS, AccuracyGate, AccuracyGateError
from bertqa.backends.tensorrt import PolygraphyQAModel, fp32_reference, onnx_io
from bertqa.cli import main as bertqa_main
from bertqa.demo.train import DEMO_DECODE, DEMO_WINDOWS


ROOT = Path(__file__).resolve().parents[1]
GATE = AccuracyGate(str(ROOT / "demo" / "vocab.txt"), True, DEMO_WINDOWS, max_batch_size=16,
                    max_answer_length=DEMO_DECODE.max_answer_length, max_changed_spans=0.02)


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
    windows = GATE.sample()
    assert len(windows) == SAMPLE_WINDOWS
    assert max(w.length for w in windows) == DEMO_WINDOWS.max_seq_length  # long passages fill whole windows
    assert len({w.question_id for w in windows}) > 10


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
    report = compare_models(fp32_reference(demo_onnx, {}), candidate, GATE.sample()[:8], 8,
                            DEMO_DECODE.max_answer_length)
    assert report.changed_spans == 8 and report.max_start_logit_difference == np.inf
