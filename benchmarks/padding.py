"""Benchmark: windows/s of the TensorFlow backend with length-sorted batches padded to multiples of 64
(what the pipeline does) against every window padded to max_seq_length (what the article's sample did).

A randomly initialised BERT-style model (hidden 256, 4 layers) on generated passages; prints figures.
Usage: python benchmarks/padding.py [--questions=N] [--max_seq_length=384] [--batch=32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def call(windows, model) -> None:
    """One model call on `windows`, padded together to the length the model wants for the longest."""
    from bertqa.qa.windows import pad_batch

    model.predict(*pad_batch(windows, model.input_length(max(window.length for window in windows))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    from bertqa.backends.base import QAModelHandler
    from bertqa.backends.tensorflow import TensorFlowModelSpec
    from bertqa.demo import data
    from bertqa.demo.tiny_bert import TinyBertConfig, TinyBertQA, export
    from bertqa.qa.windows import Featurizer, WindowSettings, padded_length
    from bertqa.qa.tokenization import parse_vocab, wordpiece

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "demo", "vocab.txt"), encoding="utf-8") as handle:
        vocab = parse_vocab(handle.read())
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(args.max_seq_length, 128, 64))
    records = [r for _, r in zip(range(args.questions), data.generate(seed=5, passages=args.questions))]
    windows = [w for r in records for w in featurizer.windows(r["id"], r["question"],
                                                               featurizer.tokenize_passage(r["context"]))]
    config = TinyBertConfig(vocab_size=len(vocab), hidden_size=256, num_layers=4, num_heads=4,
                            intermediate_size=1024, max_positions=args.max_seq_length)
    with tempfile.TemporaryDirectory() as directory:
        export(TinyBertQA(config), directory)
        model = QAModelHandler(TensorFlowModelSpec(directory), args.max_seq_length, args.batch).load_model()

        class FixedLength:
            fixed_seq_length = args.max_seq_length
            predict = model.predict

            def input_length(self, longest: int) -> int:
                return args.max_seq_length

        by_length = sorted(windows, key=lambda w: padded_length(w.length))
        runs = {
            "length-sorted, padded to x64": (model, by_length),
            f"padded to {args.max_seq_length}": (FixedLength(), windows),
        }
        mean_length = np.mean([w.length for w in windows])
        print(f"{len(records)} questions, {len(windows)} windows, mean window length {mean_length:.0f} tokens, "
              f"batch {args.batch}, model hidden {config.hidden_size} x {config.num_layers} layers")
        for name, (runner, ordered) in runs.items():
            batches = [ordered[i:i + args.batch] for i in range(0, len(ordered), args.batch)]
            call(batches[0], runner)  # warm-up
            began = time.perf_counter()
            for batch in batches:
                call(batch, runner)
            elapsed = time.perf_counter() - began
            padded = sum(padded_length(max(w.length for w in b), runner.fixed_seq_length) * len(b) for b in batches)
            print(f"{name:32s} {len(windows) / elapsed:8.1f} windows/s  {len(records) / elapsed:8.1f} questions/s  "
                  f"{padded / len(windows):6.0f} padded tokens/window")


if __name__ == "__main__":
    main()
