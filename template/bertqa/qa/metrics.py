"""SQuAD v2.0 metrics with the semantics of the official evaluation script (evaluate-v2.0.py), and the best
no-answer threshold it finds from its na-prob file (here each question's null_score_diff)."""

from __future__ import annotations

import array
import collections
import dataclasses
import re
import string
from typing import Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, the articles a/an/the, and extra whitespace."""
    text = _PUNCTUATION.sub("", text.lower())
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str) -> float:
    return _normalized_f1(normalize_answer(gold), normalize_answer(prediction))


def _normalized_f1(gold: str, prediction: str) -> float:
    gold_tokens = gold.split()
    pred_tokens = prediction.split()
    if not gold_tokens or not pred_tokens:
        # "No answer" against "no answer" scores 1, against anything else 0.
        return float(gold_tokens == pred_tokens)
    common = collections.Counter(gold_tokens) & collections.Counter(pred_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_texts(answers: Sequence[str]) -> list[str]:
    """The official script's gold list: answers that normalize to nothing are dropped; none means ""."""
    texts = [text for text in answers if normalize_answer(text)]
    return texts or [""]


@dataclasses.dataclass
class QuestionScore:
    has_answer: bool
    exact: float
    f1: float
    predicted: bool = True
    # What another no-answer threshold would score: answering "" (null_*), and, where the question has a best span
    # under SQuAD v2 decoding, answering that span (span_*), which a threshold of at least null_score_diff does.
    null_exact: float = 0.0
    null_f1: float = 0.0
    null_score_diff: float | None = None
    span_exact: float = 0.0
    span_f1: float = 0.0


def score_question(gold_answers: Sequence[str], prediction: str | None, best_span: str | None = None,
                   null_score_diff: float | None = None) -> QuestionScore:
    """One labelled question's score; `prediction` None means it got none (counted as wrong). `best_span` and
    `null_score_diff` (an Answer's best_span_text and null_score_diff): what the question would score under
    another no-answer threshold.

    As in the official script, a question has an answer when its answers list is not empty, even
    if every answer normalizes to nothing (then only "" matches it).
    """
    if prediction is None:
        return QuestionScore(has_answer=bool(gold_answers), exact=0.0, f1=0.0, predicted=False)
    # gold_texts' list, each text normalized once (as exact_match and f1_score would normalize it).
    golds = [text for text in map(normalize_answer, gold_answers) if text] or [""]

    def best_over_golds(text: str) -> tuple[int, float]:
        predicted = normalize_answer(text)
        return max(int(gold == predicted) for gold in golds), max(_normalized_f1(gold, predicted) for gold in golds)

    exact, f1 = best_over_golds(prediction)
    null_exact, null_f1 = best_over_golds("")
    with_span = best_span is not None and null_score_diff is not None
    span_exact, span_f1 = best_over_golds(best_span) if with_span else (0, 0.0)
    return QuestionScore(bool(gold_answers), exact, f1, True, null_exact, null_f1,
                         null_score_diff if with_span else None, span_exact, span_f1)


class MetricTotals:
    """Running sums behind the official figures; mergeable, so a Beam combiner can hold it."""

    def __init__(self) -> None:
        # subset -> [labelled questions, of them predicted, exact sum, f1 sum]
        self.sums = {subset: [0, 0, 0.0, 0.0] for subset in ("", "HasAns_", "NoAns_")}
        # Of the predicted questions: the exact and f1 sums had each been answered "", and per question with a span
        # (null_score_diff, exact gain, f1 gain) of answering it instead, 24 bytes each.
        self.null_sums = [0.0, 0.0]
        self.threshold_points = array.array("d")

    def add(self, score: QuestionScore) -> "MetricTotals":
        for subset in ("", "HasAns_" if score.has_answer else "NoAns_"):
            sums = self.sums[subset]
            sums[0] += 1
            sums[1] += score.predicted
            sums[2] += score.exact
            sums[3] += score.f1
        if score.predicted:
            self.null_sums[0] += score.null_exact
            self.null_sums[1] += score.null_f1
        if score.null_score_diff is not None:
            self.threshold_points.extend((score.null_score_diff, score.span_exact - score.null_exact,
                                          score.span_f1 - score.null_f1))
        return self

    def merge(self, other: "MetricTotals") -> "MetricTotals":
        for subset, sums in other.sums.items():
            mine = self.sums[subset]
            for index, value in enumerate(sums):
                mine[index] += value
        self.null_sums = [mine + theirs for mine, theirs in zip(self.null_sums, other.null_sums)]
        self.threshold_points.extend(other.threshold_points)
        return self

    def best_thresholds(self) -> dict[str, float]:
        """best_exact, best_exact_thresh, best_f1, best_f1_thresh as evaluate-v2.0.py reports them with an na-prob
        file: the best scores (percent, over the predicted questions) that any --null_score_diff_threshold gives
        these predictions, and the smallest threshold that gives each; {} without SQuAD v2 decoding. A question is
        answered with its best span where its null_score_diff is at most the threshold, else with ""."""
        predicted = self.sums[""][1]
        if not predicted or not self.threshold_points:
            return {}
        points = np.frombuffer(self.threshold_points, dtype=np.float64).reshape(-1, 3)
        points = points[np.argsort(points[:, 0], kind="stable")]
        diffs = points[:, 0]
        # A threshold answers every question whose difference is at most it: equal differences go together.
        group_ends = np.flatnonzero(np.append(diffs[1:] != diffs[:-1], True))
        found = {}
        for name, column, null_sum in (("exact", 1, self.null_sums[0]), ("f1", 2, self.null_sums[1])):
            totals = null_sum + np.concatenate([[0.0], np.cumsum(points[:, column])[group_ends]])
            best = int(np.argmax(totals))  # the first of equal totals: the smallest threshold
            # Best to answer no span: any threshold below every difference, here one less than the smallest.
            threshold = float(diffs[group_ends[best - 1]]) if best else float(diffs[0]) - 1.0
            found[f"best_{name}"] = 100.0 * float(totals[best]) / predicted
            found[f"best_{name}_thresh"] = threshold
        return found

    @property
    def labelled(self) -> int:
        return self.sums[""][0]

    @property
    def without_prediction(self) -> int:
        return self.labelled - self.sums[""][1]

    def summary(self, count_missing: bool = False) -> dict[str, float | int]:
        """exact, f1, total (and HasAns_/NoAns_ ones where such questions exist), as percentages.

        By default over the questions that have a prediction: what evaluate-v2.0.py reports for them.
        With `count_missing`, over every labelled question, one without a prediction scoring 0.
        """
        result: dict[str, float | int] = {}
        for subset, (labelled, predicted, exact, f1) in self.sums.items():
            total = labelled if count_missing else predicted
            if total:
                result[f"{subset}exact"] = 100.0 * exact / total
                result[f"{subset}f1"] = 100.0 * f1 / total
                result[f"{subset}total"] = total
        return result if count_missing else {**result, **self.best_thresholds()}
