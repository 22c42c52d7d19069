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
    """How answers are chosen (TemplateParams.decode_settings builds it from the job's parameters, which hold the
    defaults)."""

    n_best_size: int
    max_answer_length: int
    null_score_diff_threshold: float
    version_2_with_negative: bool
    align_to_words: bool
    top_k: int  # candidate spans kept beside the answer (0: none)


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
class Candidate:
    """One of a question's best spans, whatever the no-answer decision: its text as an answer would be cut."""

    text: str
    start_char: int
    end_char: int
    score: float  # start + end logit
    probability: float  # its share of the same softmax as the answer's


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
    # With top_k: the best spans of distinct texts, best first (the answer's own first, unless it is "").
    candidates: tuple[Candidate, ...] = ()
    # The best span's text as it would be answered: the answer, or where the null score won, what it would have
    # been (what another null_score_diff_threshold would answer); None where no span qualified.
    best_span_text: str | None = None


@dataclasses.dataclass(frozen=True)
class PackedWindows:
    """The windows of several questions (each question's windows together and in order), their logits in one
    array: what decoding a list of questions at once works on."""

    logits: np.ndarray  # float32 [2, tokens]: start and end logits
    starts: np.ndarray  # int64 [windows]: where each window's logits begin in `logits`
    lengths: np.ndarray  # int64 [windows]: each window's length
    context_starts: np.ndarray  # int64 [windows]: sequence position of each window's first passage token
    doc_offsets: np.ndarray  # int64 [windows]: index of that token in the passage
    doc_lengths: np.ndarray  # int64 [windows]: how many passage tokens each window holds
    max_context: np.ndarray  # bool [the windows' passage tokens, window after window]: as WindowLogits'
    windows_per_question: np.ndarray  # int64 [questions], each at least 1

    @classmethod
    def of(cls, questions: Sequence[Sequence[WindowLogits]]) -> "PackedWindows":
        windows = [window for question in questions for window in question]
        lengths = np.array([len(window.start_logits) for window in windows], np.int64)
        for window in windows:
            if window.context_start + len(window.max_context) > len(window.start_logits):
                raise ValueError(f"window {window.index}: {len(window.start_logits)} logits do not hold "
                                 f"{window.context_start} tokens before the passage and {len(window.max_context)} "
                                 "passage tokens")
        return cls(np.concatenate([np.stack([window.start_logits, window.end_logits]) for window in windows], 1),
                   np.cumsum(lengths) - lengths, lengths,
                   np.array([window.context_start for window in windows], np.int64),
                   np.array([window.doc_offset for window in windows], np.int64),
                   np.array([len(window.max_context) for window in windows], np.int64),
                   np.concatenate([window.max_context for window in windows]).astype(bool),
                   np.array([len(question) for question in questions], np.int64))

    @property
    def first_windows(self) -> np.ndarray:
        """Each question's first window."""
        return np.cumsum(self.windows_per_question) - self.windows_per_question


@dataclasses.dataclass(frozen=True)
class CandidateSpans:
    """Candidate answer spans of a list of questions' windows as arrays, each question's in the order Google's
    loops visit them (by window, then start rank, then end rank): scores (float64), passage-token indices of start
    and end (inclusive), and the window each comes from."""

    scores: np.ndarray
    start_tokens: np.ndarray
    end_tokens: np.ndarray
    windows: np.ndarray


