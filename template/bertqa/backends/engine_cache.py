"""Where TensorRT engines are kept between processes and jobs, safe when many of them build or read at once.

An entry is two files: `bertqa-KEY.engine` and `bertqa-KEY.engine.json` (what it was built for, and the accuracy
gate's verdict on it). The JSON is written after the engine, so an entry whose JSON exists has a complete engine.
The key is of what the engine is for, not of the gate: a later job finds the entry whatever its gate, and holds the
stored verdict to its own limit (or gates the engine again where its sample differs).
- The machine's cache is a directory under the temporary directory that the SDK processes of a worker
  share (the one Beam's cross-process model sharing also locks in). Lookups and builds of one key hold an
  inter-process lock, so one process builds and the others wait, then read its engine. Files are written
  under a temporary name and renamed, so no reader ever sees part of one.
- The shared cache (`--engine_cache`, gs:// or a directory) keeps engines for later jobs and other
  workers. On gs:// entries are written create-only (`ifGenerationMatch=0`): the first writer's objects
  stay and never change while others read them; a later writer keeps the engine it built and moves on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from typing import Callable, Iterator, Mapping

from bertqa.io.files import is_local, read_bytes


class EngineMismatch(RuntimeError):
    """An engine was built for another GPU, TensorRT version, model or settings than the job's."""


def check_identity(stored: Mapping, current: Mapping) -> None:
    """Raises EngineMismatch naming every field that differs (GPU, TensorRT version, model, settings)."""
    differences = [f"{key}: engine {stored.get(key)!r}, here {value!r}" for key, value in current.items()
                   if stored.get(key) != value]
    if differences:
        raise EngineMismatch("the TensorRT engine was built for something else: " + "; ".join(differences))


def machine_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "bertqa-engines")


class EngineCache:
    def __init__(self, shared: str = "", local: str | None = None):
        """`shared`: "", a gs:// location or a local directory (the engine_cache parameter's pattern)."""
        self.local = local or machine_cache_dir()
        self.shared = shared.rstrip("/")
        os.makedirs(self.local, exist_ok=True)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Held while one key is looked up and, on a miss, built: other processes of the machine wait."""
        import fasteners

        with fasteners.InterProcessLock(os.path.join(self.local, f"bertqa-{key}.lock")):
            yield

    def get_or_build(self, key: str, identity: Mapping, build: Callable[[], tuple[bytes, dict]],
                     accept: Callable[[bytes, dict], None] | None = None) -> bytes:
        """The engine stored under `key` (checked to be for `identity`, then by `accept(engine, what was stored)`,
        which raises where this job must not use it), else the one `build()` makes, stored with what `build`
        gives besides it (the accuracy gate's verdict).

        One process of the machine at a time: the others wait for its build, then read its engine.
        """
        with self.lock(key):
            found = self.get(key)
            if found is not None:
                engine, stored = found
                check_identity(stored, identity)
                if accept is not None:
                    accept(engine, stored)
                logging.info("TensorRT engine %s from the cache", key)
                return engine
            engine, more = build()
            self.put(key, engine, {**identity, **more})
            return engine

    def get(self, key: str) -> tuple[bytes, dict] | None:
        """(engine, what it was built for) from the machine's cache, else from the shared one (copied to the
        machine's), else None."""
        found = _read_entry(self.local, key)
        if found is None and self.shared:
            found = _read_entry(self.shared, key)
            if found is not None:
                logging.info("TensorRT engine %s from %s", key, self.shared)
                _write_local_entry(self.local, key, *found)
        return found

    def put(self, key: str, engine: bytes, identity: Mapping) -> None:
        _write_local_entry(self.local, key, engine, identity)
        if not self.shared:
            return
        if is_local(self.shared):
            os.makedirs(self.shared, exist_ok=True)
            _write_local_entry(self.shared, key, engine, identity)
        elif not _create_gcs_entry(self.shared, key, engine, identity):
            logging.info("TensorRT engine %s: another worker stored it in %s first; keeping that one there",
                         key, self.shared)


def _names(directory: str, key: str) -> tuple[str, str]:
    engine = f"{directory}/bertqa-{key}.engine"
    return engine, engine + ".json"


def _read_entry(directory: str, key: str) -> tuple[bytes, dict] | None:
    from apache_beam.io.filesystems import FileSystems

    engine_path, identity_path = _names(directory, key)
    if not FileSystems.exists(identity_path):  # written last: without it the engine may be incomplete
        return None
    return read_bytes(engine_path), json.loads(read_bytes(identity_path))


def _write_local_entry(directory: str, key: str, engine: bytes, identity: Mapping) -> None:
    engine_path, identity_path = _names(directory, key)
    for path, data in ((engine_path, engine), (identity_path, json.dumps(identity, sort_keys=True).encode())):
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".writing-")
        try:
            with os.fdopen(handle, "wb") as output:
                output.write(data)
            os.replace(temporary, path)  # atomic: readers see the old file or the whole new one
        except BaseException:
            os.unlink(temporary)
            raise


def _create_gcs_entry(directory: str, key: str, engine: bytes, identity: Mapping) -> bool:
    """Creates whichever of the entry's two objects is missing; False when the engine was there already.

    An object exists on GCS only once complete, and every writer of a key has an engine for the same
    identity, so a writer that finds the engine present (its writer may have stopped before the JSON)
    still completes the entry with its JSON.
    """
    from apache_beam.io.gcp.gcsio import GcsIO, parse_gcs_path
    from google.api_core.exceptions import PreconditionFailed

    client = GcsIO().client
    created = []
    for path, data in zip(_names(directory, key), (engine, json.dumps(identity, sort_keys=True).encode())):
        bucket, name = parse_gcs_path(path)
        try:
            # Create-only: GCS refuses the write with 412 when the object already exists.
            client.bucket(bucket).blob(name).upload_from_string(data, if_generation_match=0)
            created.append(True)
        except PreconditionFailed:
            created.append(False)
    return created[0]
