"""Benchmark: can the CPU side keep a GPU fed? The whole job, black box through the real CLI, with the model
replaced by an instant one (a tiny ONNX graph of cheap ops), so that only the pipeline's own work is timed.

Prints, all measured in this one run:
- tokenize only: the `tokenizers` WordPiece encoder alone on the same questions (each question and its
  passage encoded once, one thread), questions/s: the floor of what any QA pipeline must spend;
- the whole job at N and 4N questions: in one process (the local runner's default, which runs the bundles
  in its own process, without the Fn API's data plane), in one worker process (the runner feeds it over
  gRPC, as Dataflow's runner harness feeds every SDK process), in P (--processes, default two), and in P
  sharing one model copy (as GPU jobs do): the marginal questions/s between the two sizes (start-up cancels
  out), its ratio to tokenize only, and over one process and one worker process (from the fastest runs, and
  within each round); and P one-process jobs started together, each on all the questions: what this machine
  gives P processes at the time, the ceiling for the P-process job;
- the RunInference stage's feed rate, per process: windows/s through length-sorted lists of questions, the
  model step (windows made, sorted into calls, the model call) and the round trip through the coders of
  the job's own PCollections (featurized questions in, results out);
- on Linux, for each way, the CPU the whole machine spent per question (every process of the job, from
  /proc/stat, between the two sizes), how many cores that kept busy, and how much CPU the host took from
  this machine meanwhile (steal, on a VM): a way that needs more CPU per question than P jobs at once
  costs work of its own; one with fewer cores busy waits (for the runner's shuffles, for its slowest
  process); steal makes any wall-clock ratio of that round unreliable.
Usage: python benchmarks/feed.py [--questions=24000] [--repeats=2] [--processes=2] [--skip_job]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

from instant import instant_model, write_questions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "demo", "vocab.txt")
WINDOW_ARGS = ["--max_seq_length=128", "--doc_stride=48", "--max_query_length=32", "--max_batch_size=64"]
# A GPU job's model sharing: one model copy called by both processes (locally there is no GPU to use). The
# whole job on the GPU workers (all_workers): with a hint on the inference step only, the local runner would
# also stop fusing it with its neighbours, which measures something else (the stage crossing).
SHARED_MODEL = ["--gpu_type=nvidia-l4", "--gpu_scope=all_workers"]


def tokenize_only(questions: str) -> float:
    """Questions/s of the WordPiece encoder alone: each question and its passage encoded once, one thread."""
    from tokenizers import BertWordPieceTokenizer

    from bertqa.qa.tokenization import parse_vocab

    with open(VOCAB, encoding="utf-8") as handle:
        tokenizer = BertWordPieceTokenizer(parse_vocab(handle.read()), lowercase=True, strip_accents=True)
    with open(questions, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    started = time.perf_counter()
    for record in records:
        tokenizer.encode(record["question"], add_special_tokens=False)
        tokenizer.encode(record["context"], add_special_tokens=False)
    return len(records) / (time.perf_counter() - started)


def machine_cpu() -> tuple[float, float]:
    """CPU seconds this machine has spent busy (user, system, interrupts; every process) and had stolen by its
    host (a VM's vCPUs running other guests' work) since it started; (nan, nan) where /proc/stat is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            user, nice, system, _, _, irq, softirq, steal = (int(n) for n in handle.readline().split()[1:9])
    except (OSError, ValueError):
        return math.nan, math.nan
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def job_seconds(directory: str, model: str, questions: str, extra: list[str],
                copies: int = 1) -> tuple[float, float, float]:
    """Seconds until `copies` of the job, started together, have all finished; the machine's busy and stolen
    CPU seconds meanwhile."""
    jobs = []
    for _ in range(copies):
        output = tempfile.mkdtemp(dir=directory)
        command = [sys.executable, "-m", "bertqa.cli", "run", f"--input={questions}", f"--output={output}/out",
                   f"--model_path={model}", f"--vocab_path={VOCAB}", "--backend=onnxruntime", *WINDOW_ARGS, *extra]
        jobs.append((output, command))
    started, (busy, stolen) = time.perf_counter(), machine_cpu()
    running = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _, command in jobs]
    for job, (_, command) in zip(running, jobs):
        _, errors = job.communicate()
        if job.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{errors.decode(errors='replace')}")
    seconds, (busy_after, stolen_after) = time.perf_counter() - started, machine_cpu()
    for output, _ in jobs:
        with open(f"{output}/out/summary.json", encoding="utf-8") as handle:
            summary = json.load(handle)
        assert summary["dead_lettered"] == 0, summary
    return seconds, busy_after - busy, stolen_after - stolen


