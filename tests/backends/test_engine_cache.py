"""The TensorRT engine cache under concurrency: real processes, a real lock, a GCS emulator with preconditions."""

import hashlib
import json
import multiprocessing
import os
import time

import pytest

from bertqa.backends.engine_cache import EngineCache, EngineMismatch

IDENTITY = {"format": 2, "gpu_name": "NVIDIA L4", "compute_capability": "8.9", "onnx_sha256": "abc"}
KEY = "0123456789abcdef"
ENGINE_BYTES = 24 << 20  # large enough that GCS uploads are resumable and files take several writes


def slow_build(builds_log: str, together: int) -> tuple[bytes, dict]:
    """A stand-in for a minutes-long engine build whose bytes say which process made them. It lasts until
    `together` builds have started (at most a minute): machines that missed the cache at the same moment stay
    building at the same moment, however unevenly a loaded machine starts their processes."""
    with open(builds_log, "a") as log:
        log.write(f"{os.getpid()}\n")
    time.sleep(1.0)
    deadline = time.monotonic() + 60
    while len(builders_of(builds_log)) < together and time.monotonic() < deadline:
        time.sleep(0.05)
    return hashlib.sha256(str(os.getpid()).encode()).digest() * (ENGINE_BYTES // 32), {}


def build_or_read(shared: str, local: str, builds_log: str, emulator: str | None, result: str,
                  together: int = 1) -> None:
    """One worker process: the engine for KEY from the cache, or built and stored."""
    if emulator:  # the emulator's address and anonymous credentials, as the test process has them
        os.environ["STORAGE_EMULATOR_HOST"] = emulator
        from apache_beam.internal.gcp import auth

        auth._Credentials._credentials_init, auth._Credentials._credentials = True, None
    engine = EngineCache(shared, local).get_or_build(KEY, IDENTITY, lambda: slow_build(builds_log, together))
    with open(result, "w") as handle:
        handle.write(hashlib.sha256(engine).hexdigest())


def run_processes(arguments: list[tuple]) -> list[str]:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=build_or_read, args=args) for args in arguments]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    results = []
    for _, _, _, _, result, *_ in arguments:
        with open(result) as handle:
            results.append(handle.read())
    return results


def builders_of(builds_log: str) -> list[str]:
    return open(builds_log).read().split() if os.path.exists(builds_log) else []


def test_processes_of_one_machine_build_once_and_all_load_the_same_complete_engine(tmp_path):
    local, shared, log = tmp_path / "machine", tmp_path / "shared", tmp_path / "builds.log"
    results = run_processes([(str(shared), str(local), str(log), None, str(tmp_path / f"r{i}")) for i in range(3)])
    assert len(builders_of(log)) == 1  # the others waited for the one build, then read it
    (engine,) = local.glob("bertqa-*.engine")
    digest = hashlib.sha256(engine.read_bytes()).hexdigest()
    assert results == [digest] * 3 and len(engine.read_bytes()) == ENGINE_BYTES
    assert hashlib.sha256((shared / engine.name).read_bytes()).hexdigest() == digest
    assert json.loads((shared / (engine.name + ".json")).read_text()) == IDENTITY
    assert not list(local.glob(".writing-*")) and not list(shared.glob(".writing-*"))


def test_workers_storing_the_same_entry_on_gcs_at_once_leave_one_complete_engine(tmp_path, bucket):
    log = tmp_path / "builds.log"
    emulator = os.environ["STORAGE_EMULATOR_HOST"]
    # Two machines (their own /tmp, no common lock) miss the cache at once and both build.
    results = run_processes([("gs://qa/engines", str(tmp_path / f"machine{i}"), str(log), emulator,
                              str(tmp_path / f"r{i}"), 2) for i in range(2)])
    assert len(builders_of(log)) == 2
    stored = bucket.blob(f"engines/bertqa-{KEY}.engine").download_as_bytes()
    assert len(stored) == ENGINE_BYTES and hashlib.sha256(stored).hexdigest() in results  # one writer's, whole
    assert json.loads(bucket.blob(f"engines/bertqa-{KEY}.engine.json").download_as_bytes()) == IDENTITY
    # A third machine reads the stored engine instead of building.
    (third,) = run_processes([("gs://qa/engines", str(tmp_path / "machine3"), str(log), emulator,
                               str(tmp_path / "r3"))])
    assert third == hashlib.sha256(stored).hexdigest() and len(builders_of(log)) == 2


def test_a_later_writer_keeps_the_first_engine_on_gcs_and_completes_an_entry_left_half_written(tmp_path, bucket):
    first, second = EngineCache("gs://qa/later", str(tmp_path / "a")), EngineCache("gs://qa/later", str(tmp_path / "b"))
    first.put("k1", b"first", IDENTITY)
    second.put("k1", b"second", IDENTITY)
    assert bucket.blob("later/bertqa-k1.engine").download_as_bytes() == b"first"
    # A writer that stopped after the engine: readers ignore the entry until the next writer adds its JSON.
    bucket.blob("later/bertqa-k2.engine").upload_from_string(b"complete engine")
    assert EngineCache("gs://qa/later", str(tmp_path / "c")).get("k2") is None
    second.put("k2", b"another build", IDENTITY)
    assert EngineCache("gs://qa/later", str(tmp_path / "d")).get("k2") == (b"complete engine", IDENTITY)


def test_an_engine_without_its_json_is_not_read_and_is_rebuilt(tmp_path):
    cache = EngineCache("", str(tmp_path))
    (tmp_path / f"bertqa-{KEY}.engine").write_bytes(b"cut off")  # a writer stopped before the JSON
    assert cache.get(KEY) is None
    assert cache.get_or_build(KEY, IDENTITY, lambda: (b"rebuilt", {})) == b"rebuilt"
    assert cache.get(KEY) == (b"rebuilt", IDENTITY)


def test_an_entry_stored_for_something_else_is_refused_naming_the_difference(tmp_path):
    cache = EngineCache("", str(tmp_path))
    cache.put(KEY, b"engine", {**IDENTITY, "gpu_name": "Tesla T4"})
    with pytest.raises(EngineMismatch, match="gpu_name: engine 'Tesla T4', here 'NVIDIA L4'"):
        cache.get_or_build(KEY, IDENTITY, lambda: (b"unused", {}))


def test_what_the_build_gives_besides_the_engine_is_stored_and_a_hit_is_accepted_by_the_job(tmp_path):
    cache = EngineCache("", str(tmp_path))
    verdict = {"gate": {"sample": "s1", "changed_spans": 3}}
    assert cache.get_or_build(KEY, IDENTITY, lambda: (b"engine", verdict)) == b"engine"
    assert cache.get(KEY) == (b"engine", {**IDENTITY, **verdict})  # the key is of the identity alone
    seen = []
    assert cache.get_or_build(KEY, IDENTITY, lambda: (b"unused", {}), lambda *found: seen.append(found)) == b"engine"
    assert seen == [(b"engine", {**IDENTITY, **verdict})]

    def refuse(engine, stored):
        raise RuntimeError("too loose a gate")

    with pytest.raises(RuntimeError, match="too loose a gate"):
        cache.get_or_build(KEY, IDENTITY, lambda: (b"unused", {}), refuse)
