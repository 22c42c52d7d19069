"""Reading model files from any Beam filesystem (local, gs://) into the worker."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from typing import Callable

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def is_local(path: str) -> bool:
    return "://" not in path


def localize_file(path: str) -> str:
    """A local path holding the file at `path` (copied first when `path` is remote)."""
    if is_local(path):
        return path
    handle, target = tempfile.mkstemp(prefix="bertqa-", suffix=os.path.basename(path))
    with os.fdopen(handle, "wb") as local:
        local.write(read_bytes(path))
    return target


def localize_dir(path: str, select: Callable[[list[str]], list[str]] | None = None) -> str:
    """A local directory holding the files of `path` (copied first when `path` is remote); `select` picks which
    of its files (relative names) are needed. A remote directory is copied once per machine, however many
    processes ask at once: into the machine's temporary directory, under a key of its files' names, sizes and
    times, so that a later change to the files is copied anew."""
    if is_local(path):
        return path
    root = path.rstrip("/") + "/"
    found = {metadata.path[len(root):]: metadata for metadata in FileSystems.match([root + "**"])[0].metadata_list}
    names = sorted(select(sorted(found)) if select else found)
    if not names:
        raise FileNotFoundError(f"no files under {root}")
    identity = json.dumps([root] + [(name, found[name].size_in_bytes, found[name].last_updated_in_seconds)
                                    for name in names])
    target = os.path.join(tempfile.gettempdir(), "bertqa-model-" + hashlib.sha256(identity.encode()).hexdigest()[:20])
    with open(target + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other processes of the machine wait here, then find it copied
        if not os.path.exists(target + ".complete"):
            shutil.rmtree(target, ignore_errors=True)  # a copy an earlier process did not finish
            for name in names:
                destination = os.path.join(target, name)
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                with FileSystems.open(root + name, compression_type=CompressionTypes.UNCOMPRESSED) as source, \
                        open(destination, "wb") as handle:
                    shutil.copyfileobj(source, handle, 16 << 20)  # streamed: a model's weights are gigabytes
            open(target + ".complete", "w").close()
    return target
