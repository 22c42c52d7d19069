"""The template's images (Dockerfile targets): what each carries, how large it is, and which one a job needs.

Sizes are measured from the locked wheels by `python image/lock.py` (data/images.json) and checked by
tests/dataflow/test_image.py; every image is both the Flex launcher and its jobs' worker image.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from importlib import resources

# What a backend imports on the workers.
BACKEND_PACKAGES = {
    "tensorflow": ("tensorflow",),
    "onnxruntime": ("onnxruntime",),
    "tensorrt": ("tensorrt", "polygraphy"),
    "pytorch": ("torch", "transformers"),
}
# Room on a worker's boot disk besides the image: models, TensorRT engines, the job's temporary files.
DISK_HEADROOM_GB = 20
GPU_MIN_DISK_GB = 50  # a GPU worker's disk, whatever the image: models and TensorRT engines are large


@dataclasses.dataclass(frozen=True)
class Image:
    name: str
    gpu: bool
    backends: tuple[str, ...]
    extras: tuple[str, ...]  # pyproject.toml extras its lock is resolved from

    def backend_packages(self) -> dict[str, tuple[str, ...]]:
        return {backend: BACKEND_PACKAGES[backend] for backend in self.backends}

    @property
    def installed_bytes(self) -> int:
        return _sizes()[self.name]["installed_bytes"]

    @property
    def download_bytes(self) -> int:
        return _sizes()[self.name]["download_bytes"]

    @property
    def boot_disk_gb(self) -> int:
        """A boot disk that holds the image twice (its compressed layers and their extraction while it is
        pulled) and DISK_HEADROOM_GB more, in tens of GB; at least GPU_MIN_DISK_GB for a GPU image (the
        TensorRT libraries of two of them, from NVIDIA's index, are not in the measured size)."""
        needed = 2 * self.installed_bytes / 1e9 + DISK_HEADROOM_GB
        return max(10 * math.ceil(needed / 10), GPU_MIN_DISK_GB if self.gpu else 0)


IMAGES = {image.name: image for image in (
    Image("cpu", gpu=False, backends=("tensorflow", "onnxruntime"), extras=("cpu", "onnx")),
    Image("gpu", gpu=True, backends=("onnxruntime", "tensorrt"), extras=("gpu", "nvml", "onnx", "tensorrt")),
    Image("gpu-tensorflow", gpu=True, backends=("tensorflow", "onnxruntime", "tensorrt"),
          extras=("gpu", "nvml", "gpu-tensorflow", "onnx", "tensorrt")),
    # PyPI's torch is a CUDA 13 build: alone in its image, beside no CUDA 12 library.
    Image("gpu-pytorch", gpu=True, backends=("pytorch",), extras=("hf", "nvml")),
)}


@functools.cache
def _sizes() -> dict:
    return json.loads(resources.files("bertqa").joinpath("data/images.json").read_text())["images"]


def image_for(backend: str, gpu: bool) -> Image | None:
    """The smallest image that runs `backend` on a GPU worker (or a CPU one); None where no image does."""
    fitting = [image for image in IMAGES.values() if image.gpu == gpu and backend in image.backends]
    return min(fitting, key=lambda image: image.installed_bytes, default=None)


def this_image() -> Image | None:
    """The template image this process runs in (its BERTQA_IMAGE, set by the Dockerfile); None outside one."""
    name = os.environ.get("BERTQA_IMAGE")
    return IMAGES.get(name) if name else None
