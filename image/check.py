"""Run in the image build, after every install (`python image/check.py IMAGE`): fails the build when the image
could not serve the jobs it is for. No GPU is needed.

Everything is imported as the workers import it, every backend the image is for included. On a GPU image ONNX
Runtime must have its CUDA provider compiled in (a CPU build would fall back to the CPU silently), TensorFlow and
torch must be CUDA builds, NVML's bindings must import; the CPU image has no CUDA libraries at all.
"""

import importlib.metadata
import importlib.util
import io
import sys

import apache_beam
import fastavro

import bertqa.job.pipeline  # noqa: F401  (the job's whole import graph)
# Imported by Beam's BigQuery connectors only once a job reads or loads a table (direct_read: the Storage API).
import google.cloud.bigquery  # noqa: F401
import google.cloud.bigquery_storage_v1  # noqa: F401
from bertqa.images import IMAGES

image = sys.argv[1]
carried = IMAGES[image]
assert importlib.metadata.version("apache-beam") == apache_beam.__version__
for backend, packages in carried.backend_packages().items():
    assert all(importlib.util.find_spec(name) for name in packages), (image, backend, packages)
if "onnxruntime" in carried.backends:
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    assert ("CUDAExecutionProvider" in providers) == carried.gpu, providers
if "tensorrt" in carried.backends:
    import tensorrt  # noqa: F401
if "pytorch" in carried.backends:
    import torch

    assert torch.version.cuda, "torch is not a CUDA build"
if carried.gpu:
    import pynvml  # noqa: F401
else:
    assert not [d.metadata["Name"] for d in importlib.metadata.distributions() if "cu12" in d.metadata["Name"]]
if "tensorflow" in carried.backends:
    import tensorflow

    assert bool(tensorflow.sysconfig.get_build_info().get("is_cuda_build")) == carried.gpu, \
        tensorflow.sysconfig.get_build_info()
# BigQuery's Avro exports may have Snappy blocks, which fastavro decompresses only where cramjam is installed.
schema, avro = {"type": "record", "name": "Row", "fields": [{"name": "id", "type": "string"}]}, io.BytesIO()
fastavro.writer(avro, schema, [{"id": "a"}], codec="snappy")
assert list(fastavro.reader(io.BytesIO(avro.getvalue()))) == [{"id": "a"}]
print(f"image {image} ok: Beam {apache_beam.__version__}, backends {', '.join(carried.backends)}")