def marginal_rate(times: tuple[float, float], questions: int, copies: int) -> float:
    """Questions/s between jobs of N and 4N questions (`times`: seconds of each), `copies` jobs at once."""
    return copies * 3 * questions / (times[1] - times[0])


def marginal_cpu(times: tuple[float, float], cpu: tuple[tuple[float, float], tuple[float, float]], questions: int,
                 copies: int) -> tuple[float, float, float]:
    """Between jobs of N and 4N questions (`times`: seconds, `cpu`: the machine's (busy, stolen) CPU seconds of
    each): CPU seconds per question, cores kept busy, cores' time stolen by the host."""
    (small_busy, small_stolen), (large_busy, large_stolen) = cpu
    seconds = times[1] - times[0]
    return ((large_busy - small_busy) / (copies * 3 * questions), (large_busy - small_busy) / seconds,
            (large_stolen - small_stolen) / seconds)


def model_step_coders(graph) -> tuple:
    """The coders the runner uses for the job's featurized questions (into RunInference) and its results."""
    from apache_beam import coders
    from apache_beam.pipeline import PipelineVisitor

    found = {}

    class Visitor(PipelineVisitor):
        def visit_transform(self, node):
            step = node.full_label.rsplit("/", 1)[-1]  # inside the AnswerQuestions composite
            if step == "BatchBySimilarLength":
                found["questions"] = node.inputs[0]
            if step == "DecodeAnswers":
                found["results"] = node.inputs[0]

        enter_composite_transform = visit_transform

    graph.visit(Visitor())
    return tuple(coders.registry.get_coder(found[name].element_type) for name in ("questions", "results"))


