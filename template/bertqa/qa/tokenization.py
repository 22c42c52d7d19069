"""The tokenizer a job cuts its windows with, and where its special tokens go around a question and a passage.

Two sources:
- a WordPiece `vocab.txt` (`--vocab_path`): Google's BERT tokenization, windows exactly as its SQuAD code makes
  them (`[CLS] question [SEP] passage [SEP]`, segments 0 and 1);
- a Hugging Face fast tokenizer's `tokenizer.json` (`--tokenizer_path`, or the checkpoint directory of
  `--backend=pytorch`): any model's tokenizer, RoBERTa's byte-level BPE and the SentencePiece models (DeBERTa-v3,
  ALBERT, XLM-R) included. Its post-processor says where the special tokens go (`<s> q </s></s> p </s>` for
  RoBERTa and XLM-R) and which segment ids the two parts get; the window layout is read from it
  (`PairLayout`), not written per model.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, NamedTuple

TOKENIZER_FILE = "tokenizer.json"
LARGEST_VOCAB_BYTES = 64 << 20  # real WordPiece vocabs are well under 1 MB
LARGEST_TOKENIZER_BYTES = 512 << 20  # XLM-R's tokenizer.json is 17 MB; the largest in use are some 100 MB


class TokenizerError(ValueError):
    """A vocabulary or tokenizer.json this template cannot cut windows with; the message says why."""


class PairLayout(NamedTuple):
    """Where a model's special tokens go around a question and a passage, and the segment id of each part:
    `prefix question middle passage suffix`. BERT: ([CLS]), ([SEP]), ([SEP]), segments 0 and 1; RoBERTa and XLM-R:
    (<s>), (</s>, </s>), (</s>), segments 0 and 0. The first token (prefix[0]) is where a model trained on SQuAD v2
    scores "no answer"."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    question_type: int  # segment id of the prefix, the question and the middle
    passage_type: int  # segment id of the passage and the suffix
    pad_id: int

    @property
    def special_tokens(self) -> int:
        """How many special tokens a window holds besides the question and the passage."""
        return len(self.prefix) + len(self.middle) + len(self.suffix)


@dataclasses.dataclass(frozen=True)
class QATokenizer:
    """A loaded `tokenizers.Tokenizer` and its pair layout."""

    tokenizer: Any
    layout: PairLayout

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def unknown_id(self) -> int | None:
        """The id of the token that stands for text the vocabulary lacks ([UNK], <unk>); None where there is
        none (a byte-level BPE vocabulary spells every byte)."""
        model = self.tokenizer.model
        if (token := getattr(model, "unk_token", None)) is not None:
            return self.tokenizer.token_to_id(token)
        if type(model).__name__ == "Unigram":  # its unk_id is only in its serialized form
            return json.loads(self.tokenizer.to_str())["model"].get("unk_id")
        return None


def vocabulary_mismatch(tokens: int, embedded: int) -> str | None:
    """Why a tokenizer of `tokens` tokens cannot be the one of a model whose embedding table has `embedded` rows:
    more tokens than rows (ids out of range), or fewer than half (embedding tables are padded a little, never
    doubled: most text would become tokens the model was not trained on); None where the sizes agree."""
    if tokens > embedded:
        return f"the tokenizer has {tokens:,} tokens and the model embeds {embedded:,}: it is not this model's tokenizer"
    if tokens < embedded // 2:
        return (f"the tokenizer has only {tokens:,} tokens and the model embeds {embedded:,}: it is not this model's "
                "tokenizer (most text would become unknown tokens)")
    return None


def parse_vocab(text: str) -> dict[str, int]:
    """A BERT vocab.txt (one token per line, index = line number) as a token -> id map. Lines end at "\\n" only, as
    Google's load_vocab and `tokenizers` read them: str.splitlines would also end one at U+2028 or U+0085 inside a
    token and shift the id of every token after it."""
    vocab = {}
    for index, line in enumerate(text.split("\n")):
        token = line.rstrip("\r\n")
        if token and token not in vocab:
            vocab[token] = index
    missing = [t for t in ("[CLS]", "[SEP]", "[UNK]") if t not in vocab]
    if missing:
        raise TokenizerError(f"vocab has no {', '.join(missing)} token: not a BERT WordPiece vocab")
    return vocab


