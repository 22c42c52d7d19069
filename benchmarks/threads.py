"""Benchmark: two processes calling the same ONNX model at once, ONNX Runtime's default intra-op threads (one
per core, in each process) against one thread each: what a Dataflow CPU worker, one SDK process per vCPU,
runs into. Rounds alternate between the two settings (this machine's load drifts).

Usage: python benchmarks/threads.py MODEL.onnx [--processes=2] [--calls=6] [--batch=8] [--length=128]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np


def calls(path: str, threads: int, count: int, shape: tuple[int, int], start, seconds) -> None:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's default
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ones(shape, np.int64 if "int64" in i.type else np.int32) for i in session.get_inputs()}
    session.run(None, feeds)  # warm up before the clock starts
    start.wait()
    began = time.perf_counter()
    for _ in range(count):
        session.run(None, feeds)
    seconds.put(time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for threads in (0, 1):
            start, seconds = multiprocessing.Barrier(args.processes), multiprocessing.Queue()
            workers = [multiprocessing.Process(target=calls, args=(args.model, threads, args.calls,
                                                                   (args.batch, args.length), start, seconds))
                       for _ in range(args.processes)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            slowest = max(seconds.get() for _ in workers)
            print(f"intra-op threads {threads or 'default'}: {args.processes} processes x {args.calls} calls of "
                  f"{args.batch}x{args.length} in {slowest:.2f} s", flush=True)


if __name__ == "__main__":
    main()
