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


def read_bytes(path: str, at_most: int = -1) -> bytes:
    """The file's bytes, or its first `at_most`: read one more than a limit to tell a file over it, without holding a
    large file in memory (a model's weights given as its vocabulary, say)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read(at_most)


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def is_local(path: str) -> bool:
    return "://" not in path


def _copy(source: str, destination: str) -> None:
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as remote, \
            open(destination, "wb") as handle:
        shutil.copyfileobj(remote, handle, 16 << 20)  # streamed: a model's weights are gigabytes


def _machine_copy(identity: list, copy_into: Callable[[str], None]) -> str:
    """The machine's one copy of what `identity` names (the machine's temporary directory, under a key of it):
    made by the first process that asks, under a lock; every other process waits, then finds it there. A later
    change to the files (another size or time in `identity`) is copied anew."""
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]
    target = os.path.join(tempfile.gettempdir(), f"bertqa-model-{key}")
    with open(target + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(target + ".complete"):
            shutil.rmtree(target, ignore_errors=True)  # a copy an earlier process did not finish
            copy_into(target)
            open(target + ".complete", "w").close()
    return target


def localize_file(path: str) -> str:
    """A local path holding the file at `path`: a remote file is copied once per machine, however many
    processes ask (`_machine_copy`), and keeps its name."""
    if is_local(path):
        return path
    (metadata,) = FileSystems.match([path])[0].metadata_list or [None]
    if metadata is None:
        raise FileNotFoundError(f"no file {path}")
    name = os.path.basename(path)
    directory = _machine_copy([path, metadata.size_in_bytes, metadata.last_updated_in_seconds],
                              lambda target: _copy(path, os.path.join(target, name)))
    return os.path.join(directory, name)


def localize_dir(path: str, select: Callable[[list[str]], list[str]] | None = None) -> str:
    """A local directory holding the files of `path`; `select` picks which of its files (relative names) are
    needed. A remote directory is copied once per machine, however many processes ask (`_machine_copy`), under
    a key of its files' names, sizes and times."""
    if is_local(path):
        return path
    root = path.rstrip("/") + "/"
    found = {metadata.path[len(root):]: metadata for metadata in FileSystems.match([root + "**"])[0].metadata_list}
    names = sorted(select(sorted(found)) if select else found)
    if not names:
        raise FileNotFoundError(f"no files under {root}")
    identity = [root] + [[name, found[name].size_in_bytes, found[name].last_updated_in_seconds] for name in names]

    def copy_into(target: str) -> None:
        for name in names:
            _copy(root + name, os.path.join(target, name))

    return _machine_copy(identity, copy_into)
