"""Inference backends, one module each, behind `bertqa.backends.base.QAModel`."""

from __future__ import annotations

import os

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from bertqa.backends.base import ModelSpec
from bertqa.params import Backend, Precision, TemplateParams


def threads_per_process(params: TemplateParams, options: PipelineOptions) -> int:
    """ONNX Runtime's intra-op threads in each process that holds a model; 0 = its default, one per core.

    Dataflow runs one SDK process per vCPU, and with the default each of them would start a thread per vCPU:
    n x n threads for n cores (two processes on this 2-core machine, BERT-base: 10.7-13.1 s with one thread
    each against 12.5-15.3 s with the default). A model shared by all processes (GPU jobs) is alone in its
    process and keeps the default, as does a local run in one process.
    """
    if params.share_model_across_processes:
        return 0
    if "Dataflow" in (options.view_as(StandardOptions).runner or ""):
        return 1
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode != "multi_processing":
        return 0
    processes = direct.direct_num_workers or os.cpu_count() or 1  # 0: one per core, as Beam counts
    return max(1, (os.cpu_count() or 1) // processes) if processes > 1 else 0


def accuracy_gate(params: TemplateParams):
    """The accuracy gate of the job's reduced-precision models: its sample cut with the job's tokenizer and
    windows."""
    from bertqa.backends.accuracy import AccuracyGate
    from bertqa.windows import WindowSettings

    return AccuracyGate(params.tokenizer, WindowSettings(params.max_seq_length, params.doc_stride,
                                                         params.max_query_length),
                        params.max_batch_size, params.max_answer_length, params.max_changed_spans)


def model_spec(params: TemplateParams, threads: int = 0) -> ModelSpec:
    """The backend's description of the model named by the parameters; `threads` as threads_per_process
    gives (only ONNX Runtime and PyTorch on the CPU take it: TensorFlow fixes its threads at start-up, and
    TensorRT's work is on the GPU)."""
    input_names = tuple(params.input_name_map.items())
    if params.backend == Backend.tensorflow.value:
        from bertqa.backends.tensorflow import TensorFlowModelSpec

        return TensorFlowModelSpec(params.model_path, params.signature_name, input_names)
    if params.backend == Backend.onnxruntime.value:
        from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec

        return OnnxRuntimeModelSpec(params.model_path, input_names, threads)
    if params.backend == Backend.tensorrt.value:
        from bertqa.backends.tensorrt import EngineSettings, TensorRTModelSpec

        precision = Precision(params.precision).value  # a default stays an enum member
        precision = "fp16" if precision == Precision.auto.value else precision  # on a GPU, always
        settings = EngineSettings(params.max_batch_size, params.max_seq_length, precision, params.workspace_mib)
        return TensorRTModelSpec(params.model_path, settings, accuracy_gate(params), params.engine_cache,
                                 params.build_engines, input_names, params.tensorrt_contexts)
    if params.backend == Backend.pytorch.value:
        from bertqa.backends.pytorch import PyTorchModelSpec

        return PyTorchModelSpec(params.model_path, Precision(params.precision).value, threads, accuracy_gate(params))
    raise ValueError(f"unknown backend {params.backend}")
