"""From a question and its passage to the model input windows that cover the whole passage.

The passage is tokenized once (with character offsets, via `tokenizers`: WordPiece or any fast tokenizer, see
`tokenization.py`) and cut into overlapping windows exactly as Google's BERT SQuAD code does: the model's
special tokens around the question and one slice of the passage (`[CLS] question [SEP] window [SEP]` for BERT,
`<s> question </s></s> window </s>` for RoBERTa), a new window every `doc_stride` tokens until the passage end
is inside one. Every window is kept, so an answer late in a long passage is still found.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import numpy as np

from bertqa.qa.tokenization import PairLayout, QATokenizer

# Sequences are padded to a multiple of this: a batch of short windows costs little.
PAD_MULTIPLE = 64


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    """How questions and passages are cut into windows (TemplateParams.window_settings builds it)."""

    max_seq_length: int
    doc_stride: int
    max_query_length: int


@dataclasses.dataclass
class Window:
    """One model input: the question followed by one slice of the passage's tokens."""

    question_id: str
    index: int
    input_ids: np.ndarray  # int32, unpadded: [CLS] q [SEP] doc-slice [SEP], or the model's own layout
    token_type_ids: np.ndarray  # int32: the layout's segment ids (BERT: 0 for the question part, 1 for the passage)
    context_start: int  # sequence position of the first passage token
    doc_offset: int  # index (in the passage's tokens) of the first token in this window
    max_context: np.ndarray  # bool per passage token in the window: this window sees it best
    pad_id: int = 0  # what padding after the window holds

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def doc_length(self) -> int:
        return len(self.max_context)


@dataclasses.dataclass
class TokenizedPassage:
    """The passage's WordPiece tokens and the character span each one covers."""

    token_ids: np.ndarray  # int32
    offsets: np.ndarray  # int32 [tokens, 2]: start and end character of each token


@dataclasses.dataclass
class FeaturizedQuestion:
    """A question with its tokens and its passage's, as it travels to the model step: a few arrays, from
    which that step makes the windows (`windows()`), instead of one element per window."""

    question: Any  # the record (bertqa.io.records.Question), carried through to decoding
    query_ids: np.ndarray  # int32, already cut to max_query_length
    passage: TokenizedPassage
    spans: list[tuple[int, int]]  # (first passage token, length) of each window
    layout: PairLayout  # the model's special tokens and segment ids

    @property
    def context_start(self) -> int:
        """Where the passage starts in each window: after the prefix ([CLS]), the question and the middle ([SEP])."""
        return len(self.layout.prefix) + len(self.query_ids) + len(self.layout.middle)

    def window_lengths(self) -> list[int]:
        """The length of each window (before padding), from its span: the passage slice and the suffix ([SEP])."""
        return [self.context_start + length + len(self.layout.suffix) for _, length in self.spans]

    def windows(self) -> list[Window]:
        return make_windows(self.question.id, self.query_ids, self.passage.token_ids, self.spans, self.layout)

    def __reduce__(self):
        # Across a stage boundary: arrays as bytes in a plain tuple, not a pickled dataclass of arrays.
        # The spans, a few pairs of ints, stay a list: a round trip 2 us faster than as an array's bytes; the
        # layout goes as a plain tuple, not as a named one (whose pickle names its class in every element).
        return _featurized_question, (self.question, self.query_ids.tobytes(), self.passage.token_ids.tobytes(),
                                      self.passage.offsets.tobytes(), self.spans, tuple(self.layout))


class WindowOf(NamedTuple):
    """Window `index` of a featurized question, not made into arrays: the model step fills its padded
    batch straight from the question's tokens (`pad_windows_of`), a few numpy calls per window fewer."""

    question: FeaturizedQuestion
    index: int

    @property
    def question_id(self) -> str:
        return self.question.question.id

    @property
    def length(self) -> int:
        return self.question.context_start + self.question.spans[self.index][1] + len(self.question.layout.suffix)


def _featurized_question(question, query_ids, token_ids, offsets, spans, layout) -> FeaturizedQuestion:
    passage = TokenizedPassage(np.frombuffer(token_ids, np.int32), np.frombuffer(offsets, np.int32).reshape(-1, 2))
    return FeaturizedQuestion(question, np.frombuffer(query_ids, np.int32), passage, spans, PairLayout(*layout))


class Featurizer:
    """Turns (question, passage) into windows; holds the tokenizer, safe to share per process."""

    def __init__(self, tokenizer: QATokenizer, settings: WindowSettings):
        self.settings = settings
        self._tokenizer = tokenizer.tokenizer
        self.layout = tokenizer.layout
        self.unknown_id = tokenizer.unknown_id

    def tokenize_passage(self, context: str) -> TokenizedPassage:
        encoding = self._tokenizer.encode(context, add_special_tokens=False)
        return TokenizedPassage(np.asarray(encoding.ids, dtype=np.int32),
                                np.asarray(encoding.offsets, dtype=np.int32).reshape(-1, 2))

    def question_ids(self, question: str) -> np.ndarray:
        return self.questions_ids([question])[0]

    def questions_ids(self, questions: Sequence[str]) -> list[np.ndarray]:
        """Each question's token ids, cut to max_query_length; one call into the tokenizer for all."""
        return [ids for ids, _ in self.questions_tokens(questions)]

    def questions_tokens(self, questions: Sequence[str]) -> list[tuple[np.ndarray, int]]:
        """Each question's token ids cut to max_query_length, and how many tokens it has whole (more than
        max_query_length: the model sees only its start); one call into the tokenizer for all. Whitespace around a
        question means nothing, but a byte-level BPE tokenizer would make a token of it."""
        encodings = self._tokenizer.encode_batch([question.strip() for question in questions],
                                                 add_special_tokens=False)
        limit = self.settings.max_query_length
        return [(np.asarray(encoding.ids[:limit], dtype=np.int32), len(encoding.ids)) for encoding in encodings]

    def featurize(self, question: Any, query_ids: np.ndarray, passage: TokenizedPassage) -> FeaturizedQuestion:
        return FeaturizedQuestion(question, query_ids, passage, self._spans(query_ids, passage), self.layout)

    def windows(self, question_id: str, question: str, passage: TokenizedPassage) -> list[Window]:
        query = self.question_ids(question)
        return make_windows(question_id, query, passage.token_ids, self._spans(query, passage), self.layout)

    def _spans(self, query_ids: np.ndarray, passage: TokenizedPassage) -> list[tuple[int, int]]:
        # Room for passage tokens: the window less the question and the special tokens.
        return doc_spans(len(passage.token_ids),
                         self.settings.max_seq_length - len(query_ids) - self.layout.special_tokens,
                         self.settings.doc_stride)


