"""From the start/end logits of all of a question's windows to one answer (or "no answer").

Follows Google's BERT SQuAD v2 post-processing: n-best starts and ends per window, spans only inside
the passage, end >= start, bounded length, start token seen with maximum context; the best span over
all windows wins unless the null score ([CLS], lowest over windows) beats it by more than the threshold.
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    n_best_size: int = 20
    max_answer_length: int = 30
    null_score_diff_threshold: float = 0.0
    version_2_with_negative: bool = True


@dataclasses.dataclass
class WindowLogits:
    """A window's model output, with what is needed to map positions back to passage tokens."""

    index: int
    context_start: int
    doc_offset: int
    max_context: np.ndarray
    start_logits: np.ndarray
    end_logits: np.ndarray


@dataclasses.dataclass(frozen=True)
class Answer:
    text: str  # "" = no answer
    start_char: int | None
    end_char: int | None
    score: float  # start + end logit of the chosen span (or the null score for "no answer")
    probability: float  # softmax over the n-best candidates, "no answer" included
    null_score_diff: float | None  # null score - best span score; > threshold means "no answer"


@dataclasses.dataclass(frozen=True)
class _Span:
    score: float
    start_token: int  # passage token indices, inclusive
    end_token: int


def _top_positions(logits: np.ndarray, n: int) -> np.ndarray:
    order = np.argsort(-logits, kind="stable")
    return order[:n]


def _span_score(window: WindowLogits, start: int, end: int) -> float:
    # Summed in float64, as Google's code does: in float32, near-ties are decided by rounding.
    return float(window.start_logits[start]) + float(window.end_logits[end])


def window_spans(window: WindowLogits, settings: DecodeSettings) -> list[_Span]:
    """Candidate answer spans of one window, in passage-token indices."""
    doc_length = len(window.max_context)
    first, last = window.context_start, window.context_start + doc_length - 1
    starts = _top_positions(window.start_logits, settings.n_best_size)
    ends = _top_positions(window.end_logits, settings.n_best_size)
    spans = []
    for start in starts:
        if not first <= start <= last or not window.max_context[start - first]:
            continue
        for end in ends:
            if not first <= end <= last or end < start:
                continue
            if end - start + 1 > settings.max_answer_length:
                continue
            spans.append(
                _Span(
                    score=_span_score(window, start, end),
                    start_token=window.doc_offset + int(start - first),
                    end_token=window.doc_offset + int(end - first),
                )
            )
    return spans


def best_window_span(window: WindowLogits, settings: DecodeSettings) -> tuple[int, int] | None:
    """The window's own best answer in passage-token indices, or None where its null score is higher."""
    spans = window_spans(window, settings)
    best = max(spans, key=lambda span: span.score, default=None)
    if best is None or _span_score(window, 0, 0) > best.score:
        return None
    return best.start_token, best.end_token


def decode_answer(
    windows: Sequence[WindowLogits],
    context: str,
    token_offsets: Sequence[tuple[int, int]],
    settings: DecodeSettings,
) -> Answer:
    """The answer to one question from all of its windows' logits."""
    if not windows:
        raise ValueError("a question needs at least one window to decode")
    spans = [span for window in windows for span in window_spans(window, settings)]
    spans.sort(key=lambda span: span.score, reverse=True)
    null_score = min(_span_score(w, 0, 0) for w in windows)

    # Several windows can propose the same passage span: keep its best score only.
    candidates: list[_Span] = []
    seen = set()
    for span in spans:
        key = (span.start_token, span.end_token)
        if key not in seen:
            seen.add(key)
            candidates.append(span)
        if len(candidates) == settings.n_best_size:
            break

    scores = [span.score for span in candidates]
    if settings.version_2_with_negative:
        scores.append(null_score)
    probabilities = _softmax(scores)

    if not candidates:
        return Answer("", None, None, null_score, probabilities[-1] if probabilities else 1.0, None)
    best = candidates[0]
    null_diff = null_score - best.score if settings.version_2_with_negative else None
    if null_diff is not None and null_diff > settings.null_score_diff_threshold:
        return Answer("", None, None, null_score, probabilities[-1], null_diff)
    start_char = token_offsets[best.start_token][0]
    end_char = _through_combining_marks(context, token_offsets[best.end_token][1])
    return Answer(context[start_char:end_char], start_char, end_char, best.score, probabilities[0], null_diff)


def _through_combining_marks(context: str, end_char: int) -> int:
    """`end_char` moved past the combining marks that follow it.

    Accent stripping removes a decomposed accent (e + U+0301) from the text the tokens cover, so a
    token's offsets end before it; the mark belongs to the last letter and to the answer.
    """
    while end_char < len(context) and unicodedata.category(context[end_char]).startswith("M"):
        end_char += 1
    return end_char


def _softmax(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    top = max(scores)
    exps = [math.exp(score - top) for score in scores]
    total = sum(exps)
    return [value / total for value in exps]
