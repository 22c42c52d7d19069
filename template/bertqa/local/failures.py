"""A failed job explained in one line: the step and the real cause, found in Beam's long error text.

The full traceback still goes to the log; the user's terminal (or the launcher's last line) gets
"step 'X': ValueError: ..." or "a worker process died (exit code 137: killed by SIGKILL ...)".
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import time
from typing import Callable, Iterator, NoReturn

_STEP = re.compile(r"\[while running '([^']+)'\]")
# A traceback's last line: "module.ExceptionName: message" at the start of a line.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure)): ?(.*)$", re.M)
_WORKER_EXIT = re.compile(r"Worker subprocess exited with return code (-?\d+)")
DEATH_REPORT_GRACE_SECONDS = 10.0


INTERRUPTED = 130  # the exit code of a job stopped by Ctrl-C: 128 + SIGINT, as shells report it
_interrupting = threading.Event()  # set while an interrupted job ends: worker deaths are then its own doing
_stopping = threading.Lock()


def _signal_number(code: int) -> int:
    """The signal an exit code says killed a process (137 = 128 + SIGKILL, -9 = killed by signal 9), else 0."""
    return code - 128 if code > 128 else -code if code < 0 else 0


def _wait_until_gone(pids: list[int], timeout: float = 5.0) -> None:
    """Until every process in `pids` has ended (gone, or a zombie: it runs no more), or `timeout` seconds."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    if stat.read().rpartition(")")[2].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.01)


def _end_job(clean_up: Callable[[], None], line: str, code: int) -> NoReturn:
    """Kills the job's worker processes, runs `clean_up` (the run's partial files), writes `line` as the last
    line of stderr and ends the process with `code`, without waiting for its other threads."""
    killed = _descendants(os.getpid())  # the workers would outlive us, orphaned
    for pid in killed:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _wait_until_gone(killed)  # a dying worker may still be printing its traceback: our line must come last
    with contextlib.suppress(Exception):  # the line and the exit code matter more than a leftover file
        clean_up()
    # This process's other threads (gRPC's, hit by the shutdown) may print too: they get /dev/null from here.
    sys.stderr.flush()
    stderr = os.dup(2)
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    # On a line of its own: a worker killed mid-traceback, a thread printing before the switch or a progress bar
    # on a terminal may have left a line begun (stderr is not buffered), which ours would otherwise continue.
    os.write(stderr, f"\n{line}\n".encode())
    os._exit(code)


def exit_interrupted(clean_up: Callable[[], None]) -> NoReturn:
    """Ends a local job stopped by Ctrl-C: its worker processes, `clean_up` (the run's partial files), one line,
    exit code 130. Called from the main thread (KeyboardInterrupt) and from the thread that sees a worker killed by
    the same SIGINT: the second caller waits here while the first ends the process."""
    _interrupting.set()
    with _stopping:
        _end_job(clean_up, "error: interrupted (SIGINT, Ctrl-C): the job stopped before it finished, its partial "
                           "files are deleted and no summary.json was written", INTERRUPTED)


def interrupted(error: BaseException) -> bool:
    """Whether a job's error is Ctrl-C: a KeyboardInterrupt in its chain of causes, or Beam's RuntimeError carrying
    one ("KeyboardInterrupt [while running 'step']")."""
    while error is not None:
        if isinstance(error, KeyboardInterrupt) or str(error).startswith("KeyboardInterrupt"):
            return True
        error = error.__cause__ or error.__context__
    return False


def worker_died(code: int) -> str:
    """What a worker process's exit code means (137 = 128 + SIGKILL, -9 = killed by signal 9)."""
    number = _signal_number(code)
    try:
        name = signal.Signals(number).name if number else ""
    except ValueError:
        name = ""
    why = f": killed by {name}" + (" (often the out-of-memory killer: more memory per worker, or a "
                                   "smaller --max_batch_size)" if name == "SIGKILL" else "") if name else ""
    return f"a worker process died (exit code {code}{why})"


def job_failure(error: BaseException, limit: int = 400) -> str:
    """One line naming the step that failed and the first (root) exception of Beam's error text."""
    text = str(error)
    if exit_code := _WORKER_EXIT.search(text):
        return worker_died(int(exit_code.group(1)))
    steps = _STEP.findall(text)
    causes = _EXCEPTION_LINE.findall(text)
    name, message = causes[0] if causes else (type(error).__name__, text.strip().splitlines()[0] if text else "")
    message = " ".join(_STEP.sub("", message).split())
    line = (f"step '{steps[-1]}': " if steps else "") + f"{name.rsplit('.', 1)[-1]}: {message}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _descendants(pid: int) -> list[int]:
    """Child processes, their children and so on (Linux /proc; none elsewhere)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:  # the process has ended
        return []
    children = []
    for task in tasks:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile: the others' children still count
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                children += [int(child) for child in handle.read().split()]
    return children + [grandchild for child in children for grandchild in _descendants(child)]


@contextlib.contextmanager
def end_job_when_a_local_worker_dies(clean_up: Callable[[], None] = lambda: None) -> Iterator[None]:
    """While a local job runs: a worker process that dies ends it with one line and exit code 1, after `clean_up`
    (the run's partial files); one killed by SIGINT (Ctrl-C reaches every process of the job) ends it as
    interrupted (`exit_interrupted`).

    Beam's local runner notices the death in a background thread and raises there, where nobody waits
    for it, so without this the job waits forever.
    """
    previous = threading.excepthook
    printing = threading.Lock()  # our line must come last: no other thread's traceback after it

    def hook(args):
        found = _WORKER_EXIT.search(str(args.exc_value)) if args.exc_value is not None else None
        if found and (_interrupting.is_set() or _signal_number(int(found.group(1))) == signal.SIGINT):
            exit_interrupted(clean_up)
        with printing:
            if not found:
                previous(args)
                return
            # The job cannot finish; the other threads would wait for the dead worker forever.
            _end_job(clean_up, f"error: the job failed: {worker_died(int(found.group(1)))}", 1)

    threading.excepthook = hook
    try:
        yield
    except Exception as error:
        # The main thread may see the dead worker's broken gRPC channel before the runner's thread reports
        # the death: give that report (the hook above, which ends the process) time to come first.
        if "RpcError" in f"{type(error).__name__} {error}"[:10_000]:
            time.sleep(DEATH_REPORT_GRACE_SECONDS)
        raise
    finally:
        threading.excepthook = previous
