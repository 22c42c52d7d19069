"""Benchmark: the whole job on a real GPU, against the model alone on the same windows.

On a machine with a CUDA GPU, for a BERT-large-sized (24 layers, 1024 hidden) and a BERT-base-sized (12, 768)
random-weight checkpoint built here (`save_pretrained`, the demo's WordPiece tokenizer as tokenizer.json):
- the real job, `bertqa run --backend=pytorch --precision=fp16`, on P local worker processes (--processes,
  default 2) sharing one model copy (as GPU workers do), on SQuAD-length generated questions at N and 4N
  (--questions): wall time, and the marginal questions/s and windows/s between the two sizes (start-up,
  model load and accuracy gate cancel out);
- in the same run, the model alone (this process, same checkpoint and precision) on the 4N run's windows,
  sorted by length into calls of --max_batch_size and padded as the job pads them: windows/s;
- their ratio (target: the job at 0.9 or more of the model alone), the GPU's peak memory in use and its mean
  utilisation while each job ran (nvidia-smi, sampled every 0.2 s).
Prints a table and writes every figure to --json. The random weights make every answer meaningless and the
accuracy gate's verdict too, so the job runs with --max_changed_spans=1 (the gate still runs and logs).
Usage: python benchmarks/gpu_job.py [--questions=4000] [--processes=2] [--json=gpu_job.json]
On the lent GPU machine: bash benchmarks/gpu_job.sh (installs the carried wheels first).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from instant import write_questions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "template"))
VOCAB = os.path.join(ROOT, "demo", "vocab.txt")
SIZES = {"bert-large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096),
         "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
         # Not a measurement: what tests/tools/test_benchmark.py runs this script with on a CPU, so that it keeps working.
         "tiny": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128)}
WINDOWS = dict(max_seq_length=384, doc_stride=128, max_query_length=64)


def build_checkpoint(directory: str, size: dict) -> str:
    import torch
    import transformers

    transformers.logging.disable_progress_bar()
    tokenizer = transformers.BertTokenizer(vocab=VOCAB, do_lower_case=True)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512, **size)
    transformers.BertForQuestionAnswering(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


class GpuMonitor(threading.Thread):
    """nvidia-smi's memory in use (MiB) and utilisation (%) of GPU 0, every 0.2 s, until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self._finished = threading.Event()

    def run(self):
        while not self._finished.is_set():
            line = nvidia_smi("--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits", "-i", "0")
            if line:
                memory, utilisation = (float(part) for part in line.split(","))
                self.samples.append((memory, utilisation))
            self._finished.wait(0.2)

    def stop(self) -> dict:
        self._finished.set()
        self.join()
        return {"peak_gpu_memory_mib": max((m for m, _ in self.samples), default=None),
                "mean_gpu_utilisation_percent": (round(sum(u for _, u in self.samples) / len(self.samples), 1)
                                                 if self.samples else None)}


def nvidia_smi(*args: str) -> str:
    """nvidia-smi's answer, or "" where there is none (a CPU machine)."""
    try:
        return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        return ""


def run_job(checkpoint: str, questions: str, output: str, args) -> dict:
    command = [sys.executable, os.path.join(ROOT, "template", "main.py"), f"--input={questions}",
               f"--output={output}", f"--model_path={checkpoint}", "--backend=pytorch", f"--precision={args.precision}",
               *(f"--{name}={value}" for name, value in WINDOWS.items()), f"--max_batch_size={args.max_batch_size}",
               "--max_changed_spans=1", "--gpu_type=nvidia-h100-80gb", "--gpu_scope=all_workers",
               f"--direct_num_workers={args.processes}", "--direct_running_mode=multi_processing"]
    monitor = GpuMonitor()
    monitor.start()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    gpu = monitor.stop()
    if done.returncode:
        raise RuntimeError(f"the job failed ({done.returncode}):\n{done.stderr[-4000:]}")
    summary = json.load(open(os.path.join(output, "summary.json")))
    return {"seconds": round(seconds, 2), "predicted": summary["predicted"],
            "dead_lettered": summary["dead_lettered"], "windows": summary["timing"]["model_windows"],
            "model_seconds": summary["timing"]["model_seconds"], **gpu,
            "gate": [line for line in done.stderr.splitlines() if "accepted against fp32" in line][-1:]}