def candidate_spans(packed: PackedWindows, settings: DecodeSettings) -> tuple[CandidateSpans, np.ndarray]:
    """Each window's pairs of an n-best start and an n-best end inside the passage, end >= start, at most
    max_answer_length tokens, the start seen with maximum context: all windows in one set of array operations.
    Also each window's null score ([CLS] start + end), in float64."""
    positions = np.arange(int(packed.lengths.max()))[None, :]
    inside = positions < packed.lengths[:, None]
    # Rows padded with -inf: padding ranks last and is never a passage position.
    taken = np.minimum(packed.starts[:, None] + positions, packed.logits.shape[1] - 1)
    start_logits = np.where(inside, packed.logits[0][taken], np.float32(-np.inf))
    end_logits = np.where(inside, packed.logits[1][taken], np.float32(-np.inf))
    doc_lengths = packed.doc_lengths
    in_doc = positions - packed.context_starts[:, None]
    may_end = (in_doc >= 0) & (in_doc < doc_lengths[:, None])
    context_index = np.clip((np.cumsum(doc_lengths) - doc_lengths)[:, None] + in_doc, 0,
                            max(len(packed.max_context) - 1, 0))
    may_start = may_end & packed.max_context[context_index] if len(packed.max_context) else may_end
    n = settings.n_best_size
    rows = np.arange(len(packed.lengths))[:, None]
    starts = np.argsort(-start_logits, axis=1, kind="stable")[:, :n]
    ends = np.argsort(-end_logits, axis=1, kind="stable")[:, :n]
    length = ends[:, None, :] - starts[:, :, None] + 1
    allowed = (may_start[rows, starts][:, :, None] & may_end[rows, ends][:, None, :]
               & (length >= 1) & (length <= settings.max_answer_length))
    window, start_rank, end_rank = np.nonzero(allowed)  # row-major: the loops' order
    start, end = starts[window, start_rank], ends[window, end_rank]
    # Summed in float64, as Google's code does: in float32, near-ties are decided by rounding.
    scores = start_logits[window, start].astype(np.float64) + end_logits[window, end].astype(np.float64)
    shift = packed.doc_offsets - packed.context_starts  # window position -> passage token index
    null_scores = start_logits[:, 0].astype(np.float64) + end_logits[:, 0].astype(np.float64)
    return CandidateSpans(scores, start + shift[window], end + shift[window], window), null_scores


def best_window_span(window: WindowLogits, settings: DecodeSettings) -> tuple[int, int] | None:
    """The window's own best answer in passage-token indices, or None where its null score is higher."""
    spans, (null_score,) = candidate_spans(PackedWindows.of([[window]]), settings)
    if not len(spans.scores):
        return None
    best = int(np.argmax(spans.scores))  # the first of equal scores, as a stable sort keeps it
    if null_score > spans.scores[best]:
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
    (answer,) = decode_answers(PackedWindows.of([windows]), [context], [token_offsets], settings)
    return answer


def decode_answers(packed: PackedWindows, contexts: Sequence[str], token_offsets: Sequence[Sequence[tuple[int, int]]],
                   settings: DecodeSettings) -> list[Answer]:
    """The answer to each question of `packed` (its passage `contexts[i]`, tokens at `token_offsets[i]`): the span
    search for all of them in one set of array operations, then each answer cut from its passage.

    Raises ValueError where a window's logits hold NaN or infinity (a model that overflowed, say in float16):
    no score of such a question means anything, and JSON cannot hold it."""
    not_finite = np.concatenate([[0], np.cumsum(~np.isfinite(packed.logits).all(axis=0))])
    broken = np.flatnonzero(not_finite[packed.starts + packed.lengths] > not_finite[packed.starts])
    if len(broken):
        raise ValueError(f"the model's logits are not finite (NaN or infinity) in {len(broken)} of "
                         f"{len(packed.lengths)} windows (the first is window {broken[0]})")
    spans, null_scores = candidate_spans(packed, settings)
    question_of_window = np.repeat(np.arange(len(packed.windows_per_question)), packed.windows_per_question)
    questions = question_of_window[spans.windows]
    # Per question, best first; equal scores keep the windows' order, as Google's stable sort does (lexsort is
    # stable). No span comes twice: a start token is allowed only in the one window where it has maximum context.
    ranked = np.lexsort((-spans.scores, questions))
    firsts = np.searchsorted(questions[ranked], np.arange(len(contexts) + 1))
    window_firsts = packed.first_windows.tolist() + [len(packed.lengths)]
    answers = []
    for question, (context, offsets) in enumerate(zip(contexts, token_offsets)):
        chosen = ranked[firsts[question]:min(firsts[question + 1], firsts[question] + settings.n_best_size)]
        null_score = min(null_scores[window_firsts[question]:window_firsts[question + 1]].tolist())
        answers.append(_answer(spans, chosen, null_score, context, offsets, settings))
    return answers


