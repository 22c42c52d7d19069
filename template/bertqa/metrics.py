"""SQuAD v2.0 metrics with the semantics of the official evaluation script (evaluate-v2.0.py)."""

from __future__ import annotations

import collections
import dataclasses
import re
import string
from typing import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, the articles a/an/the, and extra whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str) -> float:
    gold_tokens = normalize_answer(gold).split()
    pred_tokens = normalize_answer(prediction).split()
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


def score_question(gold_answers: Sequence[str], prediction: str) -> QuestionScore:
    golds = gold_texts(gold_answers)
    return QuestionScore(
        has_answer=golds != [""],
        exact=max(exact_match(gold, prediction) for gold in golds),
        f1=max(f1_score(gold, prediction) for gold in golds),
    )


class MetricTotals:
    """Running sums behind the official figures; mergeable, so a Beam combiner can hold it."""

    def __init__(self) -> None:
        # subset -> [questions, exact sum, f1 sum]
        self.sums = {"": [0, 0.0, 0.0], "HasAns_": [0, 0.0, 0.0], "NoAns_": [0, 0.0, 0.0]}

    def add(self, score: QuestionScore) -> "MetricTotals":
        for subset in ("", "HasAns_" if score.has_answer else "NoAns_"):
            sums = self.sums[subset]
            sums[0] += 1
            sums[1] += score.exact
            sums[2] += score.f1
        return self

    def merge(self, other: "MetricTotals") -> "MetricTotals":
        for subset, sums in other.sums.items():
            mine = self.sums[subset]
            for index, value in enumerate(sums):
                mine[index] += value
        return self

    def summary(self) -> dict[str, float | int]:
        """exact, f1, total (and HasAns_/NoAns_ ones where such questions exist), as percentages."""
        result: dict[str, float | int] = {}
        for subset, (total, exact, f1) in self.sums.items():
            if total:
                result[f"{subset}exact"] = 100.0 * exact / total
                result[f"{subset}f1"] = 100.0 * f1 / total
                result[f"{subset}total"] = total
        return result
