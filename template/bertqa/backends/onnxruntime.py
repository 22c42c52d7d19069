"""ONNX Runtime backend: an ONNX model on the CUDA execution provider when present, else on the CPU.

On a GPU worker the CPU fallback is refused at load (`gpu_unavailable`), since ONNX Runtime itself only
logs it.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from bertqa.backends.base import ModelSpec, QAModel
from bertqa.backends.named_io import NamedIOModel
from bertqa.io.files import localize_file

ONNX_DTYPES = {"tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(float)": np.float32,
               "tensor(float16)": np.float16}


def onnx_dims(shape) -> list:
    """ONNX Runtime's shape (ints, names or None for dynamic dims) with dynamic dims as None."""
    return [dim if isinstance(dim, int) else None for dim in shape]


class OnnxRuntimeQAModel(NamedIOModel):
    def __init__(self, path: str, input_names: dict[str, str], threads: int = 0):
        import onnxruntime

        wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
        providers = [p for p in wanted if p in onnxruntime.get_available_providers()]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        # ONNX Runtime sessions may be run from several threads at once.
        self._session = onnxruntime.InferenceSession(localize_file(path), options, providers=providers)
        super().__init__(
            {i.name: (ONNX_DTYPES.get(i.type, np.float32), onnx_dims(i.shape)) for i in self._session.get_inputs()},
            {o.name: onnx_dims(o.shape) for o in self._session.get_outputs()},
            input_names,
        )
        logging.info("ONNX Runtime model %s on %s: inputs %s", path, self._session.get_providers(), self._roles)

    def gpu_unavailable(self) -> str | None:
        import onnxruntime

        used = self._session.get_providers()
        if "CUDAExecutionProvider" in used:
            return None
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return (f"onnxruntime {onnxruntime.__version__} has no CUDA execution provider (the CPU package is "
                    "installed, not onnxruntime-gpu)")
        return (f"ONNX Runtime {onnxruntime.__version__}'s CUDA execution provider did not load, the session runs on "
                f"{', '.join(used)} (its CUDA or cuDNN libraries are missing or of another major version: see the "
                "worker log)")

    def call(self, feeds):
        return dict(zip(self._outputs, self._session.run(list(self._outputs), feeds)))


@dataclasses.dataclass(frozen=True)
class OnnxRuntimeModelSpec(ModelSpec):
    path: str
    input_names: tuple[tuple[str, str], ...] = ()
    threads: int = 0  # intra-op threads (backends.threads_per_process)

    def load(self) -> QAModel:
        return OnnxRuntimeQAModel(self.path, dict(self.input_names), self.threads)
