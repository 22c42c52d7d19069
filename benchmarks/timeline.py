"""Where a local job's time goes: the CPU each of its processes used in every second of the run.

Runs `bertqa run` on generated questions with the instant model (as feed.py does) and samples /proc for the
job's process tree: the launching process (which, on the local runner, also holds every shuffle), each
worker process and, when the model is shared, the model's own process. A phase where one column works and
the others wait is work that does not run in parallel.
Usage: python benchmarks/timeline.py [--questions=96000] [--interval=1] [-- extra bertqa run arguments]
e.g.   python benchmarks/timeline.py -- --direct_num_workers=2 --direct_running_mode=multi_processing
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from feed import VOCAB, WINDOW_ARGS
from instant import instant_model, write_questions

TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except OSError:  # gone meanwhile
                continue
            children.setdefault(parent, []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def cpu_seconds(pid: int) -> tuple[str, float] | None:
    """(what the process runs, user + system CPU seconds so far), or None when it has ended."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline") as handle:
            command = handle.read().replace("\0", " ")
    except OSError:
        return None
    return command, (int(fields[11]) + int(fields[12])) / TICKS


def role(command: str) -> str:
    if "sdk_worker_main" in command:
        return "worker"
    if "spawn_main" in command:
        return "model"
    return "launcher" if "bertqa.cli" in command else "other"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=96_000)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    args, extra = parser.parse_known_args()
    extra = [arg for arg in extra if arg != "--"]
    with tempfile.TemporaryDirectory() as directory:
        model, questions = os.path.join(directory, "instant.onnx"), os.path.join(directory, "questions.jsonl")
        instant_model(model)
        write_questions(questions, args.questions)
        command = [sys.executable, "-m", "bertqa.cli", "run", f"--input={questions}", f"--output={directory}/out",
                   f"--model_path={model}", f"--vocab_path={VOCAB}", "--backend=onnxruntime", *WINDOW_ARGS, *extra]
        started = time.perf_counter()
        job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples, seen = [], {}
        while job.poll() is None:
            now = {}
            for pid in process_tree(job.pid):
                if (found := cpu_seconds(pid)) is not None:
                    seen[pid], now[pid] = found, found[1]
            samples.append((time.perf_counter() - started, now))
            time.sleep(args.interval)
        elapsed = time.perf_counter() - started
    columns = sorted((pid for pid, (_, used) in seen.items() if used >= 0.5), key=lambda pid: -seen[pid][1])
    runner = " ".join(extra) or "one process"
    print(f"{args.questions} questions, exit code {job.returncode}, {elapsed:.1f} s; {runner}")
    print("CPU seconds: " + ", ".join(f"{role(seen[pid][0])} {seen[pid][1]:.1f}" for pid in columns))
    print("    time  " + " ".join(f"{role(seen[pid][0]):>8}" for pid in columns) + "   (cores busy in the interval)")
    before: dict[int, float] = {}
    for moment, now in samples[1:]:
        busy = [(now.get(pid, before.get(pid, 0.0)) - before.get(pid, 0.0)) / args.interval for pid in columns]
        print(f"  {moment:5.1f} s " + " ".join(f"{value:8.2f}" for value in busy))
        before.update(now)


if __name__ == "__main__":
    main()