def feed_rate(model: str, questions_path: str, limit: int = 20_000) -> tuple[float, int]:
    """Windows/s of one process through batching, the model call and the coders of the job's PCollections."""
    import apache_beam as beam

    from bertqa.io import files

    from bertqa.job import pipeline
    from bertqa.backends.base import CALLS_PER_LIST, QAModelHandler, padded_tokens
    from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec
    from bertqa.params import build_params
    from bertqa.qa.windows import Featurizer, WindowSettings, padded_length
    from bertqa.qa.tokenization import parse_vocab, wordpiece

    params = build_params({"input": questions_path, "output": "unused", "model_path": model, "vocab_path": VOCAB,
                           "backend": "onnxruntime", **dict(a[2:].split("=") for a in WINDOW_ARGS)})
    graph = beam.Pipeline()
    pipeline.build(graph, params, time.time())
    question_coder, result_coder = model_step_coders(graph)
    featurizer = Featurizer(wordpiece(parse_vocab(files.read_text(VOCAB)), True),
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
    parser.add_argument("--processes", type=int, default=2, help="worker processes of the job compared with one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        model = os.path.join(directory, "instant.onnx")
        instant_model(model)
        small, large = os.path.join(directory, "small.jsonl"), os.path.join(directory, "large.jsonl")
        write_questions(small, args.questions)
        write_questions(large, 4 * args.questions)
        print(f"instant ONNX model, onnxruntime backend, demo passages, {' '.join(WINDOW_ARGS)}")
        # way -> (arguments, jobs started together). P independent one-process jobs at once are what this
        # machine gives P processes that share nothing and split the work in equal parts: the ceiling of a
        # P-process job here (a shared machine's cores are not always equally fast).
        workers = [f"--direct_num_workers={args.processes}", "--direct_running_mode=multi_processing"]
        p = args.processes
        ways = {} if args.skip_job else {
            "one process": ([], 1), "one worker process": (["--direct_num_workers=1", *workers[1:]], 1),
            f"{p} processes": (workers, 1), f"{p}, one model": ([*workers, *SHARED_MODEL], 1),
            f"{p} jobs at once": ([], p)}
        # Every measure once per round, rounds repeated: this machine's speed drifts over minutes, so the
        # measures share its conditions, and every other round runs the jobs in reverse order so that a steady
        # drift does not favour one way. The fastest of each measure counts (noise only ever adds time); each
        # round's own ratios show how far the machine moved them.
        tokenize, feed, seconds = [], [], {(way, path): [] for way in ways for path in (small, large)}
        cpu = {key: [] for key in seconds}  # (busy, stolen) CPU seconds of the machine during each job
        for round_ in range(args.repeats):
            tokenize.append(tokenize_only(large))
            feed.append(feed_rate(model, large))
            for way, (extra, copies) in ways.items() if round_ % 2 == 0 else reversed(ways.items()):
                for path in (small, large):
                    wall, busy, stolen = job_seconds(directory, model, path, extra, copies)
                    seconds[way, path].append(wall)
                    cpu[way, path].append((busy, stolen))
            # Each round's raw figures as it ends: a run stopped part-way still leaves its measurements.
            figures = [f"tokenize only {tokenize[-1]:.0f} questions/s", f"fed {feed[-1][0]:.0f} windows/s",
                       *(f"{way} {seconds[way, small][-1]:.1f} s / {seconds[way, large][-1]:.1f} s (CPU busy "
                         f"{cpu[way, small][-1][0]:.1f} / {cpu[way, large][-1][0]:.1f} s, stolen "
                         f"{cpu[way, small][-1][1]:.1f} / {cpu[way, large][-1][1]:.1f} s)" for way in ways)]
            print(f"round {round_ + 1}: " + "; ".join(figures), flush=True)
        print(f"tokenize only (one thread):          {max(tokenize):8.0f} questions/s")
        windows_per_second, count = max(feed)
        print(f"RunInference stage fed, per process: {windows_per_second:8.0f} windows/s ({count} windows)")

        rates, rounds = {}, {}
        for way, (_, copies) in ways.items():
            fastest = [min(seconds[way, path]) for path in (small, large)]
            rates[way] = marginal_rate(fastest, args.questions, copies)
            round_times = list(zip(seconds[way, small], seconds[way, large]))
            rounds[way] = [marginal_rate(times, args.questions, copies) for times in round_times]
            print(f"whole job, {way + ':':<19} {args.questions} in {fastest[0]:5.1f} s, {4 * args.questions} in "
                  f"{fastest[1]:5.1f} s: {rates[way]:6.0f} questions/s marginal, "
                  f"{rates[way] / max(tokenize):.2f} of tokenize only", flush=True)
            for base in [base for base in ("one process", "one worker process") if base in rates and base != way]:
                each = ", ".join(f"{mine / theirs:.2f}x" for mine, theirs in zip(rounds[way], rounds[base]))
                print(f"  {'':<28} {rates[way] / rates[base]:.2f}x {base} (each round: {each})", flush=True)
            # Between the two sizes of each round (start-up cancels out); the median of the rounds.
            marginal = [marginal_cpu(times, sizes, args.questions, copies)
                        for times, sizes in zip(round_times, zip(cpu[way, small], cpu[way, large]))]
            per_question, cores, stolen = (statistics.median(column) for column in zip(*marginal))
            print(f"  {'':<28} CPU {1000 * per_question:.3f} ms per question, {cores:.2f} of {os.cpu_count()} "
                  f"cores busy, {stolen:.2f} cores' time stolen by the host (medians of the rounds)", flush=True)
        if ways:
            print(f"({p} jobs at once: {p} one-process jobs, each on all the questions, started together; their "
                  f"ratio is what this machine gave {p} processes that share nothing, in each round)")


if __name__ == "__main__":
    main()
