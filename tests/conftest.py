"""Shared test fixtures: a WordPiece vocab trained here, tiny BERT SavedModels, question files."""

from __future__ import annotations

import json
import os

import pytest

from bertqa.demo import data

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def sample_records() -> list[dict]:
    return list(data.generate(seed=11, passages=6))


@pytest.fixture(scope="session")
def vocab_path(tmp_path_factory, sample_records) -> str:
    from bertqa.demo.train import train_vocab

    path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
    texts = [r["context"] for r in data.generate(seed=3, passages=200)] + [r["question"] for r in sample_records]
    train_vocab(texts, path, vocab_size=600)
    return path


@pytest.fixture(scope="session")
def vocab(vocab_path):
    from bertqa.windows import parse_vocab

    with open(vocab_path, encoding="utf-8") as handle:
        return parse_vocab(handle.read())


@pytest.fixture(scope="session")
def tiny_model(vocab):
    from bertqa.demo.tiny_bert import TinyBertConfig, TinyBertQA

    return TinyBertQA(TinyBertConfig(vocab_size=len(vocab), max_positions=512, hidden_size=32, num_heads=2), seed=5)


def cached_by_arguments(build):
    """`build(convention, **options) -> path`, run once per distinct set of arguments in the session."""
    cache = {}

    def make(convention="huggingface", **options):
        key = (convention, tuple(sorted((name, str(value)) for name, value in options.items())))
        if key not in cache:
            cache[key] = build(convention, **options)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory, tiny_model):
    """The tiny model as a SavedModel in a given signature convention."""
    from bertqa.demo.tiny_bert import export

    def build(convention, **options):
        path = str(tmp_path_factory.mktemp(f"model_{convention}"))
        export(tiny_model, path, convention, **options)
        return path

    return cached_by_arguments(build)


def write_jsonl(path, records) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)) + "\n")
    return str(path)
