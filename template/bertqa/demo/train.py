"""Builds the bundled demo: generated passages, a WordPiece vocab, and a tiny BERT trained to answer.

Deterministic (fixed seeds, single-threaded TensorFlow ops). Run `python -m bertqa.demo.train
--output_dir=demo`; it writes vocab.txt, model/ (SavedModel), questions.jsonl (labelled sample
questions) and prints the model's EM/F1 on them.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from bertqa.decoding import DecodeSettings, WindowLogits, decode_answer
from bertqa.demo import data
from bertqa.metrics import MetricTotals, score_question
from bertqa.windows import Featurizer, WindowSettings, padded_length, parse_vocab

# The demo model is small and trained on short windows; the demo runs it with these settings.
DEMO_WINDOWS = WindowSettings(max_seq_length=128, doc_stride=48, max_query_length=32)
TRAIN_SEED, SAMPLE_SEED = 1, 7


def train_vocab(texts: list[str], path: str, vocab_size: int = 1500) -> None:
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(lowercase=True, strip_accents=True)
    tokenizer.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(token + "\n" for token, _ in vocab)


def _token_span(offsets, start_char: int, end_char: int) -> tuple[int, int]:
    first = next(i for i, (_, end) in enumerate(offsets) if end > start_char)
    last = max(i for i, (start, _) in enumerate(offsets) if start < end_char)
    return first, last


def training_arrays(records: list[dict], featurizer: Featurizer) -> dict[str, np.ndarray]:
    """Every window of every record, padded to max_seq_length, with its start/end labels
    ([CLS] = 0 where the window does not hold the answer)."""
    rows = {"ids": [], "types": [], "mask": [], "start": [], "end": []}
    length = featurizer.settings.max_seq_length
    for record in records:
        passage = featurizer.tokenize_passage(record["context"])
        span = None
        if record["answers"]:
            answer = record["answers"][0]
            span = _token_span(passage.offsets, answer["answer_start"], answer["answer_start"] + len(answer["text"]))
        for window in featurizer.windows(record["id"], record["question"], passage):
            start = end = 0
            if span and window.doc_offset <= span[0] and span[1] < window.doc_offset + window.doc_length:
                start = window.context_start + span[0] - window.doc_offset
                end = window.context_start + span[1] - window.doc_offset
            pad = length - window.length
            rows["ids"].append(np.pad(window.input_ids, (0, pad)))
            rows["types"].append(np.pad(window.token_type_ids, (0, pad)))
            rows["mask"].append(np.pad(np.ones(window.length, np.int32), (0, pad)))
            rows["start"].append(start)
            rows["end"].append(end)
    return {key: np.asarray(value, dtype=np.int32) for key, value in rows.items()}


def evaluate(model, records: list[dict], featurizer: Featurizer) -> dict:
    """EM/F1 of `model` on labelled records, decoded exactly as the pipeline decodes."""
    totals = MetricTotals()
    settings = DecodeSettings()
    for record in records:
        passage = featurizer.tokenize_passage(record["context"])
        windows = featurizer.windows(record["id"], record["question"], passage)
        logits = []
        for window in windows:
            length = padded_length(window.length)
            ids = np.pad(window.input_ids, (0, length - window.length))[None]
            types = np.pad(window.token_type_ids, (0, length - window.length))[None]
            mask = (np.arange(length) < window.length).astype(np.int32)[None]
            out = model.logits(ids, mask, types).numpy()[0, : window.length]
            logits.append(WindowLogits(window.index, window.context_start, window.doc_offset,
                                       window.max_context, out[:, 0], out[:, 1]))
        answer = decode_answer(logits, record["context"], passage.offsets, settings)
        totals.add(score_question([a["text"] for a in record["answers"]], answer.text))
    return totals.summary()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="demo")
    parser.add_argument("--train_passages", type=int, default=3000)
    parser.add_argument("--sample_passages", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args(argv)

    import tensorflow as tf

    from bertqa.demo.tiny_bert import TinyBertConfig, TinyBertQA, export

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    tf.random.set_seed(0)
    began = time.time()
    os.makedirs(args.output_dir, exist_ok=True)
    train_records = list(data.generate(TRAIN_SEED, args.train_passages))
    sample_records = list(data.generate(SAMPLE_SEED, args.sample_passages))
    vocab_path = os.path.join(args.output_dir, "vocab.txt")
    train_vocab([r["context"] for r in train_records] + [r["question"] for r in train_records], vocab_path)
    with open(vocab_path, encoding="utf-8") as handle:
        vocab = parse_vocab(handle.read())
    featurizer = Featurizer(vocab, do_lower_case=True, settings=DEMO_WINDOWS)
    arrays = training_arrays(train_records, featurizer)
    print(f"{len(train_records)} training questions, {len(arrays['ids'])} windows, vocab {len(vocab)}")

    model = TinyBertQA(TinyBertConfig(vocab_size=len(vocab), max_positions=DEMO_WINDOWS.max_seq_length))
    batch_size = 32
    steps = args.epochs * len(arrays["ids"]) // batch_size
    schedule = tf.keras.optimizers.schedules.PolynomialDecay(1e-3, steps, 1e-5)
    optimizer = tf.keras.optimizers.Adam(schedule)

    @tf.function(reduce_retracing=True)
    def step(ids, mask, types, start, end):
        with tf.GradientTape() as tape:
            logits = model.logits(ids, mask, types, training=True)
            loss = (
                tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(start, logits[..., 0]))
                + tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(end, logits[..., 1]))
            ) / 2
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(0)
    for epoch in range(args.epochs):
        order = rng.permutation(len(arrays["ids"]))
        losses = []
        for first in range(0, len(order) - batch_size + 1, batch_size):
            rows = order[first : first + batch_size]
            losses.append(float(step(*(tf.constant(arrays[k][rows]) for k in ("ids", "mask", "types", "start", "end")))))
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.3f} ({time.time() - began:.0f} s)", flush=True)

    metrics = evaluate(model, sample_records, featurizer)
    print("sample questions:", json.dumps({k: round(v, 2) for k, v in metrics.items()}))
    export(model, os.path.join(args.output_dir, "model"))
    with open(os.path.join(args.output_dir, "questions.jsonl"), "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in sample_records)
    print(f"demo written to {args.output_dir} in {time.time() - began:.0f} s")


if __name__ == "__main__":
    main()
