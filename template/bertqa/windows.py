"""From a question and its passage to the BERT input windows that cover the whole passage.

The passage is tokenized once (WordPiece with character offsets, via `tokenizers`) and cut into
overlapping windows exactly as Google's BERT SQuAD code does: `[CLS] question [SEP] window [SEP]`,
a new window every `doc_stride` tokens until the passage end is inside one. Every window is kept,
so an answer late in a long passage is still found.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
from tokenizers import BertWordPieceTokenizer

# Sequences are padded to a multiple of this: a batch of short windows costs little.
PAD_MULTIPLE = 64


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64


@dataclasses.dataclass
class Window:
    """One model input: the question followed by one slice of the passage's tokens."""

    question_id: str
    index: int
    input_ids: np.ndarray  # int32, unpadded: [CLS] q [SEP] doc-slice [SEP]
    token_type_ids: np.ndarray  # int32, 0 for question part, 1 for passage part
    context_start: int  # sequence position of the first passage token
    doc_offset: int  # index (in the passage's tokens) of the first token in this window
    max_context: np.ndarray  # bool per passage token in the window: this window sees it best

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def doc_length(self) -> int:
        return len(self.max_context)


@dataclasses.dataclass
class TokenizedPassage:
    """The passage's WordPiece tokens and the character span each one covers."""

    token_ids: list[int]
    offsets: list[tuple[int, int]]


def parse_vocab(text: str) -> dict[str, int]:
    """A BERT vocab.txt (one token per line, index = line number) as a token -> id map."""
    vocab = {}
    for index, line in enumerate(text.splitlines()):
        token = line.rstrip("\r\n")
        if token and token not in vocab:
            vocab[token] = index
    missing = [t for t in ("[CLS]", "[SEP]", "[UNK]") if t not in vocab]
    if missing:
        raise ValueError(f"vocab has no {', '.join(missing)} token: not a BERT WordPiece vocab")
    return vocab


class Featurizer:
    """Turns (question, passage) into windows; holds the tokenizer, safe to share per process."""

    def __init__(self, vocab: Mapping[str, int], do_lower_case: bool, settings: WindowSettings):
        self.settings = settings
        self._tokenizer = BertWordPieceTokenizer(
            dict(vocab), lowercase=do_lower_case, strip_accents=do_lower_case
        )
        self._cls = vocab["[CLS]"]
        self._sep = vocab["[SEP]"]

    def tokenize_passage(self, context: str) -> TokenizedPassage:
        encoding = self._tokenizer.encode(context, add_special_tokens=False)
        return TokenizedPassage(list(encoding.ids), [tuple(o) for o in encoding.offsets])

    def question_ids(self, question: str) -> list[int]:
        ids = self._tokenizer.encode(question, add_special_tokens=False).ids
        return list(ids[: self.settings.max_query_length])

    def windows(self, question_id: str, question: str, passage: TokenizedPassage) -> list[Window]:
        query = self.question_ids(question)
        spans = doc_spans(
            len(passage.token_ids),
            self.settings.max_seq_length - len(query) - 3,
            self.settings.doc_stride,
        )
        context_start = len(query) + 2
        masks = max_context_masks(spans)
        result = []
        for index, (start, length) in enumerate(spans):
            ids = [self._cls, *query, self._sep, *passage.token_ids[start : start + length], self._sep]
            types = [0] * context_start + [1] * (length + 1)
            result.append(
                Window(
                    question_id=question_id,
                    index=index,
                    input_ids=np.asarray(ids, dtype=np.int32),
                    token_type_ids=np.asarray(types, dtype=np.int32),
                    context_start=context_start,
                    doc_offset=start,
                    max_context=masks[index],
                )
            )
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
    """(input_ids, attention_mask, token_type_ids), each [len(windows), length] int32, zero-padded."""
    ids = np.zeros((len(windows), length), dtype=np.int32)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, window in enumerate(windows):
        ids[row, : window.length] = window.input_ids
        mask[row, : window.length] = 1
        types[row, : window.length] = window.token_type_ids
    return ids, mask, types
