"""SQuAD v2.0 metrics with the semantics of the official evaluation script (evaluate-v2.0.py)."""

from __future__ import annotations

import collections
import dataclasses
import re
import string
from typing import Sequence

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


def score_question(gold_answers: Sequence[str], prediction: str | None) -> QuestionScore:
    """One labelled question's score; `prediction` None means it got none (counted as wrong).

    As in the official script, a question has an answer when its answers list is not empty, even
    if every answer normalizes to nothing (then only "" matches it).
    """
    if prediction is None:
        return QuestionScore(has_answer=bool(gold_answers), exact=0.0, f1=0.0, predicted=False)
    # gold_texts' list, each text normalized once (as exact_match and f1_score would normalize it).
    golds = [text for text in map(normalize_answer, gold_answers) if text] or [""]
    predicted = normalize_answer(prediction)
    return QuestionScore(
        has_answer=bool(gold_answers),
        exact=max(int(gold == predicted) for gold in golds),
        f1=max(_normalized_f1(gold, predicted) for gold in golds),
    )


class MetricTotals:
    """Running sums behind the official figures; mergeable, so a Beam combiner can hold it."""

    def __init__(self) -> None:
        # subset -> [labelled questions, of them predicted, exact sum, f1 sum]
        self.sums = {subset: [0, 0, 0.0, 0.0] for subset in ("", "HasAns_", "NoAns_")}

    def add(self, score: QuestionScore) -> "MetricTotals":
        for subset in ("", "HasAns_" if score.has_answer else "NoAns_"):
            sums = self.sums[subset]
            sums[0] += 1
            sums[1] += score.predicted
            sums[2] += score.exact
            sums[3] += score.f1
        return self

    def merge(self, other: "MetricTotals") -> "MetricTotals":
        for subset, sums in other.sums.items():
            mine = self.sums[subset]
            for index, value in enumerate(sums):
                mine[index] += value
        return self

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
        return result
