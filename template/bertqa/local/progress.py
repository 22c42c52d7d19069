"""A local run's progress line.

The launching process sets BERTQA_PROGRESS_DIR, where each worker process keeps its running totals of the job's
counters (bertqa.job.counters); a thread of the launching process sums them and prints progress at a steady
interval: a bar when the number of records is known (local JSON Lines input), else the counts and the rate.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from typing import Iterator, TextIO

from bertqa.job.counters import ANSWERED, DEAD_LETTERED, NO_ANSWER, PROGRESS_DIR, QUESTIONS_READ, REJECTED_ON_READ


def totals(directory: str) -> dict[str, int]:
    """Every worker process's running totals, summed."""
    summed: dict[str, int] = {}
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(directory, name)) as handle:
                    for key, value in json.load(handle).items():
                        summed[key] = summed.get(key, 0) + int(value)
    return summed


def _done(counts: dict[str, int], asked: int | None) -> int:
    """Records done: answered, "no answer" or dead-lettered (documents mode, `asked` questions per document:
    pairs, a document rejected on read standing for its `asked` pairs)."""
    return (sum(counts.get(counter.name, 0) for counter in (ANSWERED, NO_ANSWER, DEAD_LETTERED))
            + ((asked or 1) - 1) * counts.get(REJECTED_ON_READ.name, 0))


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_line(counts: dict[str, int], total: int | None, elapsed: float, rate: float | None,
                  bar_width: int = 0, asked: int | None = None) -> str:
    """What a local run prints: records done (answered, "no answer" or dead-lettered) of those known. Documents
    mode (`asked` questions per document): counted in pairs of a document and a question, as the job answers."""
    done = _done(counts, asked)
    read = counts.get(QUESTIONS_READ.name, 0) + (asked or 1) * counts.get(REJECTED_ON_READ.name, 0)
    speed = f"{rate:,.0f} {'pairs' if asked else 'records'}/s" if rate else "starting"
    parts = [f"read {read:,}", f"done {done:,}" + (f" of {total:,}" if total else ""),
             f"dead-lettered {counts.get(DEAD_LETTERED.name, 0):,}", speed, f"{_clock(elapsed)} elapsed"]
    if total and rate and done < total:
        parts.append(f"~{_clock((total - done) / rate)} left")
    line = ", ".join(parts)
    if total and bar_width:
        filled = min(bar_width, bar_width * done // total)
        line = f"[{'#' * filled}{'.' * (bar_width - filled)}] {min(100, 100 * done // total):3d}% {line}"
    return line


def count_records(pattern: str, stop: threading.Event | None = None, input_format: str = "auto") -> int | None:
    """Records in the local JSON Lines files `pattern` matches (non-blank lines), or None where that is
    unknown without the job's own work (SQuAD JSON or tables, as detect_format tells them, files on Cloud
    Storage, more than 1 GiB in all) or where `stop` is set before the count ends (a short job on a large file
    must not wait for its count)."""
    from apache_beam.io.filesystems import FileSystems

    from bertqa.io.inputs import detect_format, file_lines, line_head, read_head

    if pattern.startswith("gs://") or input_format not in ("auto", "jsonl"):
        return None
    try:
        files = [found for result in FileSystems.match([pattern]) for found in result.metadata_list]
        if (sum(f.size_in_bytes for f in files) > 1 << 30
                or any(detect_format(found.path, input_format, lambda path=found.path: read_head(path)) != "jsonl"
                       for found in files)):
            return None
        records = 0
        for found in files:
            for number, line in enumerate(file_lines(found.path)):
                if number % 10_000 == 0 and stop is not None and stop.is_set():
                    return None
                records += line_head(line) is not None
        return records
    except Exception:  # a damaged file or a bad pattern: the job itself says what is wrong
        return None


@contextlib.contextmanager
def watch(input_pattern: str | None, stream: TextIO | None = None, interval: float | None = None,
          input_format: str = "auto", asked: int | None = None) -> Iterator[None]:
    """While a local job runs, prints its progress every `interval` seconds: a redrawn bar on a terminal
    (each second), a line every 10 seconds elsewhere (logs, CI). `asked`: documents mode's questions per
    document, each document read standing for that many pairs."""
    stream = stream or sys.stderr
    terminal = stream.isatty()
    interval = interval or float(os.environ.get("BERTQA_PROGRESS_INTERVAL", 1 if terminal else 10))
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="bertqa-progress-") as directory:
        previous = os.environ.get(PROGRESS_DIR)
        os.environ[PROGRESS_DIR] = directory  # inherited by the worker processes the runner starts

        def report():
            started = time.monotonic()
            total = count_records(input_pattern, stop, input_format) if input_pattern else None
            total = total * asked if total is not None and asked else total
            first_done = None  # (time, done) when records first finished: the rate counts from there
            printed = False
            while not stop.wait(interval):
                counts = totals(directory)
                now = time.monotonic()
                done = _done(counts, asked)
                if done and first_done is None:
                    first_done = (now, done)
                rate = (done - first_done[1]) / (now - first_done[0]) if first_done and now > first_done[0] else None
                line = progress_line(counts, total, now - started, rate, bar_width=30 if terminal else 0, asked=asked)
                stream.write(f"\r{line}\x1b[K" if terminal else f"progress: {line}\n")
                stream.flush()
                printed = True
            if printed and terminal:
                stream.write("\n")

        reporter = threading.Thread(target=report, name="bertqa-progress", daemon=True)
        reporter.start()
        try:
            yield
        finally:
            stop.set()
            reporter.join(timeout=5)
            if previous is None:
                os.environ.pop(PROGRESS_DIR, None)
            else:
                os.environ[PROGRESS_DIR] = previous
