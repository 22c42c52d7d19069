"""Inference backends, one module each, behind `bertqa.backends.base.QAModel`."""

from __future__ import annotations

from bertqa.backends.base import ModelSpec
from bertqa.params import Backend, TemplateParams


def model_spec(params: TemplateParams) -> ModelSpec:
    """The backend's description of the model named by the parameters."""
    if params.backend == Backend.tensorflow.value:
        from bertqa.backends.tensorflow import TensorFlowModelSpec

        return TensorFlowModelSpec(params.model_path, params.signature_name, tuple(params.input_name_map.items()))
    raise ValueError(f"unknown backend {params.backend}")
