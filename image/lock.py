"""Each image's Python packages, pinned with their hashes: `python image/lock.py` rewrites image/requirements-*.txt
and template/bertqa/data/images.json (what each image installs, and how large it is).

For each image (a Dockerfile target) pip resolves the project's requirements with that image's extras from PyPI,
on a machine of the image's platform (CPython 3.11, Linux x86_64, glibc 2.36), reading package metadata only
(`pip install --dry-run --ignore-installed --report`). The Dockerfile installs exactly that list with `--no-deps
--require-hashes`; tests/dataflow/test_image.py resolves each list again and checks what the image depends on.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import platform
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "template"))
from bertqa.images import IMAGES  # noqa: E402  (the images and the extras each is resolved from)

IMAGE_PLATFORM = ("3.11", "x86_64", "glibc", "2.36")  # python:3.11-slim-bookworm (Debian 12)
SIZES = ROOT / "template" / "bertqa" / "data" / "images.json"


def lock_path(image: str) -> Path:
    return ROOT / "image" / f"requirements-{image}.txt"


def project_requirements(image: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return project["dependencies"] + [req for extra in IMAGES[image].extras for req in extras[extra]]


def check_platform() -> None:
    """pip resolves for the machine it runs on (a few of Beam's requirements are sources only, and pip
    resolves sources only for its own platform): that must be the image's."""
    here = (f"{sys.version_info.major}.{sys.version_info.minor}", platform.machine(), *platform.libc_ver())
    if here != IMAGE_PLATFORM:
        raise RuntimeError(f"resolve the image's requirements on Python {IMAGE_PLATFORM[0]}, {IMAGE_PLATFORM[1]}, "
                           f"{' '.join(IMAGE_PLATFORM[2:])} (the image's platform); this machine is {here}")


def resolve(requirements: list[str]) -> list[dict]:
    """What pip would install for `requirements` in the image: the report's `install` entries."""
    check_platform()
    with tempfile.TemporaryDirectory() as scratch:
        listed = Path(scratch, "requirements.txt")
        listed.write_text("\n".join(requirements) + "\n")
        report = Path(scratch, "report.json")
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--index-url", "https://pypi.org/simple", "--report", str(report), "-r", str(listed)]
        # PyPI only, as in the image build: no machine-local indexes or wheel folders.
        environment = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""}
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        if done.returncode:
            raise RuntimeError(f"pip could not resolve the image's requirements:\n{done.stderr[-3000:]}")
        return json.loads(report.read_text())["install"]


def pins(installed: list[dict]) -> list[str]:
    """`name==version --hash=sha256:...` per package, the hash of the very file pip chose for the platform."""

    def line(item: dict) -> str:
        hashes = item["download_info"]["archive_info"]["hashes"]
        return f"{item['metadata']['name']}=={item['metadata']['version']} --hash=sha256:{hashes['sha256']}"

    return sorted(map(line, installed), key=str.lower)


def locked_lines(image: str) -> list[str]:
    return [line for line in lock_path(image).read_text().splitlines() if line and not line.startswith("#")]


def locked_versions(image: str) -> dict[str, str]:
    from packaging.utils import canonicalize_name

    return {canonicalize_name(line.split("==")[0]): line.split("==")[1].split()[0] for line in locked_lines(image)}


class _RangeFile:
    """A remote file read through HTTP range requests: enough for zipfile to read a wheel's central directory
    (its end, then the directory itself) without downloading the wheel."""

    def __init__(self, url: str):
        self.url, self.position = url, 0
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as answer:
            self.size = int(answer.headers["Content-Length"])

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position

    def read(self, count: int = -1) -> bytes:
        end = self.size if count < 0 else min(self.size, self.position + count)
        if end <= self.position:
            return b""
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={self.position}-{end - 1}"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            data = answer.read()
            if answer.status != 206:  # a server that ignores Range sends the whole file
                data = data[self.position:end]
        self.position += len(data)
        return data


def file_sizes(item: dict) -> tuple[int, int]:
    """(download bytes, installed bytes) of one report entry: the wheel's size and the sum of its files'
    uncompressed sizes, read from its zip directory (an sdist counts its download size for both)."""
    url = item["download_info"]["url"]
    remote = _RangeFile(url)
    if not url.endswith(".whl"):
        return remote.size, remote.size
    try:
        with zipfile.ZipFile(remote) as wheel:
            return remote.size, sum(entry.file_size for entry in wheel.infolist())
    except zipfile.BadZipFile as error:
        raise RuntimeError(f"{url}: not read as a wheel ({error})") from error


# Files on PyPI never change under their URL (it holds their hash): their sizes are kept between runs.
SIZE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bertqa" / "wheel-sizes.json"


def sizes(installed: list[dict]) -> tuple[int, int]:
    """(download bytes, installed bytes) of everything pip would install."""
    known = json.loads(SIZE_CACHE.read_text()) if SIZE_CACHE.exists() else {}
    missing = [item for item in installed if item["download_info"]["url"] not in known]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for item, measured in zip(missing, pool.map(file_sizes, missing)):
            known[item["download_info"]["url"]] = measured
    if missing:
        SIZE_CACHE.parent.mkdir(parents=True, exist_ok=True)
        SIZE_CACHE.write_text(json.dumps(known))
    measured = [known[item["download_info"]["url"]] for item in installed]
    return sum(m[0] for m in measured), sum(m[1] for m in measured)


def main() -> None:
    record = {"note": "Generated by `python image/lock.py`: each image's Python packages, their download size "
                      "and their installed size (the wheels' files uncompressed, without the .pyc files pip "
                      "compiles; TensorRT's libraries from NVIDIA's index, the base image, Beam's boot and the "
                      "launcher not counted).", "images": {}}
    for image in IMAGES:
        extras = IMAGES[image].extras
        header = [f"# The {image} image's Python packages, every one pinned with its hash. Generated by "
                  "`python image/lock.py`",
                  "# from pyproject.toml's requirements and extras " + ", ".join(extras) + "; do not edit by hand."]
        installed = resolve(project_requirements(image))
        lock_path(image).write_text("\n".join(header + pins(installed)) + "\n")
        download, unpacked = sizes(installed)
        record["images"][image] = {"packages": len(installed), "download_bytes": download, "installed_bytes": unpacked}
        print(f"wrote {lock_path(image)}: {len(installed)} packages, {download / 1e9:.2f} GB to download, "
              f"{unpacked / 1e9:.2f} GB installed")
    SIZES.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {SIZES}")


if __name__ == "__main__":
    main()
