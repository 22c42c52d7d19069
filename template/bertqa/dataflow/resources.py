"""GPU parameters -> Dataflow settings, so that nobody types `type:...;count:...` strings by hand."""

from __future__ import annotations

import re
from typing import Sequence

from bertqa.params import (GPU_MACHINE_TYPES, Backend, GpuScope, GpuType, ParameterError,
                           TemplateParams)

MACHINE_TYPE_OPTIONS = ("--machine_type", "--worker_machine_type")


def _given_machine_type(beam_args: Sequence[str]) -> str | None:
    for arg in beam_args:
        name, _, value = arg.partition("=")
        if name in MACHINE_TYPE_OPTIONS:
            return value
    return None


def gpu_pipeline_args(params: TemplateParams, beam_args: Sequence[str] = ()) -> list[str]:
    """Pipeline options the GPU and disk parameters imply, added to the job's Beam arguments.

    Raises ParameterError when an explicit --machine_type cannot take the GPU that every worker gets.
    """
    args = [f"--disk_size_gb={params.worker_disk_size_gb}"] if params.worker_disk_size_gb else []
    hint = params.accelerator()
    if hint is None:
        return args
    if params.gpu_scope is GpuScope.all_workers:
        args.append(f"--dataflow_service_options=worker_accelerator={hint}")
        given = _given_machine_type(beam_args)
        family = GPU_MACHINE_TYPES[params.gpu_type]
        if given is None:
            args.append(f"--machine_type={params.gpu_worker_machine_type}")
        elif not re.fullmatch(family.pattern, given):
            raise ParameterError(f"--machine_type={given} cannot take one {params.gpu_type} (gpu_scope=all_workers "
                                 f"gives every worker one): use {family.accepted}, or leave it out and set "
                                 "--gpu_machine_type")
    return args


RIGHT_FITTING = "https://cloud.google.com/dataflow/docs/guides/right-fitting"


def dataflow_problems(params: TemplateParams, beam_args: Sequence[str]) -> list[str]:
    """What Dataflow would refuse or cannot honour in a Dataflow launch of these settings (one line each)."""
    problems = []
    if params.backend is Backend.tensorrt and params.gpu_type is GpuType.none:
        problems.append("--backend=tensorrt: TensorRT runs on a GPU only and Dataflow workers have none without "
                        "--gpu_type; set --gpu_type, or use --backend=onnxruntime on CPU workers")
    if params.inference_step_accelerator is None:
        return problems
    given = {arg.partition("=")[0].lstrip("-"): arg.partition("=")[2] for arg in beam_args}
    scope = "use --gpu_scope=all_workers (every worker gets the GPU)"
    if given.get("flexrs_goal", "").upper() not in ("", "FLEXRS_UNSPECIFIED"):
        problems.append(f"--flexrs_goal={given['flexrs_goal']}: Dataflow's right fitting, which gives the GPU to "
                        f"the inference step alone (gpu_scope=inference_step), does not support FlexRS "
                        f"({RIGHT_FITTING}); {scope}, or leave --flexrs_goal out")
    accelerators = [arg for arg in beam_args if arg.startswith("--dataflow_service_options=")
                    and "worker_accelerator" in arg]
    if accelerators:
        problems.append(f"{accelerators[0]}: with right fitting (gpu_scope=inference_step) Dataflow says not to use "
                        f"the worker_accelerator service option ({RIGHT_FITTING}); the GPU parameters set it "
                        f"themselves: {scope}, or leave the option out")
    return problems
