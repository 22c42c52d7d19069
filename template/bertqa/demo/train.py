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

from bertqa.params import TemplateParams
from bertqa.qa.decoding import WindowLogits, decode_answer
from bertqa.demo import data
from bertqa.qa.metrics import MetricTotals, score_question
from bertqa.qa.windows import Featurizer, pad_batch, padded_length
from bertqa.qa.tokenization import parse_vocab, wordpiece

# The demo model is small and trained on short windows; the demo runs it with these settings.
# Its answers are short facts (names, years, numbers; at most 6 tokens in the generated data), so
# spans over 12 tokens, twice that, are not considered.
# The job parameters of the demo (every other one its default; model_construct: no paths, as no job runs here).
DEMO = TemplateParams.model_construct(max_seq_length=128, doc_stride=48, max_query_length=32, max_answer_length=12)
DEMO_WINDOWS = DEMO.window_settings
DEMO_DECODE = DEMO.decode_settings
DEMO_ARGS = [f"--max_seq_length={DEMO_WINDOWS.max_seq_length}", f"--doc_stride={DEMO_WINDOWS.doc_stride}",
             f"--max_query_length={DEMO_WINDOWS.max_query_length}",
             f"--max_answer_length={DEMO_DECODE.max_answer_length}"]
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


def training_arrays(records: list[dict], featurizer: Featurizer, keep_misses: float = 0.5) -> dict[str, np.ndarray]:
    """The windows of every record, padded to max_seq_length, with their start/end labels ([CLS] = 0
    where the window does not hold the answer). Of an answerable question's windows that miss the
    answer only a `keep_misses` share is kept: more answers per step, while unanswerable questions
    still teach "no answer" in full."""
    rng = np.random.default_rng(1)
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
            elif span and rng.random() >= keep_misses:
                continue
            ids, mask, types = (array[0] for array in pad_batch([window], length))
            rows["ids"].append(ids)
            rows["types"].append(types)
            rows["mask"].append(mask)
            rows["start"].append(start)
            rows["end"].append(end)
    return {key: np.asarray(value, dtype=np.int32) for key, value in rows.items()}


def evaluate(model, records: list[dict], featurizer: Featurizer) -> dict:
    """EM/F1 of `model` on labelled records, decoded exactly as the pipeline decodes."""
    totals = MetricTotals()
    for record in records:
        passage = featurizer.tokenize_passage(record["context"])
        windows = featurizer.windows(record["id"], record["question"], passage)
        logits = []
        for window in windows:
            out = model.logits(*pad_batch([window], padded_length(window.length))).numpy()[0, : window.length]
            logits.append(WindowLogits(window.index, window.context_start, window.doc_offset,
                                       window.max_context, out[:, 0], out[:, 1]))
        answer = decode_answer(logits, record["context"], passage.offsets, DEMO_DECODE)
        totals.add(score_question([a["text"] for a in record["answers"]], answer.text))
    return totals.summary()


def _schedule(tf, steps: int):
    """Linear warm-up to 2e-3 over the first tenth of training, then linear decay."""

    class WarmupDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warmup = steps / 10
            return 2e-3 * tf.minimum(step / warmup, tf.maximum(1e-3, (steps - step) / (steps - warmup)))

    return WarmupDecay()


def _length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of windows of similar length, so that short windows are not padded to long ones."""
    order = rng.permutation(len(lengths))
    order = order[np.argsort(-(-lengths[order] // 16), kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="demo")
    parser.add_argument("--train_passages", type=int, default=6000)
    parser.add_argument("--sample_passages", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
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
    featurizer = Featurizer(wordpiece(vocab, do_lower_case=True), settings=DEMO_WINDOWS)
    arrays = training_arrays(train_records, featurizer)
    print(f"{len(train_records)} training questions, {len(arrays['ids'])} windows, vocab {len(vocab)}")

    model = TinyBertQA(TinyBertConfig(vocab_size=len(vocab), num_layers=3, intermediate_size=256,
                                      max_positions=DEMO_WINDOWS.max_seq_length))
    batch_size = 32
    lengths = arrays["mask"].sum(axis=1)
    steps = args.epochs * (len(lengths) // batch_size + 8)
    optimizer = tf.keras.optimizers.Adam(_schedule(tf, steps))
    matrix = tf.TensorSpec([None, None], tf.int32)
    vector = tf.TensorSpec([None], tf.int32)

    @tf.function(input_signature=[matrix, matrix, matrix, vector, vector])
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
        losses = []
        for rows in _length_batches(lengths, batch_size, rng):
            width = int(lengths[rows].max())
            batch = [arrays[k][rows, :width] for k in ("ids", "mask", "types")] + [arrays[k][rows] for k in ("start", "end")]
            losses.append(float(step(*batch)))
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.3f} ({time.time() - began:.0f} s)", flush=True)

    metrics = evaluate(model, sample_records, featurizer)
    print("sample questions:", json.dumps({k: round(v, 2) for k, v in metrics.items()}))
    export(model, os.path.join(args.output_dir, "model"))
    with open(os.path.join(args.output_dir, "questions.jsonl"), "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in sample_records)
    print(f"demo written to {args.output_dir} in {time.time() - began:.0f} s")


if __name__ == "__main__":
    main()
