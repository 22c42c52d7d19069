"""TensorRT backend through Polygraphy: engines built on the worker for its GPU, cached, one context per thread.

- `--model_path` is a serialized engine or an ONNX model; an ONNX model is built into an engine for the
  GPU the worker has, with one optimization profile covering batch 1..max_batch_size and every padded
  sequence length up to max_seq_length, fp16 by default, within a workspace limit.
- Built engines are cached (a local directory, optionally a gs:// one) under a key of GPU name, compute
  capability, TensorRT version, ONNX file hash and build settings. An engine made for another GPU or
  TensorRT version is detected from its metadata and rebuilt, or refused when building is off.
- Each worker process holds one engine; each harness thread gets its own execution context and CUDA
  stream (a Polygraphy TrtRunner): contexts are not thread-safe, so none is shared without a lock.
  GPU memory per worker process: one copy of the engine's weights, plus per thread the activation
  memory of one context at max_batch_size x max_seq_length.
The runner-level code (`PolygraphyQAModel`) is the same for Polygraphy's ONNX-Runtime runner, which is
how it is tested on machines without TensorRT.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import subprocess
import threading
from typing import Callable, Mapping

import numpy as np

from bertqa.backends.base import ModelSpec, QAModel
from bertqa.backends.named_io import NamedIOModel
from bertqa.files import read_bytes
from bertqa.windows import PAD_MULTIPLE, padded_length


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    max_batch_size: int
    max_seq_length: int
    precision: str = "fp16"
    workspace_mib: int = 4096


class EngineMismatch(RuntimeError):
    """A serialized engine was built for another GPU or TensorRT version."""


def profile_shapes(inputs: Mapping[str, tuple[np.dtype, list]], settings: EngineSettings) -> dict[str, tuple]:
    """(min, opt, max) shape per input: batch 1..max_batch_size, sequence PAD_MULTIPLE..padded max.

    Dynamic dims only; a dim the model fixes stays fixed. The opt shape is the largest batch of
    half-length windows, the common case for SQuAD-like passages.
    """
    longest = padded_length(settings.max_seq_length)
    shortest = min(PAD_MULTIPLE, longest)
    typical = padded_length(max(shortest, longest // 2))
    shapes = {}
    for name, (_, shape) in inputs.items():
        dims = list(shape)
        low, opt, high = [], [], []
        for axis, dim in enumerate(dims):
            if isinstance(dim, int) and dim > 0:
                low.append(dim), opt.append(dim), high.append(dim)
            elif axis == 0:
                low.append(1), opt.append(settings.max_batch_size), high.append(settings.max_batch_size)
            elif axis == 1:
                low.append(shortest), opt.append(typical), high.append(longest)
            else:
                raise ValueError(f"input {name} has a dynamic dimension {axis} that is neither batch nor sequence")
        shapes[name] = (tuple(low), tuple(opt), tuple(high))
    return shapes


def engine_identity(gpu_name: str, compute_capability: str, tensorrt_version: str, onnx_sha256: str,
                    settings: EngineSettings) -> dict:
    """What an engine is only valid for; stored beside it and hashed into its cache key."""
    return {"gpu_name": gpu_name, "compute_capability": compute_capability, "tensorrt_version": tensorrt_version,
            "onnx_sha256": onnx_sha256, **dataclasses.asdict(settings)}


def cache_key(identity: Mapping) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def check_identity(stored: Mapping, current: Mapping) -> None:
    """Raises EngineMismatch naming every field that differs (GPU, TensorRT version, model, settings)."""
    differences = [f"{key}: engine {stored.get(key)!r}, here {value!r}" for key, value in current.items()
                   if stored.get(key) != value]
    if differences:
        raise EngineMismatch("the TensorRT engine was built for something else: " + "; ".join(differences))


def _numpy_dtype(dtype) -> np.dtype:
    if isinstance(dtype, np.dtype) or isinstance(dtype, type):
        return np.dtype(dtype)
    from polygraphy.datatype import DataType

    return np.dtype(DataType.to_dtype(dtype, "numpy"))


class PolygraphyQAModel(NamedIOModel):
    """A QAModel over Polygraphy runners: one activated runner (context + stream) per calling thread."""

    def __init__(self, make_runner: Callable[[], object], output_shapes: Mapping[str, list | None],
                 input_names: Mapping[str, str]):
        self._make_runner = make_runner
        self._local = threading.local()
        self._lock = threading.Lock()
        self.runners: list = []  # every thread's runner, to deactivate them together
        metadata = self._runner().get_input_metadata()
        inputs = {name: (_numpy_dtype(meta.dtype), [d if isinstance(d, int) and d >= 0 else None for d in meta.shape])
                  for name, meta in metadata.items()}
        super().__init__(inputs, output_shapes, input_names)

    def _runner(self):
        runner = getattr(self._local, "runner", None)
        if runner is None:
            runner = self._make_runner()
            runner.activate()
            self._local.runner = runner
            with self._lock:
                self.runners.append(runner)
        return runner

    def gpu_unavailable(self) -> str | None:
        # A TensorRT engine runs on a GPU or not at all: without a device, loading it has failed already.
        return None

    def call(self, feeds):
        return self._runner().infer(feeds)

    def close(self) -> None:
        with self._lock:
            for runner in self.runners:
                runner.deactivate()
            self.runners.clear()


def onnx_io(path: str) -> tuple[dict, dict]:
    """Input (dtype, shape) and output shapes of an ONNX file; dynamic dims as None."""
    import onnx
    from onnx import helper

    graph = onnx.load(path, load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def dims(value):
        return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]

    inputs = {v.name: (helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type), dims(v))
              for v in graph.input if v.name not in initializers}
    return inputs, {v.name: dims(v) for v in graph.output}


def local_gpu() -> tuple[str, str]:
    """(name, compute capability) of the first GPU, from nvidia-smi."""
    line = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                          capture_output=True, text=True, check=True).stdout.splitlines()[0]
    name, capability = (part.strip() for part in line.rsplit(",", 1))
    return name, capability


@dataclasses.dataclass(frozen=True)
class TensorRTModelSpec(ModelSpec):
    path: str  # .onnx, or a serialized engine
    settings: EngineSettings
    cache_dir: str = ""
    build_engines: bool = True
    input_names: tuple[tuple[str, str], ...] = ()

    def load(self) -> QAModel:
        try:
            import tensorrt
        except ImportError as error:
            raise RuntimeError("--backend=tensorrt needs the tensorrt module (it is in the GPU image); "
                               "use --backend=onnxruntime or tensorflow elsewhere") from error
        from polygraphy.backend.trt import TrtRunner, engine_from_bytes

        engine = engine_from_bytes(self._engine_bytes(tensorrt.__version__))
        outputs = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            if engine.get_tensor_mode(name) == tensorrt.TensorIOMode.OUTPUT:
                outputs[name] = [d if d >= 0 else None for d in engine.get_tensor_shape(name)]
        # One engine per process; TrtRunner(engine) makes its own context and stream on activation.
        return PolygraphyQAModel(lambda: TrtRunner(engine), outputs, dict(self.input_names))

    def _engine_bytes(self, tensorrt_version: str) -> bytes:
        from apache_beam.io.filesystems import FileSystems

        from bertqa.files import localize_file

        gpu_name, capability = local_gpu()
        if not self.path.endswith(".onnx"):
            sidecar = self.path + ".json"
            if FileSystems.exists(sidecar):
                stored = json.loads(read_bytes(sidecar))
                check_identity(stored, {"gpu_name": gpu_name, "compute_capability": capability,
                                        "tensorrt_version": tensorrt_version})
            return read_bytes(self.path)
        onnx_bytes = read_bytes(self.path)
        identity = engine_identity(gpu_name, capability, tensorrt_version, hashlib.sha256(onnx_bytes).hexdigest(),
                                   self.settings)
        cache = (self.cache_dir or "/tmp/bertqa-engines").rstrip("/")
        engine_path = f"{cache}/bertqa-{cache_key(identity)}.engine"
        if FileSystems.exists(engine_path) and FileSystems.exists(engine_path + ".json"):
            check_identity(json.loads(read_bytes(engine_path + ".json")), identity)
            logging.info("TensorRT engine from cache %s", engine_path)
            return read_bytes(engine_path)
        if not self.build_engines:
            raise EngineMismatch(f"no cached engine for this GPU ({gpu_name}, sm {capability}) and TensorRT "
                                 f"{tensorrt_version} at {engine_path}, and --build_engines=false")
        engine = build_engine(localize_file(self.path), self.settings)
        for path, data in ((engine_path, engine), (engine_path + ".json", json.dumps(identity).encode())):
            with FileSystems.create(path) as handle:
                handle.write(data)
        return engine


def build_engine(onnx_path: str, settings: EngineSettings) -> bytes:
    """Serialized TensorRT engine for this GPU, with the profile from `profile_shapes`."""
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile

    profile = Profile()
    for name, (low, opt, high) in profile_shapes(onnx_io(onnx_path)[0], settings).items():
        profile.add(name, min=low, opt=opt, max=high)
    import tensorrt

    config = CreateConfig(fp16=settings.precision == "fp16", profiles=[profile],
                          memory_pool_limits={tensorrt.MemoryPoolType.WORKSPACE: settings.workspace_mib << 20})
    return bytes(EngineBytesFromNetwork(NetworkFromOnnxPath(onnx_path), config=config)())


def build_engine_main(argv) -> int:
    """`bertqa build-engine --onnx=FILE --output=ENGINE [--max_batch_size --max_seq_length --precision]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="bertqa build-engine", description=build_engine.__doc__)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--max_batch_size", type=int, default=64)
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    parser.add_argument("--workspace_mib", type=int, default=4096)
    args = parser.parse_args(list(argv))
    import tensorrt

    settings = EngineSettings(args.max_batch_size, args.max_seq_length, args.precision, args.workspace_mib)
    engine = build_engine(args.onnx, settings)
    gpu_name, capability = local_gpu()
    identity = engine_identity(gpu_name, capability, tensorrt.__version__,
                               hashlib.sha256(read_bytes(args.onnx)).hexdigest(), settings)
    with open(args.output, "wb") as handle:
        handle.write(engine)
    with open(args.output + ".json", "w") as handle:
        json.dump(identity, handle)
    print(f"wrote {args.output} for {gpu_name} (sm {capability}), TensorRT {tensorrt.__version__}")
    return 0