def make_windows(question_id: str, query_ids: np.ndarray, passage_ids: np.ndarray,
                 spans: Sequence[tuple[int, int]], layout: PairLayout) -> list[Window]:
    """`prefix question middle passage[start:start + length] suffix` for each span (BERT: `[CLS] question [SEP]
    passage-slice [SEP]`), with the layout's segment ids."""
    question_part = np.concatenate([layout.prefix, query_ids, layout.middle]).astype(np.int32)
    context_start = len(question_part)
    masks = max_context_masks(spans)
    result = []
    for index, (start, length) in enumerate(spans):
        ids = np.concatenate([question_part, passage_ids[start:start + length], layout.suffix]).astype(np.int32)
        types = np.full(len(ids), layout.passage_type, dtype=np.int32)
        types[:context_start] = layout.question_type
        result.append(Window(question_id, index, ids, types, context_start, start, masks[index], layout.pad_id))
    return result


def doc_spans(num_tokens: int, max_tokens_per_window: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window over `num_tokens` passage tokens; together they cover all.

    An empty passage still gets one (empty) window so that the question is scored for "no answer".
    """
    if max_tokens_per_window < 1:
        raise ValueError("no room for passage tokens in the window")
    if doc_stride < 1:
        raise ValueError("doc_stride must be at least 1")
    spans = []
    start = 0
    while True:
        length = min(num_tokens - start, max_tokens_per_window)
        spans.append((start, length))
        if start + length >= num_tokens:
            return spans
        start += min(length, doc_stride)


def max_context_masks(spans: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """For each window, for each of its tokens: whether no other window sees that token with more context.

    A token in the overlap of two windows is answered from the window where it sits most centrally,
    as in Google's `_check_is_max_context` (score = min(left, right context) + 0.01 * length; on a tie
    the first window wins). Computed for all windows at once over a windows x tokens score table.
    """
    if len(spans) == 1:  # most questions: one window sees every token
        return [np.ones(spans[0][1], dtype=bool)]
    starts = np.array([start for start, _ in spans], dtype=np.int64)[:, None]
    lengths = np.array([length for _, length in spans], dtype=np.int64)[:, None]
    positions = np.arange(int((starts + lengths).max()), dtype=np.int64)[None, :]
    ends = starts + lengths - 1
    scores = np.minimum(positions - starts, ends - positions) + 0.01 * lengths
    scores[(positions < starts) | (positions > ends)] = -np.inf
    owner = np.argmax(scores, axis=0)  # the first of equal scores, as the reference loop keeps it
    return [owner[start:start + length] == index for index, (start, length) in enumerate(spans)]


def padded_length(length: int, fixed_length: int | None = None) -> int:
    """The length a window is padded to: the next multiple of PAD_MULTIPLE, or the model's fixed one."""
    if fixed_length is not None:
        return fixed_length
    return -(-length // PAD_MULTIPLE) * PAD_MULTIPLE


def pad_batch(windows: Sequence[Window], length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, token_type_ids), each [len(windows), length] int32; the padding holds the
    layout's padding token, mask and segment id 0."""
    ids = np.full((len(windows), length), windows[0].pad_id if windows else 0, dtype=np.int32)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, window in enumerate(windows):
        ids[row, : window.length] = window.input_ids
        mask[row, : window.length] = 1
        types[row, : window.length] = window.token_type_ids
    return ids, mask, types


def pad_windows_of(windows: Sequence[WindowOf], length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrays `pad_batch` gives for these windows made, filled straight from their questions' tokens. The
    windows' questions share one layout (a job's tokenizer)."""
    layout = windows[0].question.layout
    ids = np.full((len(windows), length), layout.pad_id, dtype=np.int32)
    context_starts = np.empty(len(windows), dtype=np.int64)
    ends = np.empty(len(windows), dtype=np.int64)  # where each window's passage slice ends
    first = len(layout.prefix)
    for row, (question, index) in enumerate(windows):
        start, count = question.spans[index]
        context_start = question.context_start
        ids[row, first:first + len(question.query_ids)] = question.query_ids
        ids[row, context_start:context_start + count] = question.passage.token_ids[start:start + count]
        context_starts[row], ends[row] = context_start, context_start + count
    rows = np.arange(len(windows))[:, None]
    ids[:, :first] = layout.prefix
    ids[rows, context_starts[:, None] - len(layout.middle) + np.arange(len(layout.middle))] = layout.middle
    ids[rows, ends[:, None] + np.arange(len(layout.suffix))] = layout.suffix
    positions = np.arange(length)[None, :]
    inside = positions < (ends + len(layout.suffix))[:, None]
    types = np.where(positions < context_starts[:, None], layout.question_type, layout.passage_type)
    return ids, inside.astype(np.int32), (inside * types).astype(np.int32)
