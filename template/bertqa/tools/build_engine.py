"""`bertqa build-engine`: a TensorRT engine for this GPU, built and gated as a job's worker would, written with
the sidecar JSON that says what it was built for (a developer command, run on the GPU image)."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Sequence

from bertqa.backends.tensorrt import engine_identity, gated_engine, local_gpu, onnx_io, profile_shapes
from bertqa.io.files import read_bytes
from bertqa.params import ParameterError, TemplateParams
from bertqa.tools.job_arguments import GATE_PARAMETERS, TOKENIZER_PARAMETERS, add_job_arguments, job_params

# The job parameters an engine is built and gated for.
ENGINE_PARAMETERS = (*TOKENIZER_PARAMETERS, "input_names", *GATE_PARAMETERS, "precision", "workspace_mib")


def engine_params(argv: Sequence[str]) -> tuple[argparse.Namespace, TemplateParams]:
    """(--onnx and --output, the job parameters) of a build-engine command line; exits naming what is wrong."""
    parser = argparse.ArgumentParser(prog="bertqa build-engine", description=build_engine_main.__doc__,
                                     allow_abbrev=False)
    parser.add_argument("--onnx", required=True, help="the ONNX model the jobs' --model_path would name")
    parser.add_argument("--output", required=True, help="the engine file (its sidecar: OUTPUT.json)")
    add_job_arguments(parser, ENGINE_PARAMETERS)
    args = parser.parse_args(list(argv))
    try:
        params = job_params(args, ENGINE_PARAMETERS, backend="tensorrt", model_path=args.onnx, output=args.output)
    except ParameterError as error:
        parser.error(str(error))
    return args, params


def build_engine_main(argv) -> int:
    """`bertqa build-engine --onnx=FILE --output=ENGINE --vocab_path=FILE|--tokenizer_path=FILE [job parameters]`:
    an engine for this GPU that passed the accuracy gate, with `ENGINE.json` (what it was built for) beside it."""
    args, params = engine_params(argv)
    try:
        import tensorrt
    except ImportError:
        print("bertqa build-engine needs TensorRT (the tensorrt module), which only the GPU image has: run it "
              "there, on a machine with the GPU the jobs will use (engines are built for one GPU model)",
              file=sys.stderr)
        return 2

    settings = params.engine_settings
    engine, report = gated_engine(args.onnx, settings, params.accuracy_gate, params.input_name_map)
    gpu_name, capability = local_gpu()
    identity = engine_identity(gpu_name, capability, tensorrt.__version__,
                               hashlib.sha256(read_bytes(args.onnx)).hexdigest(), settings,
                               profile_shapes(onnx_io(args.onnx)[0], settings))
    with open(args.output, "wb") as handle:
        handle.write(engine)
    with open(args.output + ".json", "w") as handle:
        json.dump(identity, handle)
    print(f"wrote {args.output} for {gpu_name} (sm {capability}), TensorRT {tensorrt.__version__}; against ONNX "
          f"Runtime fp32: {report.describe()}")
    return 0
