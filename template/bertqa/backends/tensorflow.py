"""TensorFlow backend: a SavedModel loaded with `tf.saved_model.load`, on GPU when one is visible."""

from __future__ import annotations

import dataclasses
import logging

from bertqa.backends.base import ModelSpec, QAModel
from bertqa.backends.named_io import NamedIOModel, SignatureError
from bertqa.io.files import localize_dir


def _configure_gpus(tf) -> None:
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: growth was set then
            pass


class TensorFlowQAModel(NamedIOModel):
    def __init__(self, path: str, signature_name: str, input_names: dict[str, str]):
        import tensorflow as tf

        self._tf = tf
        _configure_gpus(tf)
        self._loaded = tf.saved_model.load(localize_dir(path))
        if signature_name not in self._loaded.signatures:
            raise SignatureError(
                f"SavedModel at {path} has no signature '{signature_name}'; it has: "
                f"{', '.join(self._loaded.signatures) or 'none'}"
            )
        self.function = self._loaded.signatures[signature_name]
        _, input_specs = self.function.structured_input_signature
        output_specs = self.function.structured_outputs
        super().__init__(
            {name: (spec.dtype.as_numpy_dtype, spec.shape.as_list()) for name, spec in input_specs.items()},
            {name: spec.shape.as_list() if spec.shape.rank is not None else None
             for name, spec in output_specs.items()},
            input_names,
        )
        logging.info("TensorFlow model %s: inputs %s, outputs %s, GPUs %s", path, self._roles, self._outputs,
                     tf.config.list_physical_devices("GPU"))

    def gpu_unavailable(self) -> str | None:
        if self._tf.config.list_physical_devices("GPU"):
            return None
        build = self._tf.sysconfig.get_build_info()
        if not build.get("is_cuda_build"):
            return f"TensorFlow {self._tf.__version__} is a CPU-only build"
        return (f"TensorFlow {self._tf.__version__} lists no GPU (it is built for CUDA {build.get('cuda_version')} "
                f"and cuDNN {build.get('cudnn_version')}; the worker log says which library failed to load)")

    def call(self, feeds):
        outputs = self.function(**{name: self._tf.constant(array) for name, array in feeds.items()})
        return {name: outputs[name].numpy() for name in self._outputs}


@dataclasses.dataclass(frozen=True)
class TensorFlowModelSpec(ModelSpec):
    path: str
    signature_name: str = "serving_default"
    input_names: tuple[tuple[str, str], ...] = ()

    def load(self) -> QAModel:
        return TensorFlowQAModel(self.path, self.signature_name, dict(self.input_names))
