"""Inference backends, one module each, behind `bertqa.backends.base.QAModel`."""

from __future__ import annotations

from bertqa.backends.base import ModelSpec
from bertqa.params import Backend, TemplateParams


def model_spec(params: TemplateParams) -> ModelSpec:
    """The backend's description of the model named by the parameters."""
    input_names = tuple(params.input_name_map.items())
    if params.backend == Backend.tensorflow.value:
        from bertqa.backends.tensorflow import TensorFlowModelSpec

        return TensorFlowModelSpec(params.model_path, params.signature_name, input_names)
    if params.backend == Backend.onnxruntime.value:
        from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec

        return OnnxRuntimeModelSpec(params.model_path, input_names)
    if params.backend == Backend.tensorrt.value:
        from bertqa.backends.accuracy import AccuracyGate
        from bertqa.backends.tensorrt import EngineSettings, TensorRTModelSpec
        from bertqa.windows import WindowSettings

        settings = EngineSettings(params.max_batch_size, params.max_seq_length, params.precision, params.workspace_mib)
        gate = AccuracyGate(params.vocab_path, params.do_lower_case,
                            WindowSettings(params.max_seq_length, params.doc_stride, params.max_query_length),
                            params.max_batch_size, params.max_answer_length, params.max_changed_spans)
        return TensorRTModelSpec(params.model_path, settings, gate, params.engine_cache, params.build_engines,
                                 input_names, params.tensorrt_contexts)
    raise ValueError(f"unknown backend {params.backend}")
