"""Reading model files from any Beam filesystem (local, gs://) into the worker."""

from __future__ import annotations

import os
import tempfile

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


def localize_dir(path: str) -> str:
    """A local directory holding the files of `path` (copied first when `path` is remote)."""
    if is_local(path):
        return path
    root = path.rstrip("/") + "/"
    target = tempfile.mkdtemp(prefix="bertqa-model-")
    matches = FileSystems.match([root + "**"])[0].metadata_list
    if not matches:
        raise FileNotFoundError(f"no files under {root}")
    for metadata in matches:
        relative = metadata.path[len(root):]
        destination = os.path.join(target, relative)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        with open(destination, "wb") as handle:
            handle.write(read_bytes(metadata.path))
    return target