def wordpiece(vocab: Mapping[str, int], do_lower_case: bool) -> QATokenizer:
    """Google's BERT tokenization of a vocab.txt: accents stripped exactly when lower-casing, as BERT's uncased
    and cased models do."""
    from tokenizers import BertWordPieceTokenizer, Tokenizer

    tokenizer = Tokenizer.from_str(
        BertWordPieceTokenizer(dict(vocab), lowercase=do_lower_case, strip_accents=do_lower_case).to_str())
    return _qa_tokenizer(tokenizer, vocab.get("[PAD]", 0))


def from_tokenizer_json(text: str, settings: Mapping[str, Any] | None = None) -> QATokenizer:
    """A tokenizer.json's tokenizer; `settings` are the files beside it (tokenizer_config.json, config.json),
    read for the padding token where tokenizer.json names none. Its own padding and truncation are switched
    off: windows are cut and padded by the template."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as error:  # the Rust side raises a bare Exception
        raise TokenizerError(f"not a tokenizer.json that the tokenizers library reads: {' '.join(str(error).split())[:300]}"
                             ) from None
    pad_id = _pad_id(tokenizer, settings or {})
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return _qa_tokenizer(tokenizer, pad_id)


def _qa_tokenizer(tokenizer, pad_id: int) -> QATokenizer:
    """The tokenizer with its layout; from then on the text of a special token in a question or passage ("[SEP]",
    "</s>") is tokenized as text, as Google's BERT tokenizer does, not turned into the token: a record's text
    must not add separators to a window."""
    layout = pair_layout(tokenizer, pad_id)
    tokenizer.encode_special_tokens = True
    return QATokenizer(tokenizer, layout)


def _pad_id(tokenizer, settings: Mapping[str, Any]) -> int:
    """The padding token's id: tokenizer.json's own, else tokenizer_config.json's pad_token, else config.json's
    pad_token_id, else a token named [PAD] or <pad>, else 0. It matters for models that number positions from the
    padding (RoBERTa, XLM-R)."""
    if tokenizer.padding:
        return int(tokenizer.padding["pad_id"])
    token = settings.get("tokenizer_config", {}).get("pad_token")
    if isinstance(token, dict):  # an AddedToken as older transformers wrote it
        token = token.get("content")
    for name in ([token] if isinstance(token, str) else []):
        if tokenizer.token_to_id(name) is not None:
            return tokenizer.token_to_id(name)
    pad_token_id = settings.get("config", {}).get("pad_token_id")
    if isinstance(pad_token_id, int) and not isinstance(pad_token_id, bool) and pad_token_id >= 0:
        return pad_token_id
    for name in ("[PAD]", "<pad>"):
        if tokenizer.token_to_id(name) is not None:
            return tokenizer.token_to_id(name)
    return 0


def pair_layout(tokenizer, pad_id: int) -> PairLayout:
    """The layout the tokenizer's post-processor gives a (question, passage) pair, read from a pair it encodes.

    Raises TokenizerError for a layout the template cannot answer with: no special token before the question
    (the "no answer" score is read at the first token), or segment ids that change inside a part."""
    question = tokenizer.encode("question", add_special_tokens=False)
    passage = tokenizer.encode("passage text", add_special_tokens=False)
    pair = tokenizer.encode("question", "passage text", add_special_tokens=True)
    ids, types, sequences = pair.ids, pair.type_ids, pair.sequence_ids
    positions = {part: [at for at, sequence in enumerate(sequences) if sequence == part] for part in (0, 1)}
    first, second = positions[0], positions[1]
    if (not first or not second or first != list(range(first[0], first[-1] + 1))
            or second != list(range(second[0], second[-1] + 1)) or first[-1] > second[0]
            or [ids[at] for at in first] != question.ids or [ids[at] for at in second] != passage.ids):
        raise TokenizerError("the tokenizer's post-processor does not put a question and a passage one after the "
                             "other unchanged, so windows cannot be cut from it")
    layout = PairLayout(tuple(ids[:first[0]]), tuple(ids[first[-1] + 1:second[0]]), tuple(ids[second[-1] + 1:]),
                        types[0], types[second[0]], pad_id)
    if not layout.prefix:
        raise TokenizerError(
            "the tokenizer's post-processor adds no special token before the question ([CLS] or <s>): a SQuAD v2 "
            "model scores 'no answer' at that first token. Add the model's special tokens to tokenizer.json's "
            "post_processor (its 'pair' template), as the model was trained with")
    boundary = first[0] + len(question.ids) + len(layout.middle)  # where the passage starts
    if (set(types[:boundary]) != {layout.question_type} or set(types[boundary:]) != {layout.passage_type}):
        raise TokenizerError(f"the tokenizer's segment ids change inside the question or passage part "
                             f"({types}): not a layout of two segments")
    return layout
