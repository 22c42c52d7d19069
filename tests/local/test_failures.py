"""A failed job ends with one line naming the step and the cause, and exit code 1."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertqa.demo import data
from bertqa.local.failures import _descendants, job_failure, worker_died

from conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def test_the_root_cause_and_the_step_are_found_in_beams_error_text():
    assert job_failure(ValueError("bad value on element 7 [while running 'DecodeAnswers']")) == (
        "step 'DecodeAnswers': ValueError: bad value on element 7")
    remote = RuntimeError(
        "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\nKeyError: 'input_ids'\n\n"
        "During handling of the above exception, another exception occurred:\n\nTraceback (most recent call "
        "last):\n  File \"y.py\"\nKeyError: \"'input_ids' [while running 'RunInference/BeamML_RunInference']\"\n")
    assert job_failure(remote) == "step 'RunInference/BeamML_RunInference': KeyError: 'input_ids'"
    assert worker_died(137).startswith("a worker process died (exit code 137: killed by SIGKILL")
    assert worker_died(-9).startswith("a worker process died (exit code -9: killed by SIGKILL")
    assert worker_died(1) == "a worker process died (exit code 1)"


def running(pid: int, grace: float = 10.0) -> bool:
    """Whether the process still runs (a killed one may stay a zombie until it is reaped)."""
    deadline = time.time() + grace
    while time.time() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.2)
    return True


def test_a_killed_worker_process_ends_the_job_with_one_line_not_a_hang(tmp_path, onnx_model, vocab_path):
    write_jsonl(tmp_path / "q.jsonl", list(data.generate(seed=4, passages=3000)))
    job = subprocess.Popen(
        [sys.executable, str(ROOT / "template" / "main.py"), f"--input={tmp_path}/q.jsonl", f"--output={tmp_path}/out",
         f"--model_path={onnx_model()}", "--backend=onnxruntime", f"--vocab_path={vocab_path}", "--max_seq_length=64", "--doc_stride=24",
         "--max_query_length=16", "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = []
    deadline = time.time() + 120
    while not workers and time.time() < deadline and job.poll() is None:
        time.sleep(0.5)
        # The Python worker itself, not the shell that started it: as the out-of-memory killer would.
        workers = [pid for pid in _descendants(job.pid)
                   if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3] == [
                       sys.executable.encode(), b"-m", b"apache_beam.runners.worker.sdk_worker_main"]]
    assert workers, "no worker process appeared"
    while not list((tmp_path / "out").rglob("beam-temp-*/*")) and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)  # until the job writes its first shard
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: the job failed: a worker process died (exit code") and "SIGKILL" in last, stderr[-4000:]
    assert not (tmp_path / "out" / "summary.json").exists()
    assert not list((tmp_path / "out").rglob("beam-temp-*")), "the failed job left its partial shards"
    assert not [pid for pid in workers[1:] if running(pid)], "a worker was left running"


def test_every_worker_is_found_while_threads_of_the_job_end(monkeypatch):
    # At a failed job's end gRPC's threads end too: one ending while the job's threads were listed stopped the
    # search for worker processes there, a worker left out ran on and printed after the job's last line.
    import builtins
    import threading


    started, done, children = threading.Event(), threading.Event(), []

    def parent():  # a thread of the job that started a worker process, as Beam's runner does
        children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        started.set()
        done.wait()

    thread = threading.Thread(target=parent)
    thread.start()
    started.wait()
    real_open, ended = builtins.open, []

    def open_as_a_thread_ends(path, *args, **kwargs):
        if str(path).endswith("/children") and f"/task/{thread.native_id}/" not in str(path) and not ended:
            ended.append(path)
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    try:
        monkeypatch.setattr(builtins, "open", open_as_a_thread_ends)
        found = _descendants(os.getpid())
        monkeypatch.undo()
        assert ended and children[0].pid in found
    finally:
        children[0].kill()
        children[0].wait()
        done.set()
        thread.join()


def test_a_death_reported_after_the_broken_channel_still_names_the_dead_worker():
    # The race seen on 2 cores: the main thread fails on the dead worker's broken gRPC channel first, and
    # the runner's thread reports the death a moment later.
    script = """
import threading, time
from bertqa.local.failures import end_job_when_a_local_worker_dies
def report_death():
    time.sleep(1)
    raise RuntimeError("Worker subprocess exited with return code -9")
with end_job_when_a_local_worker_dies():
    threading.Thread(target=report_death).start()
    raise RuntimeError("grpc._channel._MultiThreadedRendezvous: <_MultiThreadedRendezvous of RPC> RpcError")
"""
    job = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert job.returncode == 1
    assert job.stderr.strip().splitlines()[-1] == (
        "error: the job failed: a worker process died (exit code -9: killed by SIGKILL (often the out-of-memory "
        "killer: more memory per worker, or a smaller --max_batch_size))")


def test_the_jobs_last_line_starts_a_line_whatever_another_thread_was_printing():
    # Seen once under load: a process or thread of the job had begun a traceback, and the last line continued its
    # indentation ("    error: interrupted ...").
    script = """
import sys, threading
from bertqa.local.failures import exit_interrupted
sys.stderr.write("a whole line\\n")
thread = threading.Thread(target=lambda: sys.stderr.write("    "))  # a traceback's indentation
thread.start()
thread.join()
exit_interrupted(lambda: None)
"""
    job = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "template")})
    assert job.returncode == 130
    assert job.stderr == ("a whole line\n    \nerror: interrupted (SIGINT, Ctrl-C): the job stopped before it finished, "
                          "its partial files are deleted and no summary.json was written\n")


@pytest.mark.parametrize("processes", [1, 2])
def test_ctrl_c_ends_a_local_job_as_interrupted_with_no_partial_files_left(processes, tmp_path, onnx_model,
                                                                           vocab_path):
    write_jsonl(tmp_path / "q.jsonl", list(data.generate(seed=4, passages=3000)))
    output = tmp_path / "out"
    workers = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"] if processes == 2 else []
    job = subprocess.Popen(
        [sys.executable, str(ROOT / "template" / "main.py"), f"--input={tmp_path}/q.jsonl", f"--output={output}",
         f"--model_path={onnx_model()}", "--backend=onnxruntime", f"--vocab_path={vocab_path}", "--max_seq_length=64", "--doc_stride=24",
         "--max_query_length=16", *workers],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's foreground job has it
    deadline = time.time() + 180
    while not list(output.rglob("beam-temp-*/*")) and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)  # until the job writes its first shard
    assert job.poll() is None, "the job ended before it could be interrupted"
    os.killpg(job.pid, signal.SIGINT)  # Ctrl-C: to every process of the terminal's foreground group
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 130
    assert stderr.strip().splitlines()[-1] == (
        "error: interrupted (SIGINT, Ctrl-C): the job stopped before it finished, its partial files are deleted and "
        "no summary.json was written")
    assert not (output / "summary.json").exists() and not list(output.rglob("beam-temp-*"))
