"""Benchmark: can the CPU side keep a GPU fed? The whole job, black box through the real CLI, with the model
replaced by an instant one (a tiny ONNX graph of cheap ops), so that only the pipeline's own work is timed.

Prints, all measured in this one run:
- tokenize only: the `tokenizers` WordPiece encoder alone on the same questions (each question and its
  passage encoded once, one thread), questions/s: the floor of what any QA pipeline must spend;
- the whole job at N and 4N questions, one worker process, two, and two sharing one model copy (as GPU
  jobs do): the marginal questions/s between the two sizes (start-up cancels out), its ratio to tokenize
  only, and over one process;
- the RunInference stage's feed rate, per process: windows/s through length-sorted lists of questions, the
  model step (windows made, sorted into calls, the model call) and the round trip through the coders of
  the job's own PCollections (featurized questions in, results out).
Usage: python benchmarks/feed.py [--questions=24000] [--repeats=2] [--skip_job]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types

from instant import instant_model, write_questions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "demo", "vocab.txt")
WINDOW_ARGS = ["--max_seq_length=128", "--doc_stride=48", "--max_query_length=32", "--max_batch_size=64"]
TWO_PROCESSES = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
# A GPU job's model sharing: one model copy called by both processes (locally there is no GPU to use). The
# whole job on the GPU workers (all_workers): with a hint on the inference step only, the local runner would
# also stop fusing it with its neighbours, which measures something else (the stage crossing).
SHARED_MODEL = ["--gpu_type=nvidia-l4", "--gpu_scope=all_workers"]


def tokenize_only(questions: str) -> float:
    """Questions/s of the WordPiece encoder alone: each question and its passage encoded once, one thread."""
    from tokenizers import BertWordPieceTokenizer

    from bertqa.windows import parse_vocab

    with open(VOCAB, encoding="utf-8") as handle:
        tokenizer = BertWordPieceTokenizer(parse_vocab(handle.read()), lowercase=True, strip_accents=True)
    with open(questions, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    started = time.perf_counter()
    for record in records:
        tokenizer.encode(record["question"], add_special_tokens=False)
        tokenizer.encode(record["context"], add_special_tokens=False)
    return len(records) / (time.perf_counter() - started)


def job_seconds(directory: str, model: str, questions: str, extra: list[str]) -> float:
    output = tempfile.mkdtemp(dir=directory)
    command = [sys.executable, "-m", "bertqa.cli", "run", f"--input={questions}", f"--output={output}/out",
               f"--model_path={model}", f"--vocab_path={VOCAB}", "--backend=onnxruntime", *WINDOW_ARGS, *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    with open(f"{output}/out/summary.json", encoding="utf-8") as handle:
        summary = json.load(handle)
    assert summary["dead_lettered"] == 0, summary
    return seconds


def model_step_coders(graph) -> tuple:
    """The coders the runner uses for the job's featurized questions (into RunInference) and its results."""
    from apache_beam import coders
    from apache_beam.pipeline import PipelineVisitor

    found = {}

    class Visitor(PipelineVisitor):
        def visit_transform(self, node):
            if node.full_label == "BatchBySimilarLength":
                found["questions"] = node.inputs[0]
            if node.full_label == "DecodeAnswers":
                found["results"] = node.inputs[0]

        enter_composite_transform = visit_transform

    graph.visit(Visitor())
    return tuple(coders.registry.get_coder(found[name].element_type) for name in ("questions", "results"))


