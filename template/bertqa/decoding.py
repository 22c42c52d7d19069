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


@dataclasses.dataclass(frozen=True)
class WindowSpans:
    """A window's candidate spans as arrays, in the order Google's loops visit them (by start rank, then
    end rank): scores (float64) and passage-token indices of start and end."""

    scores: np.ndarray
    start_tokens: np.ndarray
    end_tokens: np.ndarray


def _top_positions(logits: np.ndarray, n: int) -> np.ndarray:
    order = np.argsort(-logits, kind="stable")
    return order[:n]


def _span_score(window: WindowLogits, start: int, end: int) -> float:
    # Summed in float64, as Google's code does: in float32, near-ties are decided by rounding.
    return float(window.start_logits[start]) + float(window.end_logits[end])


def window_spans(window: WindowLogits, settings: DecodeSettings) -> WindowSpans:
    """Candidate answer spans of one window: each pair of an n-best start and an n-best end inside the
    passage, end >= start, at most max_answer_length tokens, the start seen with maximum context."""
    doc_length = len(window.max_context)
    first, last = window.context_start, window.context_start + doc_length - 1
    starts = _top_positions(window.start_logits, settings.n_best_size)
    ends = _top_positions(window.end_logits, settings.n_best_size)
    starts = starts[(starts >= first) & (starts <= last)]
    starts = starts[window.max_context[starts - first]]
    ends = ends[(ends >= first) & (ends <= last)]
    length = ends[None, :] - starts[:, None] + 1
    rows, columns = np.nonzero((length >= 1) & (length <= settings.max_answer_length))  # row-major: loop order
    start, end = starts[rows], ends[columns]
    scores = window.start_logits[start].astype(np.float64) + window.end_logits[end].astype(np.float64)
    return WindowSpans(scores, start - first + window.doc_offset, end - first + window.doc_offset)


def best_window_span(window: WindowLogits, settings: DecodeSettings) -> tuple[int, int] | None:
    """The window's own best answer in passage-token indices, or None where its null score is higher."""
    spans = window_spans(window, settings)
    if not len(spans.scores):
        return None
    best = int(np.argmax(spans.scores))  # the first of equal scores, as a stable sort keeps it
    if _span_score(window, 0, 0) > spans.scores[best]:
        return None
    return int(spans.start_tokens[best]), int(spans.end_tokens[best])


def decode_answer(
    windows: Sequence[WindowLogits],
    context: str,
    token_offsets: Sequence[tuple[int, int]],
    settings: DecodeSettings,
) -> Answer:
    """The answer to one question from all of its windows' logits."""
    if not windows:
        raise ValueError("a question needs at least one window to decode")
    spans = [window_spans(window, settings) for window in windows]
    scores = np.concatenate([span.scores for span in spans])
    start_tokens = np.concatenate([span.start_tokens for span in spans])
    end_tokens = np.concatenate([span.end_tokens for span in spans])
    null_score = min(_span_score(w, 0, 0) for w in windows)

    # Best first; equal scores keep the windows' order, as Google's stable sort does. Several windows
    # can propose the same passage span: keep its best score only.
    candidates: list[_Span] = []
    seen = set()
    starts, ends, values = start_tokens.tolist(), end_tokens.tolist(), scores.tolist()
    for index in np.argsort(-scores, kind="stable").tolist():
        key = (starts[index], ends[index])
        if key not in seen:
            seen.add(key)
            candidates.append(_Span(values[index], *key))
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
    start_char = int(token_offsets[best.start_token][0])
    end_char = _through_combining_marks(context, int(token_offsets[best.end_token][1]))
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
