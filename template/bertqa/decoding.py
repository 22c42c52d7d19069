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
    align_to_words: bool = True


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
    # The model's own token span, before it was widened to whole words (the same where nothing was cut).
    raw_start_char: int | None = None
    raw_end_char: int | None = None


@dataclasses.dataclass(frozen=True)
class CandidateSpans:
    """Candidate answer spans of a question's windows as arrays, in the order Google's loops visit them
    (by window, then start rank, then end rank): scores (float64) and passage-token indices of start and
    end, inclusive."""

    scores: np.ndarray
    start_tokens: np.ndarray
    end_tokens: np.ndarray


def candidate_spans(windows: Sequence[WindowLogits], settings: DecodeSettings) -> CandidateSpans:
    """Each window's pairs of an n-best start and an n-best end inside the passage, end >= start, at most
    max_answer_length tokens, the start seen with maximum context: all windows in one array operation."""
    longest = max(len(window.start_logits) for window in windows)
    # Rows padded with -inf: padding ranks last and is never a passage position.
    start_logits = np.full((len(windows), longest), -np.inf, np.float32)
    end_logits = np.full((len(windows), longest), -np.inf, np.float32)
    may_start = np.zeros((len(windows), longest), bool)
    may_end = np.zeros((len(windows), longest), bool)
    shift = np.empty(len(windows), np.int64)  # window position -> passage token index
    for row, window in enumerate(windows):
        start_logits[row, :len(window.start_logits)] = window.start_logits
        end_logits[row, :len(window.end_logits)] = window.end_logits
        passage = slice(window.context_start, window.context_start + len(window.max_context))
        may_start[row, passage] = window.max_context
        may_end[row, passage] = True
        shift[row] = window.doc_offset - window.context_start
    n = settings.n_best_size
    rows = np.arange(len(windows))[:, None]
    starts = np.argsort(-start_logits, axis=1, kind="stable")[:, :n]
    ends = np.argsort(-end_logits, axis=1, kind="stable")[:, :n]
    length = ends[:, None, :] - starts[:, :, None] + 1
    allowed = (may_start[rows, starts][:, :, None] & may_end[rows, ends][:, None, :]
               & (length >= 1) & (length <= settings.max_answer_length))
    window, start_rank, end_rank = np.nonzero(allowed)  # row-major: the loops' order
    start, end = starts[window, start_rank], ends[window, end_rank]
    # Summed in float64, as Google's code does: in float32, near-ties are decided by rounding.
    scores = start_logits[window, start].astype(np.float64) + end_logits[window, end].astype(np.float64)
    return CandidateSpans(scores, start + shift[window], end + shift[window])


def _null_score(window: WindowLogits) -> float:
    return float(window.start_logits[0]) + float(window.end_logits[0])  # the [CLS] span


def best_window_span(window: WindowLogits, settings: DecodeSettings) -> tuple[int, int] | None:
    """The window's own best answer in passage-token indices, or None where its null score is higher."""
    spans = candidate_spans([window], settings)
    if not len(spans.scores):
        return None
    best = int(np.argmax(spans.scores))  # the first of equal scores, as a stable sort keeps it
    if _null_score(window) > spans.scores[best]:
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
    spans = candidate_spans(windows, settings)
    # Best first; equal scores keep the windows' order, as Google's stable sort does. No span comes twice:
    # a start token is allowed only in the one window where it has maximum context.
    chosen = np.argsort(-spans.scores, kind="stable")[:settings.n_best_size]
    null_score = min(_null_score(window) for window in windows)

    scores = spans.scores[chosen].tolist()
    if settings.version_2_with_negative:
        scores.append(null_score)
    probabilities = _softmax(scores)

    if not len(chosen):
        return Answer("", None, None, null_score, probabilities[-1] if probabilities else 1.0, None)
    best_score = scores[0]
    null_diff = null_score - best_score if settings.version_2_with_negative else None
    if null_diff is not None and null_diff > settings.null_score_diff_threshold:
        return Answer("", None, None, null_score, probabilities[-1], null_diff)
    raw_start = int(token_offsets[spans.start_tokens[chosen[0]]][0])
    raw_end = _through_combining_marks(context, int(token_offsets[spans.end_tokens[chosen[0]]][1]))
    start_char, end_char = raw_start, raw_end
    if settings.align_to_words:
        start_char, end_char = whole_words(context, raw_start, raw_end)
        if _tokens_within(token_offsets, start_char, end_char) > settings.max_answer_length:
            start_char, end_char = raw_start, raw_end
    return Answer(context[start_char:end_char], start_char, end_char, best_score, probabilities[0], null_diff,
                  raw_start, raw_end)


# Scripts written without spaces between words: there each character counts as a word (code point ranges:
# CJK ideographs as in Google's BERT tokenizer, then Hiragana, Katakana, Thai, Lao, Myanmar, Khmer).
_UNSPACED_SCRIPTS = (
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF), (0x2A700, 0x2CEAF),
    (0x2F800, 0x2FA1F), (0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F), (0x0E00, 0x0EFF),
    (0x1000, 0x109F), (0x1780, 0x17FF),
)


def _unspaced(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in _UNSPACED_SCRIPTS)


def _in_word(char: str) -> bool:
    return unicodedata.category(char)[0] in "LN" and not _unspaced(char)


def _continues_word(char: str) -> bool:
    return _in_word(char) or unicodedata.category(char).startswith("M")  # a mark belongs to its letter


def whole_words(context: str, start_char: int, end_char: int) -> tuple[int, int]:
    """[start_char, end_char) widened to the whole words it touches, as Hugging Face's QA pipeline does
    with align_to_words: "Nar" in "Zoë Naroü" becomes "Naroü". A word is a run of letters and digits
    with their combining marks; punctuation and spaces end it, and in scripts written without spaces each
    character is a word of its own, so an answer there is never widened."""
    if start_char >= end_char:
        return start_char, end_char
    first = start_char
    while first < end_char - 1 and not _in_word(context[first]) and _continues_word(context[first]):
        first += 1  # past marks at the start, to the letter they would attach to
    if _in_word(context[first]):
        while start_char > 0 and _continues_word(context[start_char - 1]):
            start_char -= 1
    last = end_char - 1
    while last > start_char and not _in_word(context[last]) and _continues_word(context[last]):
        last -= 1  # back past trailing marks, to their letter
    if _in_word(context[last]):
        while end_char < len(context) and _continues_word(context[end_char]):
            end_char += 1
    return start_char, end_char


def _tokens_within(token_offsets: Sequence[tuple[int, int]], start_char: int, end_char: int) -> int:
    """How many passage tokens [start_char, end_char) covers."""
    offsets = np.asarray(token_offsets).reshape(-1, 2)
    return int(np.count_nonzero((offsets[:, 0] < end_char) & (offsets[:, 1] > start_char)))


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
