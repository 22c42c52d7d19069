"""Run in the image build, after every install: fails the build when the image could not serve a GPU job.

Everything is imported as the workers import it; ONNX Runtime must have its CUDA provider compiled in
(a CPU build would fall back to the CPU silently); TensorFlow must be a CUDA build. No GPU is needed.
"""

import importlib.metadata

import apache_beam
import onnxruntime
import tensorflow
import tensorrt

import bertqa.pipeline  # noqa: F401  (the job's whole import graph)
# Imported by Beam's BigQuery connectors only once a job reads or loads a table (direct_read: the Storage API).
import google.cloud.bigquery  # noqa: F401
import google.cloud.bigquery_storage_v1  # noqa: F401

assert "CUDAExecutionProvider" in onnxruntime.get_available_providers(), onnxruntime.get_available_providers()
assert tensorflow.sysconfig.get_build_info().get("is_cuda_build"), tensorflow.sysconfig.get_build_info()
assert importlib.metadata.version("apache-beam") == apache_beam.__version__
print(f"image ok: Beam {apache_beam.__version__}, TensorFlow {tensorflow.__version__}, "
      f"ONNX Runtime {onnxruntime.__version__}, TensorRT {tensorrt.__version__}")