def _answer(spans: CandidateSpans, chosen: np.ndarray, null_score: float, context: str,
            token_offsets: Sequence[tuple[int, int]], settings: DecodeSettings) -> Answer:
    """One question's answer from its n best candidate spans (best first) and its null score. Candidates above
    the first whose text is more than whitespace are dropped: a span of a tokenizer's whitespace tokens (byte-level
    BPE's lone "Ġ", SentencePiece's "▁") is no answer, and "" already means "no answer"."""
    text_span = None
    while len(chosen) and not (text_span := _text_span(spans, chosen[0], context, token_offsets)):
        chosen = chosen[1:]
    scores = spans.scores[chosen].tolist()
    if settings.version_2_with_negative:
        scores.append(null_score)
    probabilities = _softmax(scores)

    if not len(chosen):
        return Answer("", None, None, null_score, probabilities[-1] if probabilities else 1.0, None)
    best_score = scores[0]
    null_diff = null_score - best_score if settings.version_2_with_negative else None
    start_char, end_char = _answer_span(context, token_offsets, text_span, settings)
    candidates = _candidates(spans, chosen, (start_char, end_char), probabilities, context, token_offsets, settings)
    if null_diff is not None and null_diff > settings.null_score_diff_threshold:
        return Answer("", None, None, null_score, probabilities[-1], null_diff, candidates=candidates,
                      best_span_text=context[start_char:end_char])
    raw_start, raw_end = text_span
    return Answer(context[start_char:end_char], start_char, end_char, best_score, probabilities[0], null_diff,
                  raw_start, raw_end, candidates, context[start_char:end_char])


def _answer_span(context: str, token_offsets: Sequence[tuple[int, int]], span: tuple[int, int],
                 settings: DecodeSettings) -> tuple[int, int]:
    """A span's characters as an answer: widened to whole words with align_to_words, unless that takes it past
    max_answer_length tokens."""
    if not settings.align_to_words:
        return span
    widened = whole_words(context, *span)
    return span if _tokens_within(token_offsets, *widened) > settings.max_answer_length else widened


def _candidates(spans: CandidateSpans, chosen: np.ndarray, first: tuple[int, int], probabilities: list[float],
                context: str, token_offsets: Sequence[tuple[int, int]], settings: DecodeSettings
                ) -> tuple[Candidate, ...]:
    """The top_k best of the chosen spans (best first; `first` the first's characters as an answer) whose texts
    differ, as answers are cut: a text found again further down (the same name twice in a passage) is the first's,
    as in Google's n-best list."""
    if not settings.top_k:
        return ()
    found: list[Candidate] = []
    texts: set[str] = set()
    for rank, candidate in enumerate(chosen):
        if rank == 0:
            start_char, end_char = first
        elif (span := _text_span(spans, candidate, context, token_offsets)) is None:
            continue
        else:
            start_char, end_char = _answer_span(context, token_offsets, span, settings)
        if (text := context[start_char:end_char]) in texts:
            continue
        texts.add(text)
        found.append(Candidate(text, start_char, end_char, float(spans.scores[candidate]), probabilities[rank]))
        if len(found) == settings.top_k:
            break
    return tuple(found)


def _text_span(spans: CandidateSpans, candidate: int, context: str, token_offsets: Sequence[tuple[int, int]]
               ) -> tuple[int, int] | None:
    """The characters of a candidate span, from its first token's start through its last token's end and the
    combining marks after it, less whitespace at either end (SentencePiece's tokens carry the space before a
    word); None where nothing but whitespace is left."""
    start = int(token_offsets[spans.start_tokens[candidate]][0])
    end = _through_combining_marks(context, int(token_offsets[spans.end_tokens[candidate]][1]))
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


# Scripts written without spaces between words: there each character counts as a word (code point ranges:
# CJK ideographs as in Google's BERT tokenizer, then Hiragana, Katakana, Thai, Lao, Myanmar, Khmer).
_UNSPACED_SCRIPTS = (
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF), (0x2A700, 0x2CEAF),
    (0x2F800, 0x2FA1F), (0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F), (0x0E00, 0x0EFF),
    (0x1000, 0x109F), (0x1780, 0x17FF),
)


_FIRST_UNSPACED = min(low for low, _ in _UNSPACED_SCRIPTS)


def _unspaced(char: str) -> bool:
    point = ord(char)
    # Most text is below every range: one comparison instead of twelve.
    return point >= _FIRST_UNSPACED and any(low <= point <= high for low, high in _UNSPACED_SCRIPTS)


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
