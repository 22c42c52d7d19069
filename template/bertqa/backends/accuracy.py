"""How far a faster form of a model (a TensorRT fp16 engine, an int8 ONNX model) moves its answers.

Both forms run on the same fixed sample of windows of real text (data/gate_sample.json's passages, tokenized with
the job's tokenizer and window settings); the report gives the largest start and end logit differences and
the share of windows whose own best span (or "no answer") changes. A form that changes more windows than
the job allows is refused, naming both numbers.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from typing import Sequence

import numpy as np

from bertqa.backends.base import QAModel, predict_windows
from bertqa.qa.decoding import DecodeSettings, best_window_span
from bertqa.io.tokenizer_files import TokenizerSpec
from bertqa.qa.windows import Featurizer, Window, WindowSettings, padded_length

SAMPLE_WINDOWS = 128


def sample_records() -> list[dict]:
    """The sample's questions and passages (data/gate_sample.json): fixed text, whatever the demo's generator does."""
    return json.loads(resources.files("bertqa").joinpath("data", "gate_sample.json").read_text("utf-8"))["records"]


class AccuracyGateError(RuntimeError):
    """A faster form of the model changes too many answers."""


@dataclasses.dataclass(frozen=True)
class AccuracyReport:
    windows: int
    max_start_logit_difference: float
    max_end_logit_difference: float
    changed_spans: int

    @property
    def changed_share(self) -> float:
        return self.changed_spans / self.windows

    def describe(self) -> str:
        return (f"largest start/end logit difference {self.max_start_logit_difference:.3g}/"
                f"{self.max_end_logit_difference:.3g}; best span changed in {self.changed_spans} of "
                f"{self.windows} windows ({self.changed_share:.1%})")


@dataclasses.dataclass(frozen=True)
class AccuracyGate:
    """What the sample windows are made with, and how many changed best spans are allowed."""

    tokenizer: TokenizerSpec
    window_settings: WindowSettings
    max_batch_size: int
    decode_settings: DecodeSettings  # the best span is the one the job would decode
    max_changed_spans: float  # the share of windows allowed a different best span

    def sample(self) -> list[Window]:
        featurizer = Featurizer(self.tokenizer.load(), self.window_settings)
        windows: list[Window] = []
        for record in sample_records():
            windows += featurizer.windows(record["id"], record["question"],
                                          featurizer.tokenize_passage(record["context"]))
            if len(windows) >= SAMPLE_WINDOWS:
                break
        return windows[:SAMPLE_WINDOWS]

    def compare(self, reference: QAModel, candidate: QAModel) -> AccuracyReport:
        return compare_models(reference, candidate, self.sample(), self.max_batch_size, self.decode_settings)

    def check(self, reference: QAModel, candidate: QAModel, what: str,
              instead: str = "use --precision=fp32") -> AccuracyReport:
        """The report; raises AccuracyGateError when the candidate changes too many best spans."""
        report = self.compare(reference, candidate)
        if report.changed_share > self.max_changed_spans:
            raise AccuracyGateError(
                f"{what} moves answers too far from the fp32 model: {report.describe()}, more than "
                f"--max_changed_spans={self.max_changed_spans:g}; {instead}, or raise the limit if these "
                "differences are acceptable")
        return report


def compare_models(reference: QAModel, candidate: QAModel, windows: Sequence[Window], max_batch_size: int,
                   settings: DecodeSettings) -> AccuracyReport:
    ordered = sorted(windows, key=lambda window: padded_length(window.length))  # as the job batches them
    start_difference = end_difference = 0.0
    changed = 0
    for first in range(0, len(ordered), max_batch_size):
        batch = ordered[first:first + max_batch_size]
        for (_, expected, _), (_, actual, _) in zip(predict_windows(batch, reference),
                                                    predict_windows(batch, candidate)):
            start = _largest_difference(expected.start_logits, actual.start_logits)
            end = _largest_difference(expected.end_logits, actual.end_logits)
            start_difference, end_difference = max(start_difference, start), max(end_difference, end)
            # Overflowed logits (inf, NaN) change the answer whatever the spans compare as.
            changed += (start == np.inf or end == np.inf
                        or best_window_span(expected, settings) != best_window_span(actual, settings))
    return AccuracyReport(len(ordered), start_difference, end_difference, changed)


def _largest_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    difference = np.abs(expected.astype(np.float64) - actual)
    return float(np.max(difference)) if np.all(np.isfinite(difference)) else np.inf
