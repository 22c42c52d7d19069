"""GPU parameters -> Dataflow settings, so that nobody types `type:...;count:...` strings by hand."""

from __future__ import annotations

from bertqa.params import GpuProcesses, GpuScope, GpuType, TemplateParams


def accelerator(params: TemplateParams) -> str | None:
    """Dataflow's accelerator string for the chosen GPU, or None for CPU only."""
    if params.gpu_type == GpuType.none.value:
        return None
    parts = [f"type:{params.gpu_type}", f"count:{params.gpu_count}", "install-nvidia-driver"]
    if params.gpu_processes == GpuProcesses.mps.value:
        parts.append("use_nvidia_mps")
    return ";".join(parts)


def inference_step_accelerator(params: TemplateParams) -> str | None:
    """The accelerator resource hint for the RunInference step (None: no hint)."""
    return accelerator(params) if params.gpu_scope == GpuScope.inference_step.value else None


def gpu_pipeline_args(params: TemplateParams) -> list[str]:
    """Pipeline options the GPU parameters imply, added to the job's Beam arguments."""
    hint = accelerator(params)
    if hint is None:
        return []
    args = []
    if params.gpu_scope == GpuScope.all_workers.value:
        args.append(f"--dataflow_service_options=worker_accelerator={hint}")
    if params.gpu_processes == GpuProcesses.one_per_worker.value:
        # One SDK process per worker VM: one model copy per GPU, shared by the process's threads.
        args.append("--experiments=no_use_multiple_sdk_containers")
    return args
