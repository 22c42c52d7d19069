"""The job's counters, one module-level object each.

Every count is a Beam metric in the "bertqa" namespace (Dataflow shows them under the job's Custom counters).
On a local run the launching process also sets BERTQA_PROGRESS_DIR (bertqa.local.progress): each worker process
then keeps its running totals of the counters in a small JSON file there, replaced at most twice a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time

import apache_beam as beam

NAMESPACE = "bertqa"
PROGRESS_DIR = "BERTQA_PROGRESS_DIR"
_FLUSH_SECONDS = 0.5


class _Tally:
    """This process's running totals, written where the launching process reads them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._directory: str | None = None
        self._counts: dict[str, int] = {}
        self._flushed = 0.0

    def add(self, name: str, value: int) -> None:
        directory = os.environ.get(PROGRESS_DIR)
        if not directory:
            return
        with self._lock:
            if directory != self._directory:  # a new job in this process (each watches its own directory)
                self._directory, self._counts = directory, {}
            self._counts[name] = self._counts.get(name, 0) + value
            now = time.monotonic()
            if now - self._flushed < _FLUSH_SECONDS:
                return
            self._flushed = now
            counts = dict(self._counts)
        with contextlib.suppress(OSError):  # progress is a nicety: never fail a job over it
            handle, partial = tempfile.mkstemp(dir=directory, suffix=".partial")
            with os.fdopen(handle, "w") as file:
                json.dump(counts, file)
            os.replace(partial, os.path.join(directory, f"{os.getpid()}.json"))


_tally = _Tally()


class Counter:
    """One of the job's counters. Its Beam metric is made at first use in each process: making one costs more
    than updating it (per question)."""

    def __init__(self, name: str, description: str, progress: bool = True):
        self.name, self.description = name, description
        self._progress = progress  # also in a local run's running totals
        self._metric = None

    def inc(self, value: int = 1) -> None:
        if self._metric is None:
            self._metric = beam.metrics.Metrics.counter(NAMESPACE, self.name)
        self._metric.inc(value)
        if self._progress:
            _tally.add(self.name, value)


class Distribution:
    """One of the job's distributions (min, mean, max of the values given)."""

    def __init__(self, name: str, description: str):
        self.name, self.description = name, description
        self._metric = None

    def update(self, value: int) -> None:
        if self._metric is None:
            self._metric = beam.metrics.Metrics.distribution(NAMESPACE, self.name)
        self._metric.update(value)


QUESTIONS_READ = Counter("questions_read", "records read and parsed into questions")
REJECTED_ON_READ = Counter("rejected_on_read",
                           "records (or whole files) that could not be read or parsed: dead-lettered")
ANSWERED = Counter("answered", "questions given an answer")
NO_ANSWER = Counter("no_answer", "questions answered \"no answer\" (the null score won)")
DEAD_LETTERED = Counter("dead_lettered", "records sent to the dead letters, at any step (reading, duplicates, "
                        "windows, inference, decoding), counted once where they all meet")
PASSAGES_TOKENIZED = Counter("passages_tokenized", "passages tokenized (once for all the questions about one)",
                             progress=False)
WINDOWS_PER_QUESTION = Distribution("windows_per_question", "windows each question needed (min, mean, max)")

# The README's table of counters is this one.
COUNTERS = {counter.name: counter.description for counter in (QUESTIONS_READ, REJECTED_ON_READ, ANSWERED, NO_ANSWER,
                                                              DEAD_LETTERED, PASSAGES_TOKENIZED)}
DISTRIBUTIONS = {WINDOWS_PER_QUESTION.name: WINDOWS_PER_QUESTION.description}
