"""How far a faster form of a model (a TensorRT fp16 engine, an int8 ONNX model) moves its answers.

Both forms run on the same fixed sample of windows of real text (data/gate_sample.json's passages, tokenized with
the job's tokenizer and window settings); the report gives the largest start and end logit differences and
the share of windows whose own best span (or "no answer") changes. A form that changes more windows than
the job allows is refused, naming both numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from importlib import resources
from typing import NamedTuple, Sequence

import numpy as np

from bertqa.backends.base import QAModel, infer_questions
from bertqa.qa.decoding import DecodeSettings, best_window_span
from bertqa.io.tokenizer_files import TokenizerSpec
from bertqa.qa.windows import FeaturizedQuestion, Featurizer, WindowSettings

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

    def sample(self) -> list[FeaturizedQuestion]:
        """The sample's questions, featurized as the job featurizes them: SAMPLE_WINDOWS windows in all (the last
        question's cut to fit)."""
        return self._sample

    @functools.cached_property
    def _sample(self) -> list[FeaturizedQuestion]:
        # Made once per gate: a build compares and then records, a cache hit checks its record and may compare.
        featurizer = Featurizer(self.tokenizer.load(), self.window_settings)
        questions: list[FeaturizedQuestion] = []
        windows = 0
        for record in sample_records():
            question = featurizer.featurize(SampleQuestion(record["id"]), featurizer.question_ids(record["question"]),
                                            featurizer.tokenize_passage(record["context"]))
            question.spans = question.spans[:SAMPLE_WINDOWS - windows]
            questions.append(question)
            windows += len(question.spans)
            if windows == SAMPLE_WINDOWS:
                break
        return questions

    @functools.cached_property
    def fingerprint(self) -> str:
        """What a verdict of this gate depends on besides the models: the sample's windows (the tokenizer's and
        window settings' work), the batches and the decoding."""
        digest = hashlib.sha256(json.dumps([self.max_batch_size, dataclasses.astuple(self.decode_settings)]).encode())
        for question in self.sample():
            for window in question.windows():
                digest.update(window.input_ids.tobytes() + window.token_type_ids.tobytes() + b"|")
        return digest.hexdigest()

    def compare(self, reference: QAModel, candidate: QAModel) -> AccuracyReport:
        return compare_models(reference, candidate, self.sample(), self.max_batch_size, self.decode_settings)

    def check(self, reference: QAModel, candidate: QAModel, what: str,
              instead: str = "use --precision=fp32") -> AccuracyReport:
        """The report; raises AccuracyGateError when the candidate changes too many best spans."""
        return self._verdict(self.compare(reference, candidate), what, instead)

    def record(self, report: AccuracyReport) -> dict:
        """The verdict as stored with what it was about (an engine cache entry's "gate")."""
        return {"sample": self.fingerprint, **dataclasses.asdict(report)}

    def check_record(self, record: dict | None, what: str, instead: str = "use --precision=fp32"
                     ) -> AccuracyReport | None:
        """An earlier verdict (`record`) held to this gate's limit: its report where it was made on this gate's
        sample (AccuracyGateError where it changed more spans than this limit allows), else None: the model must
        be gated again."""
        if not record or record.get("sample") != self.fingerprint:
            return None
        fields = {field.name for field in dataclasses.fields(AccuracyReport)}
        return self._verdict(AccuracyReport(**{name: record[name] for name in fields}), what, instead)

    def _verdict(self, report: AccuracyReport, what: str, instead: str) -> AccuracyReport:
        if report.changed_share > self.max_changed_spans:
            raise AccuracyGateError(
                f"{what} moves answers too far from the fp32 model: {report.describe()}, more than "
                f"--max_changed_spans={self.max_changed_spans:g}; {instead}, or raise the limit if these "
                "differences are acceptable")
        return report


class SampleQuestion(NamedTuple):
    """A sample question as the model step sees its record: by its id."""

    id: str


def compare_models(reference: QAModel, candidate: QAModel, questions: Sequence[FeaturizedQuestion],
                   max_batch_size: int, settings: DecodeSettings) -> AccuracyReport:
    """Both models on the questions' windows through the job's own model step (infer_questions): sorted by
    length, in calls of at most max_batch_size windows."""
    expected = infer_questions(questions, reference, max_batch_size)
    actual = infer_questions(questions, candidate, max_batch_size)
    start_difference = end_difference = 0.0
    changed = 0
    for position, question in enumerate(questions):
        if expected.failures[position]:
            raise RuntimeError(f"the fp32 reference model failed on the accuracy gate's sample: "
                               f"{expected.failures[position]}")
        if actual.failures[position]:  # a window the candidate cannot run: every answer of it is lost
            start_difference = end_difference = np.inf
            changed += len(question.spans)
            continue
        for reference_window, candidate_window in zip(expected.window_logits(position),
                                                      actual.window_logits(position), strict=True):
            start = _largest_difference(reference_window.start_logits, candidate_window.start_logits)
            end = _largest_difference(reference_window.end_logits, candidate_window.end_logits)
            start_difference, end_difference = max(start_difference, start), max(end_difference, end)
            # Overflowed logits (inf, NaN) change the answer whatever the spans compare as.
            changed += (start == np.inf or end == np.inf or best_window_span(reference_window, settings)
                        != best_window_span(candidate_window, settings))
    return AccuracyReport(sum(len(question.spans) for question in questions), start_difference, end_difference,
                          changed)


def _largest_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    difference = np.abs(expected.astype(np.float64) - actual)
    return float(np.max(difference)) if np.all(np.isfinite(difference)) else np.inf
