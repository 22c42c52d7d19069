"""TensorRT backend through Polygraphy: engines built on the worker for its GPU, checked, cached, pooled.

- `--model_path` is a serialized engine or an ONNX model; an ONNX model is built into an engine for the
  GPU the worker has, with one optimization profile covering batch 1..max_batch_size and every padded
  sequence length up to max_seq_length, fp16 by default, within
  a workspace limit. A built engine must pass the accuracy gate (`accuracy.py`) against the ONNX model
  in fp32 before it is used or cached.
- Built engines are cached (`engine_cache.py`: the machine's temporary directory, optionally a shared
  gs:// or local one) under a key of GPU name, compute capability, TensorRT version, ONNX file hash,
  settings, profile shapes, builder flags and cache format; one build per machine at a time.
- Every engine is checked at load from the engine itself: its profile must take the job's batches and
  windows. A prebuilt engine's sidecar JSON must also name this GPU, TensorRT version and precision.
- Each worker process holds one engine and a bounded pool of execution contexts (`--tensorrt_contexts`,
  each a Polygraphy TrtRunner with its CUDA stream); a call takes one context for its duration, since
  contexts are not thread-safe. GPU memory per worker process: one copy of the engine's weights, plus
  per context the activation memory of max_batch_size x max_seq_length, whatever the number of threads.
The runner-level code (`PolygraphyQAModel`) is the same for Polygraphy's ONNX-Runtime runner, which is
how it is tested on machines without TensorRT.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import threading
from typing import Callable, Mapping, Sequence

import numpy as np

from bertqa.backends import nvml
from bertqa.backends.accuracy import AccuracyGate, AccuracyReport
from bertqa.backends.base import ModelSpec, QAModel
from bertqa.backends.engine_cache import EngineCache, EngineMismatch, check_identity
from bertqa.backends.named_io import NamedIOModel
from bertqa.io.files import localize_file, read_bytes
from bertqa.qa.windows import PAD_MULTIPLE, padded_length


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """What an engine is built for (TemplateParams.engine_settings builds it)."""

    max_batch_size: int
    max_seq_length: int
    precision: str
    workspace_mib: int


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


FORMAT_VERSION = 2  # of cached engines: raise it whenever what is stored, or how engines are built, changes


def builder_flags(settings: EngineSettings) -> dict:
    """How `build_engine` configures the builder, as part of an engine's identity."""
    return {"fp16": settings.precision == "fp16", "normalization_compute": "fp32"}


def engine_identity(gpu_name: str, compute_capability: str, tensorrt_version: str, onnx_sha256: str,
                    settings: EngineSettings, profiles: Mapping[str, tuple]) -> dict:
    """What an engine is only valid for; stored beside it and hashed into its cache key."""
    return {"format": FORMAT_VERSION, "gpu_name": gpu_name, "compute_capability": compute_capability,
            "tensorrt_version": tensorrt_version, "onnx_sha256": onnx_sha256, **dataclasses.asdict(settings),
            "profiles": {name: [list(shape) for shape in shapes] for name, shapes in sorted(profiles.items())},
            "builder": builder_flags(settings)}


def cache_key(identity: Mapping) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def check_profiles_cover(profiles: Mapping[str, Sequence[Sequence[int]]], settings: EngineSettings) -> None:
    """Raises EngineMismatch unless each input's (min, opt, max) shapes take every batch the job sends: 1 to
    max_batch_size windows, padded to a multiple of PAD_MULTIPLE up to max_seq_length (or to the engine's
    fixed length), naming the parameter and the engine's limits."""
    longest = padded_length(settings.max_seq_length)
    problems = []
    for name, (low, _, high) in sorted(profiles.items()):
        if low[0] > 1 or high[0] < settings.max_batch_size:
            problems.append(f"--max_batch_size={settings.max_batch_size}: input {name} takes batches of {low[0]} "
                            f"to {high[0]} windows")
        if len(low) < 2:
            continue
        if low[1] == high[1]:
            fits = high[1] >= settings.max_seq_length  # a fixed length: every window is padded to it
        else:
            fits = low[1] <= min(PAD_MULTIPLE, longest) and high[1] >= longest
        if not fits:
            problems.append(f"--max_seq_length={settings.max_seq_length}: input {name} takes {low[1]} to "
                            f"{high[1]} tokens, the job sends windows padded to multiples of {PAD_MULTIPLE} up "
                            f"to {longest}")
    if problems:
        raise EngineMismatch("the TensorRT engine's optimization profile does not cover this job: "
                             + "; ".join(problems) + ". Rebuild it for these settings (bertqa build-engine, or "
                             "pass the ONNX model) or change the parameters to fit it")