def model_alone(checkpoint: str, questions: str, args) -> dict:
    """Windows/s of the model alone on the questions' windows, sorted by length into calls as the job pads them."""
    from bertqa.backends.pytorch import PyTorchModelSpec
    from bertqa.io.tokenizer_files import TokenizerSpec
    from bertqa.qa.windows import Featurizer, WindowSettings, pad_batch, padded_length

    featurizer = Featurizer(TokenizerSpec(checkpoint, wordpiece=False).load(), WindowSettings(**WINDOWS))
    windows = []
    with open(questions, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            windows += featurizer.windows(record["id"], record["question"],
                                          featurizer.tokenize_passage(record["context"]))
    windows.sort(key=lambda window: window.length)
    calls = [pad_batch(windows[first:first + args.max_batch_size],
                       padded_length(windows[min(first + args.max_batch_size, len(windows)) - 1].length))
             for first in range(0, len(windows), args.max_batch_size)]
    model = PyTorchModelSpec(checkpoint, args.precision).load()
    for inputs in calls[:3]:  # warm-up: kernels chosen, memory pool grown
        model.predict(*inputs)
    started = time.perf_counter()
    for inputs in calls:
        model.predict(*inputs)  # returns numpy arrays: the GPU's work is done when it returns
    seconds = time.perf_counter() - started
    model.release()
    return {"windows": len(windows), "calls": len(calls), "seconds": round(seconds, 3),
            "windows_per_second": round(len(windows) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=4000, help="N: the job runs N and 4N questions")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--precision", default="fp16", choices=("fp16", "bf16", "fp32"))
    parser.add_argument("--max_batch_size", type=int, default=64)
    parser.add_argument("--models", default="bert-large,bert-base", help="of " + ", ".join(SIZES))
    parser.add_argument("--json", default="gpu_job.json")
    args = parser.parse_args()
    import torch

    smi = nvidia_smi("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader") or "no GPU"
    report = {"gpu": smi, "torch": torch.__version__, "cuda": torch.version.cuda, "cpus": os.cpu_count(),
              "settings": {**WINDOWS, "max_batch_size": args.max_batch_size, "precision": args.precision,
                           "processes": args.processes, "questions": [args.questions, 4 * args.questions]},
              "models": {}}
    print(f"GPU: {smi}; torch {torch.__version__} (CUDA {torch.version.cuda}); {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        sizes = {n: os.path.join(scratch, f"q{n}.jsonl") for n in (args.questions, 4 * args.questions)}
        for count, path in sizes.items():
            write_questions(path, count)
        for name in args.models.split(","):
            checkpoint = build_checkpoint(os.path.join(scratch, name), SIZES[name])
            jobs = {count: run_job(checkpoint, path, os.path.join(scratch, f"out-{name}-{count}"), args)
                    for count, path in sizes.items()}
            small, large = jobs[args.questions], jobs[4 * args.questions]
            marginal = large["seconds"] - small["seconds"]
            alone = model_alone(checkpoint, sizes[4 * args.questions], args)
            # A 4N job no slower than the N job (start-up dominates small runs) gives no marginal rate.
            rate = (lambda count: round(count / marginal, 1)) if marginal > 0 else (lambda count: None)
            row = {"jobs": jobs, "model_alone": alone,
                   "job_questions_per_second": rate(large["predicted"] - small["predicted"]),
                   "job_windows_per_second": rate(large["windows"] - small["windows"])}
            row["ratio_to_model_alone"] = (round(row["job_windows_per_second"] / alone["windows_per_second"], 3)
                                           if row["job_windows_per_second"] else None)
            report["models"][name] = row
            print(f"{name}: job {row['job_questions_per_second']} questions/s, {row['job_windows_per_second']} "
                  f"windows/s (marginal, {args.questions} -> {4 * args.questions} questions: {small['seconds']} s, "
                  f"{large['seconds']} s); model alone {alone['windows_per_second']} windows/s; ratio "
                  f"{row['ratio_to_model_alone']}; peak GPU memory {large['peak_gpu_memory_mib']} MiB, mean "
                  f"utilisation {large['mean_gpu_utilisation_percent']}% (4N job); dead letters "
                  f"{large['dead_lettered']}", flush=True)
            with open(args.json, "w") as handle:  # after each model: a run stopped later keeps what it measured
                json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