def feed_rate(model: str, questions_path: str, limit: int = 20_000) -> tuple[float, int]:
    """Windows/s of one process through batching, the model call and the coders of the job's PCollections."""
    import apache_beam as beam

    from bertqa import files, pipeline
    from bertqa.backends.base import CALLS_PER_LIST, QAModelHandler, padded_tokens
    from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec
    from bertqa.params import build_params
    from bertqa.windows import Featurizer, WindowSettings, padded_length, parse_vocab

    params = build_params({"input": questions_path, "output": "unused", "model_path": model, "vocab_path": VOCAB,
                           "backend": "onnxruntime", **dict(a[2:].split("=") for a in WINDOW_ARGS)})
    graph = beam.Pipeline()
    pipeline.build(graph, params, time.time())
    question_coder, result_coder = model_step_coders(graph)
    featurizer = Featurizer(parse_vocab(files.read_text(VOCAB)), True,
                            WindowSettings(params.max_seq_length, params.doc_stride, params.max_query_length))
    questions, windows = [], 0
    with open(questions_path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            record = types.SimpleNamespace(id=record["id"], context=record["context"])
            question = featurizer.featurize(record, featurizer.question_ids(json.loads(line)["question"]),
                                            featurizer.tokenize_passage(record.context))
            questions.append(question)
            windows += len(question.spans)
            if windows >= limit:
                break
    handler = QAModelHandler(OnnxRuntimeModelSpec(model), params.max_seq_length, params.max_batch_size)
    loaded = handler.load_model()
    limit_tokens = CALLS_PER_LIST * params.max_batch_size * padded_length(params.max_seq_length)
    started = time.perf_counter()
    received = sorted((question_coder.decode(question_coder.encode(q)) for q in questions), key=padded_tokens)
    listed, weight = [[]], 0
    for question in received:  # as SortAndBatchElements lists a sorted bundle
        if listed[-1] and weight + padded_tokens(question) > limit_tokens:
            listed.append([])
            weight = 0
        listed[-1].append(question)
        weight += padded_tokens(question)
    for questions_list in listed:
        for result in handler.run_inference([questions_list], loaded):
            result_coder.decode(result_coder.encode(result))
    return windows / (time.perf_counter() - started), windows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=24_000,
                        help="N: the job runs at N and 4N questions (large enough that start-up noise stays small "
                             "against the marginal time)")
    parser.add_argument("--skip_job", action="store_true", help="only tokenize-only and the feed rate")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every measure; the fastest counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        model = os.path.join(directory, "instant.onnx")
        instant_model(model)
        small, large = os.path.join(directory, "small.jsonl"), os.path.join(directory, "large.jsonl")
        write_questions(small, args.questions)
        write_questions(large, 4 * args.questions)
        print(f"instant ONNX model, onnxruntime backend, demo passages, {' '.join(WINDOW_ARGS)}")
        ways = {} if args.skip_job else {
            "one process": [], "two processes": TWO_PROCESSES, "two, one model": [*TWO_PROCESSES, *SHARED_MODEL]}
        # Every measure once per round, rounds repeated: this machine's load drifts over minutes, so the
        # measures share its conditions; the fastest of each counts (noise only ever adds time).
        tokenize, feed, seconds = [], [], {(way, path): [] for way in ways for path in (small, large)}
        for _ in range(args.repeats):
            tokenize.append(tokenize_only(large))
            feed.append(feed_rate(model, large))
            for way, extra in ways.items():
                for path in (small, large):
                    seconds[way, path].append(job_seconds(directory, model, path, extra))
        print(f"tokenize only (one thread):          {max(tokenize):8.0f} questions/s")
        rate, count = max(feed)
        print(f"RunInference stage fed, per process: {rate:8.0f} windows/s ({count} windows)")
        one = None
        for way in ways:
            fastest = [min(seconds[way, path]) for path in (small, large)]
            marginal = 3 * args.questions / (fastest[1] - fastest[0])
            one = one or marginal
            print(f"whole job, {way + ':':<15} {args.questions} in {fastest[0]:5.1f} s, {4 * args.questions} in "
                  f"{fastest[1]:5.1f} s: {marginal:6.0f} questions/s marginal, {marginal / max(tokenize):.2f} of "
                  f"tokenize only, {marginal / one:.2f}x one process", flush=True)


if __name__ == "__main__":
    main()