def _numpy_dtype(dtype) -> np.dtype:
    if isinstance(dtype, np.dtype) or isinstance(dtype, type):
        return np.dtype(dtype)
    from polygraphy.datatype import DataType

    return np.dtype(DataType.to_dtype(dtype, "numpy"))


class RunnerPool:
    """At most `size` activated runners (each a TensorRT execution context and CUDA stream), shared by
    every thread of the process: a call takes an idle one for its duration, or waits for one.

    A context holds the activation memory of the engine's largest profile shape for its whole life, so
    GPU memory must be bounded by the pool, not by the number of harness threads (Beam adds threads as
    it needs them); one or two batches in flight keep a GPU busy.
    """

    def __init__(self, make_runner: Callable[[], object], size: int):
        if size < 1:
            raise ValueError("a runner pool needs at least one runner")
        self._make_runner = make_runner
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list = []
        self.runners: list = []  # every runner made, to release them together

    @contextlib.contextmanager
    def runner(self):
        with self._slots:
            with self._lock:
                runner = self._idle.pop() if self._idle else None
            if runner is None:
                runner = self._make_runner()
                runner.activate()
                with self._lock:
                    self.runners.append(runner)
            try:
                yield runner
            finally:
                with self._lock:
                    self._idle.append(runner)

    def close(self) -> None:
        with self._lock:
            for runner in self.runners:
                runner.deactivate()
            self.runners.clear()
            self._idle.clear()


class PolygraphyQAModel(NamedIOModel):
    """A QAModel over a pool of Polygraphy runners (see RunnerPool)."""

    def __init__(self, make_runner: Callable[[], object], output_shapes: Mapping[str, list | None],
                 input_names: Mapping[str, str], contexts: int = 2):
        self.pool = RunnerPool(make_runner, contexts)
        with self.pool.runner() as runner:
            metadata = runner.get_input_metadata()
        inputs = {name: (_numpy_dtype(meta.dtype), [d if isinstance(d, int) and d >= 0 else None for d in meta.shape])
                  for name, meta in metadata.items()}
        super().__init__(inputs, output_shapes, input_names)

    def gpu_unavailable(self) -> str | None:
        # A TensorRT engine runs on a GPU or not at all: without a device, loading it has failed already.
        return None

    def call(self, feeds):
        with self.pool.runner() as runner:
            outputs = runner.infer(feeds)
            # TrtRunner returns views of host buffers that its next call overwrites: copy while it is ours.
            return {name: np.array(value, copy=True) for name, value in outputs.items()}

    def close(self) -> None:
        self.pool.close()


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
    """(name, compute capability) of the first GPU, from NVML."""
    gpu = nvml.first_gpu()
    return gpu.name, gpu.compute_capability


def engine_profiles(engine) -> dict[str, tuple]:
    """(min, opt, max) shape of each input in the engine's first optimization profile, the one TrtRunner uses."""
    import tensorrt

    names = [engine.get_tensor_name(index) for index in range(engine.num_io_tensors)]
    return {name: tuple(tuple(int(d) for d in shape) for shape in engine.get_tensor_profile_shape(name, 0))
            for name in names if engine.get_tensor_mode(name) == tensorrt.TensorIOMode.INPUT}


