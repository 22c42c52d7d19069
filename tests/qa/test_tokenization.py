"""The job's tokenizer: a WordPiece vocab.txt or any tokenizer.json, the layout read from its post-processor, the
padding token from wherever the checkpoint keeps it, and a clear refusal of every file it cannot cut windows with."""

from __future__ import annotations

import json
import re

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from bertqa.qa.tokenization import PairLayout, TokenizerError, from_tokenizer_json, wordpiece
from bertqa.io.tokenizer_files import TokenizerSpec

VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "<s>": 4, "</s>": 5, "<pad>": 6, "who": 7, "is": 8, "zoë": 9,
         "?": 10, "she": 11, "sings": 12, ".": 13}


def word_level(post_processor=None, padding: str | None = None) -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    if post_processor is not None:
        tokenizer.post_processor = post_processor
    if padding:
        tokenizer.enable_padding(pad_id=VOCAB[padding], pad_token=padding)
    return tokenizer


def template(pair: str) -> processors.TemplateProcessing:
    return processors.TemplateProcessing(single="[CLS] $A [SEP]", pair=pair,
                                         special_tokens=[(name, VOCAB[name]) for name in ("[CLS]", "[SEP]")])


def test_the_layout_is_read_from_the_post_processor():
    bert = from_tokenizer_json(word_level(template("[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1")).to_str())
    assert bert.layout == PairLayout((2,), (3,), (3,), 0, 1, 0) and bert.layout.special_tokens == 3
    roberta = from_tokenizer_json(word_level(processors.RobertaProcessing(("</s>", 5), ("<s>", 4))).to_str())
    assert roberta.layout == PairLayout((4,), (5, 5), (5,), 0, 0, 0) and roberta.layout.special_tokens == 4
    # Google's WordPiece: [CLS] q [SEP] p [SEP], segments 0 and 1, [PAD] from the vocab.
    assert wordpiece({**VOCAB, "[PAD]": 0}, True).layout == PairLayout((2,), (3,), (3,), 0, 1, 0)


def test_the_padding_token_comes_from_tokenizer_json_else_the_files_beside_it(tmp_path):
    roberta = processors.RobertaProcessing(("</s>", 5), ("<s>", 4))
    assert from_tokenizer_json(word_level(roberta, padding="<pad>").to_str()).layout.pad_id == 6
    (tmp_path / "tokenizer.json").write_text(word_level(roberta).to_str())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"pad_token": {"content": "<pad>"}}))
    assert TokenizerSpec(str(tmp_path), wordpiece=False).load().layout.pad_id == 6
    (tmp_path / "tokenizer_config.json").unlink()
    (tmp_path / "config.json").write_text(json.dumps({"pad_token_id": 13}))
    assert TokenizerSpec(str(tmp_path / "tokenizer.json"), wordpiece=False).load().layout.pad_id == 13
    (tmp_path / "config.json").write_text("{not json")
    assert TokenizerSpec(str(tmp_path), wordpiece=False).load().layout.pad_id == 0  # [PAD]'s id


def test_its_own_padding_and_truncation_are_switched_off():
    tokenizer = word_level(template("[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1"), padding="[PAD]")
    tokenizer.enable_truncation(3)
    loaded = from_tokenizer_json(tokenizer.to_str()).tokenizer
    assert loaded.encode("who is zoë ? she sings .", add_special_tokens=False).ids == [7, 8, 9, 10, 11, 12, 13]
    assert [len(e.ids) for e in loaded.encode_batch(["who", "who is zoë"], add_special_tokens=False)] == [1, 3]


@pytest.mark.parametrize("post_processor, expected", [
    (None, "adds no special token before the question"),
    (template("$A:0 [SEP]:0 $B:1 [SEP]:1"), "adds no special token before the question"),
    (template("[CLS]:0 $A:0 [SEP]:1 $B:1 [SEP]:1"), "segment ids change inside the question or passage part"),
    (template("[CLS]:0 $B:1 [SEP]:0 $A:0 [SEP]:1"), "does not put a question and a passage one after the other"),
])
def test_a_layout_the_template_cannot_answer_with_is_refused_naming_why(post_processor, expected):
    with pytest.raises(TokenizerError, match=expected):
        from_tokenizer_json(word_level(post_processor).to_str())


