"""Benchmark: the whole job at growing sizes with an instant model, so that only the pipeline's own work
(reading, windows, batching, gathering, decoding, writing) is timed; prints wall time, rate and the peak
resident memory of the job's processes.

The model is a tiny ONNX graph of cheap ops (logits from the token ids), run by the onnxruntime backend.
Each size runs in a fresh process; with --workers=2 the local runner starts two worker processes.
The local runner keeps every stage's output in its own memory between stages (Dataflow shuffles to
disk instead), so its memory grows with the job; `--steps_only` runs the project's own per-question steps
(parse, windows, batches, model, decode, output row) in one process over a stream of questions, without
a runner, to show that they hold nothing from one question to the next.
Usage: python benchmarks/scale.py --questions 10000 100000 [--workers=2] [--steps_only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from instant import instant_model, write_questions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW_ARGS = ["--max_seq_length=128", "--doc_stride=48", "--max_query_length=32", "--max_batch_size=64"]

RUN = """
import json, resource, sys, time
from bertqa.cli import run_command
started = time.perf_counter()
code = run_command(sys.argv[1:])
elapsed = time.perf_counter() - started
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": code, "seconds": elapsed, "peak_kib": own, "peak_worker_kib": children}))
"""


STEPS = """
import itertools, json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from scale import WINDOW_ARGS
from bertqa.backends.base import QAModelHandler
from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec
from bertqa.demo.train import DEMO_DECODE, DEMO_WINDOWS
from bertqa.qa.decoding import decode_answers
from bertqa.io.outputs import json_line
from bertqa.job.answer import Prediction
from bertqa.io.records import parse_jsonl_line
from bertqa.qa.windows import Featurizer
from bertqa.qa.tokenization import parse_vocab, wordpiece

questions, model_path, _, vocab_path, output = sys.argv[1:6]
featurizer = Featurizer(wordpiece(parse_vocab(open(vocab_path, encoding="utf-8").read()), True), DEMO_WINDOWS)
handler = QAModelHandler(OnnxRuntimeModelSpec(model_path), 128, 64)
model = handler.load_model()
settings = DEMO_DECODE
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
count = 0
with open(questions, encoding="utf-8") as lines, open(output, "w", encoding="utf-8") as rows:
    numbered = enumerate(lines, start=1)
    while chunk := list(itertools.islice(numbered, 256)):  # what one bundle holds at a time
        records = [parse_jsonl_line(line.rstrip("\\n"), questions, n, 100_000) for n, line in chunk]
        queries = featurizer.questions_ids([r.question for r in records])
        featurized = [featurizer.featurize(r, q, featurizer.tokenize_passage(r.context))
                      for r, q in zip(records, queries)]
        result = handler.infer_questions(featurized, model)
        positions = range(len(featurized))
        answers = decode_answers(result.packed_windows(positions), [r.context for r in records],
                                 [question.passage.offsets for question in featurized], settings)
        for record, answer in zip(records, answers):
            rows.write(json_line(Prediction(record, answer).row()) + "\\n")
            count += 1
elapsed = time.perf_counter() - started
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"questions": count, "seconds": elapsed, "peak_growth_kib": grown}))
"""


def steps_only(directory: str, model: str, count: int, questions: str) -> None:
    command = [sys.executable, "-c", STEPS, questions, model, os.path.dirname(os.path.abspath(__file__)),
               f"{ROOT}/demo/vocab.txt", f"{directory}/rows{count}.jsonl"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{count:>9} questions  steps only  {result['seconds']:8.1f} s  "
          f"{result['questions'] / result['seconds']:7.0f} questions/s  peak memory grew "
          f"{result['peak_growth_kib'] / 1024:.1f} MiB while running", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps_only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        model = os.path.join(directory, "instant.onnx")
        instant_model(model)
        runner = [f"--direct_num_workers={args.workers}", "--direct_running_mode=multi_processing"] \
            if args.workers > 1 else []
        print(f"instant ONNX model, onnxruntime backend, windows {' '.join(WINDOW_ARGS)}, "
              f"{args.workers} worker process(es)")
        for count in args.questions:
            questions = os.path.join(directory, f"q{count}.jsonl")
            began = time.perf_counter()
            write_questions(questions, count)
            print(f"  ({count} questions written in {time.perf_counter() - began:.0f} s)", flush=True)
            if args.steps_only:
                steps_only(directory, model, count, questions)
                continue
            command = [sys.executable, "-c", RUN, f"--input={questions}", f"--output={directory}/out{count}",
                       f"--model_path={model}", f"--vocab_path={ROOT}/demo/vocab.txt", "--backend=onnxruntime",
                       *WINDOW_ARGS, *runner]
            done = subprocess.run(command, capture_output=True, text=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            with open(f"{directory}/out{count}/summary.json", encoding="utf-8") as handle:
                summary = json.load(handle)
            timing = summary["timing"]
            print(f"{count:>9} questions {summary['predicted']:>9} answered  {result['seconds']:8.1f} s  "
                  f"{count / result['seconds']:7.0f} questions/s  model {timing['model_windows']} windows in "
                  f"{timing['model_seconds']:.1f} s  peak memory: main {result['peak_kib'] / 1024:.0f} MiB, "
                  f"largest worker {result['peak_worker_kib'] / 1024:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
