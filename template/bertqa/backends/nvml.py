"""GPU facts from NVML, the driver's own library (libnvidia-ml.so.1), read through `nvidia-ml-py`.

Not through `nvidia-smi` on PATH: a container gets the driver's libraries where the host mounts them
(Dataflow: /usr/local/nvidia/lib64, found through the image's LD_LIBRARY_PATH as in NVIDIA's CUDA images),
and a missing binary would surface as FileNotFoundError far from its cause.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator


class NoGpuError(RuntimeError):
    """NVML cannot be loaded or sees no GPU."""


@dataclasses.dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: str  # "8.9"
    total_bytes: int
    free_bytes: int
    used_bytes: int
    utilization_percent: int | None


@contextlib.contextmanager
def _nvml() -> Iterator[object]:
    try:
        import pynvml
    except ImportError as error:
        raise NoGpuError("nvidia-ml-py is not installed (the GPU images carry it)") from error
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        raise NoGpuError(
            f"NVML, the NVIDIA driver's library (libnvidia-ml.so.1), could not be loaded ({error}): no GPU driver "
            "here, or its libraries are not on LD_LIBRARY_PATH (/usr/local/nvidia/lib64 where Dataflow mounts "
            "them)") from error
    try:
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


def gpus() -> list[Gpu]:
    """Every GPU this process can see; NoGpuError where there is no driver."""
    with _nvml() as nvml:
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                utilization = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            except nvml.NVMLError:  # not every GPU or driver reports it
                utilization = None
            found.append(Gpu(index, name.decode() if isinstance(name, bytes) else name, f"{major}.{minor}",
                             int(memory.total), int(memory.free), int(memory.used), utilization))
    return found


def first_gpu() -> Gpu:
    found = gpus()
    if not found:
        raise NoGpuError("the NVIDIA driver is loaded but sees no GPU")
    return found[0]


def gpu_present() -> bool:
    try:
        return bool(gpus())
    except NoGpuError:
        return False