def engine_model(engine, input_names: Mapping[str, str], contexts: int) -> PolygraphyQAModel:
    """A deserialized engine as a QAModel with a pool of `contexts` runners."""
    import tensorrt
    from polygraphy.backend.trt import TrtRunner

    outputs = {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        if engine.get_tensor_mode(name) == tensorrt.TensorIOMode.OUTPUT:
            outputs[name] = [d if d >= 0 else None for d in engine.get_tensor_shape(name)]
    # One engine per process; TrtRunner(engine) makes its own context and stream on activation.
    return PolygraphyQAModel(lambda: TrtRunner(engine), outputs, input_names, contexts)


def fp32_reference(onnx_path: str, input_names: Mapping[str, str]) -> PolygraphyQAModel:
    """The ONNX model in fp32 on the CPU (no TF32 or other reduced-precision GPU math): the gate's reference."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    return PolygraphyQAModel(lambda: OnnxrtRunner(SessionFromOnnx(onnx_path, providers=["cpu"])),
                             onnx_io(onnx_path)[1], input_names, contexts=1)


def gated_engine(onnx_path: str, settings: EngineSettings, gate: AccuracyGate,
                 input_names: Mapping[str, str]) -> tuple[bytes, AccuracyReport]:
    """An engine built for this GPU that the accuracy gate accepts (AccuracyGateError otherwise)."""
    engine = build_engine(onnx_path, settings)
    return engine, gate_engine(engine, onnx_path, gate, input_names, f"the TensorRT {settings.precision} engine")


def gate_engine(engine: bytes, onnx_path: str, gate: AccuracyGate, input_names: Mapping[str, str],
                what: str) -> AccuracyReport:
    """The accuracy gate's report on `engine` against the ONNX model in fp32 (AccuracyGateError where it refuses)."""
    from polygraphy.backend.trt import engine_from_bytes

    candidate = engine_model(engine_from_bytes(engine), input_names, contexts=1)
    reference = fp32_reference(onnx_path, input_names)
    try:
        report = gate.check(reference, candidate, what)
    finally:
        candidate.close()
        reference.close()
    logging.info("%s accepted against ONNX Runtime fp32: %s", what, report.describe())
    return report


class GpuMemoryError(RuntimeError):
    """Not even one execution context fits in the GPU's free memory."""


def contexts_that_fit(wanted: int, per_context: int, free: int) -> int:
    """How many of `wanted` contexts fit in `free` bytes of GPU memory, a tenth of it left for CUDA's own
    workspaces; fewer than wanted with a warning, none with GpuMemoryError naming the parameters."""
    usable = free * 9 // 10
    fitting = min(wanted, usable // per_context) if per_context else wanted
    if fitting < 1:
        raise GpuMemoryError(
            f"one TensorRT execution context needs {per_context / 2**20:.0f} MiB of GPU memory for batches of "
            f"--max_batch_size windows of --max_seq_length tokens, and the GPU has {free / 2**20:.0f} MiB free "
            "with the engine loaded: lower either parameter, or use a GPU with more memory")
    if fitting < wanted:
        logging.warning("--tensorrt_contexts=%d: %d fit in the GPU's %.0f MiB free (%.0f MiB each); using %d",
                        wanted, fitting, free / 2**20, per_context / 2**20, fitting)
    return fitting


def local_gpu_free_bytes() -> int:
    """Free memory of the first GPU, from NVML."""
    return nvml.first_gpu().free_bytes


@dataclasses.dataclass(frozen=True)
class TensorRTModelSpec(ModelSpec):
    path: str  # .onnx, or a serialized engine
    settings: EngineSettings
    gate: AccuracyGate
    cache_dir: str = ""  # shared cache (gs:// or a directory) besides the machine's
    build_engines: bool = True
    input_names: tuple[tuple[str, str], ...] = ()
    contexts: int = 2

    def load(self) -> QAModel:
        try:
            import tensorrt
        except ImportError as error:
            raise RuntimeError("--backend=tensorrt needs the tensorrt module (it is in the GPU image); "
                               "use --backend=onnxruntime or tensorflow elsewhere") from error
        from polygraphy.backend.trt import engine_from_bytes

        engine = engine_from_bytes(self._engine_bytes(tensorrt.__version__))
        check_profiles_cover(engine_profiles(engine), self.settings)
        per_context = getattr(engine, "device_memory_size_v2", None) or engine.device_memory_size
        contexts = contexts_that_fit(self.contexts, per_context, local_gpu_free_bytes())
        logging.info("TensorRT engine: %.0f MiB of activation memory per context, %d contexts",
                     per_context / 2**20, contexts)
        return engine_model(engine, dict(self.input_names), contexts)

    def _engine_bytes(self, tensorrt_version: str) -> bytes:
        gpu_name, capability = local_gpu()
        if not self.path.endswith(".onnx"):
            return self._prebuilt_engine(gpu_name, capability, tensorrt_version)
        onnx_path = localize_file(self.path)
        with open(onnx_path, "rb") as handle:
            onnx_sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        identity = engine_identity(gpu_name, capability, tensorrt_version, onnx_sha256, self.settings,
                                   profile_shapes(onnx_io(onnx_path)[0], self.settings))
        key = cache_key(identity)
        cache = EngineCache(self.cache_dir)

        def build() -> bytes:
            if not self.build_engines:
                raise EngineMismatch(f"no cached engine for this GPU ({gpu_name}, sm {capability}), TensorRT "
                                     f"{tensorrt_version} and these settings (key {key}) in {cache.local}"
                                     f"{' or ' + cache.shared if cache.shared else ''}, and --build_engines=false")
            engine, report = gated_engine(onnx_path, self.settings, self.gate, dict(self.input_names))
            return engine, {"gate": self.gate.record(report)}

        def accept(engine: bytes, stored: dict) -> None:
            # Built for this GPU and settings, but maybe gated under a looser --max_changed_spans or on another
            # sample (vocab, windows, decoding): this job's gate holds.
            what = f"the cached TensorRT {self.settings.precision} engine ({key})"
            if self.gate.check_record(stored.get("gate"), what) is None:
                gate_engine(engine, onnx_path, self.gate, dict(self.input_names), what)

        return cache.get_or_build(key, identity, build, accept)

    def _prebuilt_engine(self, gpu_name: str, capability: str, tensorrt_version: str) -> bytes:
        from apache_beam.io.filesystems import FileSystems

        sidecar = self.path + ".json"
        if FileSystems.exists(sidecar):
            check_identity(json.loads(read_bytes(sidecar)),
                           {"gpu_name": gpu_name, "compute_capability": capability,
                            "tensorrt_version": tensorrt_version, "precision": self.settings.precision})
        else:
            logging.warning("%s has no %s (written by bertqa build-engine): its GPU, TensorRT version and precision "
                            "cannot be checked, only its input shapes", self.path, sidecar)
        return read_bytes(self.path)


def build_engine(onnx_path: str, settings: EngineSettings) -> bytes:
    """Serialized TensorRT engine for this GPU, with the profile from `profile_shapes`."""
    import tensorrt
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile

    profile = Profile()
    for name, (low, opt, high) in profile_shapes(onnx_io(onnx_path)[0], settings).items():
        profile.add(name, min=low, opt=opt, max=high)
    # TensorRT computes normalization layers in fp32 even in fp16 builds by default (INormalizationLayer), so no
    # per-layer setting is made; what fp16 changes elsewhere the accuracy gate measures.
    builder, network, parser = NetworkFromOnnxPath(onnx_path)()
    config = CreateConfig(fp16=builder_flags(settings)["fp16"], profiles=[profile],
                          memory_pool_limits={tensorrt.MemoryPoolType.WORKSPACE: settings.workspace_mib << 20})
    return bytes(EngineBytesFromNetwork((builder, network, parser), config=config)())
