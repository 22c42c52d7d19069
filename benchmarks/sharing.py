"""Benchmark: one model call from an SDK process to the machine's shared model copy, three ways.

Each way runs in a fresh process that keeps a thread busy with Python work (as an SDK process running its
share of the pipeline does) and times, from a second process, calls to the shared model: one batch of
64 windows of 128 tokens in (three int32 arrays), start and end logits out. The model returns zeros at
once, so only the sharing's own cost is timed.
- beam: RunInference's large-model sharing: Beam's `multi_process_shared`, the model in the first SDK
  process (here the busy one), Python's sockets;
- beam + no delay: the same with TCP_NODELAY on the connections (`sharing.send_without_delay`);
- own process: this project's `sharing.machine_model`: the model in a process of its own, no delay.
Usage: python benchmarks/sharing.py [--calls=100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HOST = """
import subprocess, sys, threading, uuid
import numpy as np
from apache_beam.utils import multi_process_shared
from bertqa.backends.sharing import machine_model, send_without_delay
import sharing_model

way, calls = sys.argv[1], sys.argv[2]
tag = uuid.uuid4().hex
if way == "own process":
    machine_model(sharing_model.Zeros, tag)
else:
    if way == "beam + no delay":
        send_without_delay()
    multi_process_shared.MultiProcessShared(sharing_model.Zeros, tag=tag, always_proxy=True).acquire()
busy = True

def work():  # this process's own share of the pipeline
    total = 0
    while busy:
        total += sum(range(1000))

thread = threading.Thread(target=work)
thread.start()
print(subprocess.run([sys.executable, "-c", sharing_model.CALLER, tag, way, calls], check=True,
                     capture_output=True, text=True).stdout.strip())
busy = False
thread.join()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "template"), os.path.dirname(__file__)])}
    for way in ("beam", "beam + no delay", "own process"):
        done = subprocess.run([sys.executable, "-c", HOST, way, str(args.calls)], env=env, check=True,
                              capture_output=True, text=True)
        seconds = float(done.stdout.strip().splitlines()[-1])
        print(f"{way:16s} {seconds * 1e3:8.2f} ms per call of 64 x 128 windows ({seconds / 64 * 1e6:7.1f} us per "
              f"window)", flush=True)


if __name__ == "__main__":
    main()