@pytest.mark.parametrize("write, expected", [
    (lambda path: None, "not found"),
    (lambda path: path.write_bytes(b"\xff\xfe{}"), "not UTF-8 text (byte 0): not a tokenizer.json"),
    (lambda path: path.write_text('{"version": "1.0", "model": '), "not a tokenizer.json that the tokenizers library "
                                                                    "reads"),
    (lambda path: path.write_text("[" * 100_000 + "]" * 100_000), "not a tokenizer.json that the tokenizers library"),
    (lambda path: path.mkdir(), "not a file"),
])
def test_a_file_that_is_no_tokenizer_json_is_refused_naming_why(write, expected, tmp_path):
    write(tmp_path / "tokenizer.json")
    with pytest.raises(TokenizerError, match=re.escape(expected)):
        TokenizerSpec(str(tmp_path / "tokenizer.json"), wordpiece=False).load()


@pytest.mark.parametrize("wordpiece, limit", [(True, "67,108,864"), (False, "536,870,912")])
def test_a_file_far_too_large_for_a_tokenizer_is_refused_without_being_read_whole(wordpiece, limit, tmp_path):
    # A 4 GiB file (sparse: a model's weights given as its vocabulary, say): refused after its first bytes.
    import tracemalloc

    path = tmp_path / ("vocab.txt" if wordpiece else "tokenizer.json")
    with open(path, "wb") as handle:
        handle.truncate(4 << 30)
    tracemalloc.start()
    with pytest.raises(TokenizerError, match=re.escape(f"more than {limit} bytes: far too large for")):
        TokenizerSpec(str(path), wordpiece=wordpiece).load()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < (1 << 30), f"{peak / 2**20:.0f} MiB held"


def test_a_directory_must_hold_a_tokenizer_json(tmp_path):
    with pytest.raises(TokenizerError, match="a directory without a tokenizer.json"):
        TokenizerSpec(str(tmp_path), wordpiece=False).load()


def test_a_tokenizer_on_gcs_is_read_with_its_padding_token_from_beside_it(bucket):
    bucket.blob("ckpt/tokenizer.json").upload_from_string(
        word_level(processors.RobertaProcessing(("</s>", 5), ("<s>", 4))).to_str())
    bucket.blob("ckpt/tokenizer_config.json").upload_from_string(json.dumps({"pad_token": "<pad>"}))
    spec = TokenizerSpec("gs://qa/ckpt", wordpiece=False)
    assert spec.file == "gs://qa/ckpt/tokenizer.json"
    assert spec.load().layout == PairLayout((4,), (5, 5), (5,), 0, 0, 6)
    with pytest.raises(TokenizerError, match="gs://qa/none/tokenizer.json not found"):
        TokenizerSpec("gs://qa/none/", wordpiece=False).load()


@pytest.mark.parametrize("kind", ["wordpiece", "tokenizer.json"])
def test_special_tokens_written_in_a_record_are_text_not_separators(kind):
    vocab = {**VOCAB, "[": 14, "]": 15, "sep": 16}
    if kind == "wordpiece":
        tokenizer = wordpiece(vocab, True)
    else:
        tokenizer = from_tokenizer_json(word_level(template("[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1")).to_str())
    ids = tokenizer.tokenizer.encode("who is [SEP] zoë [CLS] ?", add_special_tokens=False).ids
    assert VOCAB["[SEP]"] not in ids and VOCAB["[CLS]"] not in ids
    # The model's own special tokens still frame a pair.
    pair = tokenizer.tokenizer.encode("who", "she", add_special_tokens=True).ids
    assert pair == [VOCAB["[CLS]"], VOCAB["who"], VOCAB["[SEP]"], VOCAB["she"], VOCAB["[SEP]"]]
