"""Shared test fixtures: a WordPiece vocab trained here, tiny BERT SavedModels, question files, a GCS emulator."""

from __future__ import annotations

import glob
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs a test process per core: each framework starting a thread per core in each of them (and in
    # the jobs' worker processes, which inherit this) oversubscribes the cores. Measured: 447 s -> 417 s.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(variable, "1")

from bertqa.demo import data  # noqa: E402
from bertqa.params import Backend, TemplateParams  # noqa: E402

# The settings objects as a job with default parameters has them: TemplateParams holds the defaults and builds
# them (model_construct: no job paths, since none runs).
DEFAULTS = TemplateParams.model_construct()
DECODE = DEFAULTS.decode_settings
WINDOWS = DEFAULTS.window_settings


def engine_settings(max_batch_size: int, max_seq_length: int, **changes):
    """A TensorRT job's EngineSettings with these sizes (fp16 and the default workspace unless changed)."""
    return dataclasses.replace(TemplateParams.model_construct(backend=Backend.tensorrt).engine_settings,
                               max_batch_size=max_batch_size, max_seq_length=max_seq_length, **changes)


@pytest.fixture(scope="session")
def sample_records() -> list[dict]:
    return list(data.generate(seed=11, passages=6))


@pytest.fixture(scope="session")
def vocab_path(tmp_path_factory, sample_records) -> str:
    from bertqa.demo.train import train_vocab

    path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
    texts = [r["context"] for r in data.generate(seed=3, passages=200)] + [r["question"] for r in sample_records]
    train_vocab(texts, path, vocab_size=600)
    return path


@pytest.fixture(scope="session")
def vocab(vocab_path):
    from bertqa.qa.tokenization import parse_vocab

    with open(vocab_path, encoding="utf-8") as handle:
        return parse_vocab(handle.read())


@pytest.fixture(scope="session")
def tiny_model(vocab):
    from bertqa.demo.tiny_bert import TinyBertConfig, TinyBertQA

    return TinyBertQA(TinyBertConfig(vocab_size=len(vocab), max_positions=512, hidden_size=32, num_heads=2), seed=5)


def cached_by_arguments(build):
    """`build(convention, **options) -> path`, run once per distinct set of arguments in the session."""
    cache = {}

    def make(convention="huggingface", **options):
        key = (convention, tuple(sorted((name, str(value)) for name, value in options.items())))
        if key not in cache:
            cache[key] = build(convention, **options)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory, tiny_model):
    """The tiny model as a SavedModel in a given signature convention."""
    from bertqa.demo.tiny_bert import export

    def build(convention, **options):
        path = str(tmp_path_factory.mktemp(f"model_{convention}"))
        export(tiny_model, path, convention, **options)
        return path

    return cached_by_arguments(build)


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory, saved_model):
    """The tiny model exported to ONNX with `bertqa export-onnx`, per convention. Tests about worker processes
    run it: a process imports ONNX Runtime in a fraction of a second, TensorFlow in seconds."""

    from bertqa.cli import main as bertqa_main

    def build(convention, **options):
        path = str(tmp_path_factory.mktemp("onnx") / f"{convention}.onnx")
        assert bertqa_main(["export-onnx", f"--saved_model={saved_model(convention, **options)}",
                            f"--output={path}"]) == 0
        return path

    return cached_by_arguments(build)


# The small windows the tests' tiny models take.
WINDOW_ARGS = ["--max_seq_length=64", "--doc_stride=24", "--max_query_length=16", "--max_batch_size=4"]


def run_job(tmp_path, input_pattern, model_path, vocab_path, *extra):
    """The job (the CLI in this process) on `input_pattern`; its output directory."""
    from bertqa.cli import run_command

    output = tmp_path / "out"
    backend = [] if any(arg.startswith("--backend=") for arg in extra) else ["--backend=tensorflow"]
    code = run_command([f"--input={input_pattern}", f"--output={output}", f"--model_path={model_path}",
                        f"--vocab_path={vocab_path}", *backend, *WINDOW_ARGS, *extra])
    assert code == 0
    return output


def read_rows(pattern):
    """The JSON lines of every file `pattern` matches."""
    rows = []
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def window_logits_of(windows, model) -> list[tuple]:
    """(start logits, end logits) of each Window, from one model call on them padded together as the model step
    pads a call (to the length the model wants for the longest)."""
    import numpy as np

    from bertqa.qa.windows import pad_batch

    inputs = pad_batch(windows, model.input_length(max(window.length for window in windows)))
    start, end = model.predict(*inputs)
    return [(np.asarray(start)[row, :window.length], np.asarray(end)[row, :window.length])
            for row, window in enumerate(windows)]


def write_jsonl(path, records) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def bucket():
    """Bucket `qa` on a Cloud Storage emulator started on a free localhost port (tests/gcs_emulator.py)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    from apache_beam.internal.gcp import auth

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emulator = os.path.join(os.path.dirname(__file__), "gcs_emulator.py")
    server = subprocess.Popen([sys.executable, emulator, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    # No credentials here: Beam would retry finding them for about 20 s; connect anonymously at once.
    saved = auth._Credentials._credentials_init, auth._Credentials._credentials
    auth._Credentials._credentials_init, auth._Credentials._credentials = True, None
    try:
        yield storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket("qa")
    finally:
        auth._Credentials._credentials_init, auth._Credentials._credentials = saved
        del os.environ["STORAGE_EMULATOR_HOST"]
        server.terminate()
        server.wait(timeout=30)
