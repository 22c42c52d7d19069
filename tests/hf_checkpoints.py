"""Tiny randomly initialised Hugging Face QA checkpoints of the architectures people serve, built here (no hub):
the model with `save_pretrained`, its tokenizer made by transformers' own class for that model from a vocabulary
trained here with `tokenizers` (WordPiece for BERT and DistilBERT, byte-level BPE for RoBERTa, Unigram for
DeBERTa-v3, ALBERT and XLM-R), so that tokenizer.json holds what the class writes for a real checkpoint:
normalizer, pre-tokenizer, special tokens and post-processor."""

from __future__ import annotations

import functools
import json

from bertqa.demo import data

ARCHITECTURES = ("bert", "roberta", "deberta-v2", "albert", "xlm-roberta", "distilbert")
SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48)


@functools.lru_cache(maxsize=None)
def training_texts() -> tuple[str, ...]:
    return tuple(r["context"] for r in data.generate(seed=3, passages=200)) + tuple(
        r["question"] for r in data.generate(seed=11, passages=40))


def _unigram(specials: list[str], unk: str, vocab_size: int = 900) -> list[tuple[str, float]]:
    """A Unigram vocabulary (piece, log probability) trained on the demo passages, specials first."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.train_from_iterator(training_texts(), trainers.UnigramTrainer(vocab_size=vocab_size,
                                                                            special_tokens=specials, unk_token=unk))
    return [(piece, float(score)) for piece, score in json.loads(tokenizer.to_str())["model"]["vocab"]]


def _byte_level_bpe(specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(training_texts(), trainers.BpeTrainer(
        vocab_size=1000, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" ")) for pair in model["merges"]]


def make_tokenizer(kind: str, vocab_path: str | None = None):
    """The transformers tokenizer of `kind`, as that model's class builds it from a vocabulary."""
    import transformers

    if kind in ("bert", "distilbert"):
        return transformers.BertTokenizer(vocab=vocab_path, do_lower_case=True)
    if kind == "roberta":
        vocab, merges = _byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        return transformers.RobertaTokenizer(vocab=vocab, merges=merges)
    if kind == "deberta-v2":
        return transformers.DebertaV2Tokenizer(vocab=_unigram(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[UNK]"))
    if kind == "albert":
        return transformers.AlbertTokenizer(vocab=_unigram(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>"))
    if kind == "xlm-roberta":
        return transformers.XLMRobertaTokenizer(vocab=_unigram(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>"))
    raise ValueError(kind)


def make_model(kind: str, vocab_size: int, pad_token_id: int, positions: int = 512, seed: int = 0):
    """A randomly initialised *ForQuestionAnswering model of `kind`; `positions` tokens fit in its windows."""
    import torch
    import transformers

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, pad_token_id=pad_token_id, **SIZE)
    if kind == "bert":
        return transformers.BertForQuestionAnswering(transformers.BertConfig(max_position_embeddings=positions,
                                                                             **common))
    if kind == "distilbert":
        config = transformers.DistilBertConfig(vocab_size=vocab_size, pad_token_id=pad_token_id, dim=32, n_layers=2,
                                               n_heads=2, hidden_dim=48, max_position_embeddings=positions)
        return transformers.DistilBertForQuestionAnswering(config)
    if kind in ("roberta", "xlm-roberta"):
        # Positions are numbered from pad_token_id + 1: the table holds two more rows than tokens fit.
        config_class = transformers.RobertaConfig if kind == "roberta" else transformers.XLMRobertaConfig
        config = config_class(max_position_embeddings=positions + pad_token_id + 1, type_vocab_size=1, **common)
        model_class = (transformers.RobertaForQuestionAnswering if kind == "roberta"
                       else transformers.XLMRobertaForQuestionAnswering)
        return model_class(config)
    if kind == "deberta-v2":  # DeBERTa-v3's shape: relative attention only, no segment embedding
        config = transformers.DebertaV2Config(max_position_embeddings=positions, type_vocab_size=0,
                                              relative_attention=True, position_biased_input=False,
                                              pos_att_type=["p2c", "c2p"], position_buckets=32,
                                              max_relative_positions=-1, norm_rel_ebd="layer_norm",
                                              share_att_key=True, **common)
        return transformers.DebertaV2ForQuestionAnswering(config)
    if kind == "albert":
        config = transformers.AlbertConfig(max_position_embeddings=positions, embedding_size=16, **common)
        return transformers.AlbertForQuestionAnswering(config)
    raise ValueError(kind)


def save_checkpoint(kind: str, directory, vocab_path: str | None = None, positions: int = 512, seed: int = 0):
    """A checkpoint directory of `kind` (config.json, model.safetensors, tokenizer files); returns the model."""
    import transformers

    transformers.logging.disable_progress_bar()
    tokenizer = make_tokenizer(kind, vocab_path)
    model = make_model(kind, len(tokenizer), tokenizer.pad_token_id, positions, seed).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model
