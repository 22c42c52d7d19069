"""Benchmark: what --top_k candidates cost in decoding. decode_answers on the demo's 80 questions, cut into the
demo's windows, with random logits (every window has many valid spans), top_k 0 against 5, interleaved.
Usage (from the repository root): PYTHONPATH=template python benchmarks/top_k.py
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from bertqa.demo.train import DEMO_DECODE, DEMO_WINDOWS
from bertqa.io.records import Question
from bertqa.qa.decoding import PackedWindows, WindowLogits, decode_answers
from bertqa.qa.tokenization import parse_vocab, wordpiece
from bertqa.qa.windows import Featurizer


def main() -> None:
    with open("demo/vocab.txt", encoding="utf-8") as vocab:
        featurizer = Featurizer(wordpiece(parse_vocab(vocab.read()), True), DEMO_WINDOWS)
    random = np.random.default_rng(0)
    contexts, offsets, logits = [], [], []
    with open("demo/questions.jsonl", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            question = Question(record["id"], record["question"], record["context"], "demo", (0,))
            passage = featurizer.tokenize_passage(question.context)
            windows = featurizer.featurize(question, featurizer.question_ids(question.question), passage).windows()
            contexts.append(question.context)
            offsets.append(passage.offsets)
            logits.append([WindowLogits(w.index, w.context_start, w.doc_offset, w.max_context,
                                        random.normal(size=w.length).astype(np.float32),
                                        random.normal(size=w.length).astype(np.float32)) for w in windows])
    packed = PackedWindows.of(logits)
    seconds: dict[int, list[float]] = {0: [], 5: []}
    for _ in range(30):
        for top_k in seconds:
            settings = dataclasses.replace(DEMO_DECODE, top_k=top_k)
            began = time.perf_counter()
            answers = decode_answers(packed, contexts, offsets, settings)
            seconds[top_k].append(time.perf_counter() - began)
    for top_k, times in seconds.items():
        print(f"top_k={top_k}: {len(contexts)} questions, median {np.median(times) / len(contexts) * 1e6:.0f} us per "
              f"question (fastest round {min(times) / len(contexts) * 1e6:.0f})")
    print(f"candidates per question with top_k=5: {np.mean([len(answer.candidates) for answer in answers]):.2f}")


if __name__ == "__main__":
    main()
