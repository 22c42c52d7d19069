"""The `bertqa` command. `run` starts the QA job (the same as `python template/main.py`); `metadata`
prints metadata.json; `launch` prints how to launch the Flex Template; `export-onnx` and
`build-engine` prepare models for the ONNX Runtime and TensorRT backends; `benchmark` measures them."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from bertqa.local import progress
from bertqa.dataflow.arguments import argument_parser, split_args
from bertqa.local.failures import (INTERRUPTED, end_job_when_a_local_worker_dies, exit_interrupted, interrupted,
                             job_failure)
from bertqa.dataflow.resources import dataflow_problems, gpu_pipeline_args
from bertqa.io.outputs import remove_outputs, remove_temporary_outputs
from bertqa.params import GpuType, ParameterError
from bertqa.dataflow.preflight import (check_bigquery_staging, check_parameters, check_worker_image, earlier_outputs,
                              refuse_earlier_outputs)

LOCAL_RUNNER = "FnApiRunner"  # in-process; a bare DirectRunner first tries to download Prism


def run_command(argv: Sequence[str]) -> int:
    """Validates every parameter and path, then builds and starts the job; local runs are waited for.

    Exit codes: 0 done, 2 a bad parameter (nothing started, nothing written), 1 the job failed, 3 the job
    wrote every output but more records than --max_dead_letter_fraction allows went to the dead letters, 130 a
    local job stopped by Ctrl-C.
    """
    try:
        params, beam_args = split_args(argv)
        runner = PipelineOptions(beam_args).view_as(StandardOptions).runner or LOCAL_RUNNER
        local = runner in StandardOptions.LOCAL_RUNNERS or runner.endswith("DirectRunner") or runner == LOCAL_RUNNER
        check_worker_image(params, beam_args, local)
        check_bigquery_staging(params, beam_args, local)
        if not local and (problems := dataflow_problems(params, beam_args)):
            raise ParameterError("bad template parameter(s) for Dataflow:\n  " + "\n  ".join(problems))
        questions = check_parameters(params)  # documents mode's, read once
        beam_args = [*beam_args, *gpu_pipeline_args(params, beam_args)]
        earlier = earlier_outputs(params)
        refuse_earlier_outputs(params, earlier)
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # during the checks (a model's probe, say): nothing was written yet
        print("error: interrupted (SIGINT, Ctrl-C) before the job started: nothing was written", file=sys.stderr)
        return INTERRUPTED
    notes = params.ignored_settings()
    if local and params.gpu_type is not GpuType.none:
        shared = " (the worker processes still share one model copy, as a GPU worker's do)" if (
            params.share_model_across_processes) else ""
        notes.append(f"--gpu_type={params.gpu_type} attaches no GPU on a local runner ({runner}){shared}")
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if earlier:
        remove_outputs(earlier)
        print(f"--overwrite=true: deleted {len(earlier)} output file(s) of an earlier run", file=sys.stderr)
    if not any(arg.startswith("--runner") for arg in beam_args):
        beam_args = [f"--runner={LOCAL_RUNNER}", *beam_args]
    from bertqa.job.pipeline import run
    from bertqa.job.summary import DeadLetterBudgetExceeded

    def clean_up():  # a local run that stops early leaves none of its partial shards (a full disk stays full)
        remove_temporary_outputs(params.output, params.dead_letter_dirs)

    try:
        watching = contextlib.nullcontext()
        if local and params.input:  # documents mode counts pairs: each document is asked every question
            asked = len(questions.questions) if questions is not None else None
            watching = progress.watch(params.input, input_format=params.input_format, asked=asked)
        with end_job_when_a_local_worker_dies(clean_up) if local else contextlib.nullcontext(), watching:
            run(params, beam_args, wait=local, require_gpu=not local and params.gpu_type is not GpuType.none,
                questions=questions)
    except KeyboardInterrupt:
        exit_interrupted(clean_up if local else lambda: None)
    except Exception as error:  # the whole story goes to the log; the user gets the cause in one line
        if local and interrupted(error):  # the in-process runner re-raises Ctrl-C as a step's RuntimeError
            exit_interrupted(clean_up)
        # Every output is written, but too many records failed (the local runner re-raises the error itself).
        if isinstance(error, DeadLetterBudgetExceeded) or DeadLetterBudgetExceeded.__name__ in str(error):
            print(f"error: the job failed: {job_failure(error, limit=1000)}", file=sys.stderr)
            return 3
        if local:
            with contextlib.suppress(Exception):
                clean_up()
        logging.error("the job failed", exc_info=True)
        print(f"error: the job failed: {job_failure(error)}", file=sys.stderr)
        return 1
    if local:
        output = params.output.rstrip("/")
        from bertqa.io.files import read_text

        summary = json.loads(read_text(output + "/summary.json"))
        print(json.dumps(summary, indent=1))
        for warning in summary.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
        print(f"answers: {output}/predictions.json, dead letters: {params.dead_letter_dir}/")
    return 0


def metadata_command(argv: Sequence[str]) -> int:
    import argparse
    import json

    from bertqa.images import IMAGES
    from bertqa.dataflow.metadata import metadata_json, parameter_reference, template_spec

    parser = argparse.ArgumentParser(prog="bertqa metadata")
    parser.add_argument("--markdown", action="store_true", help="the README's parameter table")
    parser.add_argument("--spec_image", help="print the template spec file of this image URI instead")
    parser.add_argument("--image_kind", choices=list(IMAGES), help="which of the images --spec_image is")
    args = parser.parse_args(list(argv))
    if args.spec_image:
        if not args.image_kind:
            parser.error("--spec_image needs --image_kind")
        sys.stdout.write(json.dumps(template_spec(args.spec_image, args.image_kind), indent=2) + "\n")
    else:
        sys.stdout.write(parameter_reference() if args.markdown else metadata_json())
    return 0


def launch_command(argv: Sequence[str]) -> int:
    from bertqa.dataflow.launch import main as launch_main

    return launch_main(argv)


def export_onnx_command(argv: Sequence[str]) -> int:
    from bertqa.tools.export_onnx import main as export_main

    return export_main(argv)


def build_engine_command(argv: Sequence[str]) -> int:
    from bertqa.tools.build_engine import build_engine_main

    return build_engine_main(argv)


def benchmark_command(argv: Sequence[str]) -> int:
    from bertqa.tools.benchmark import main as benchmark_main

    return benchmark_main(argv)


COMMANDS = {
    "run": (run_command, "answer the questions in --input with a BERT SQuAD v2 model"),
    "metadata": (metadata_command, "print the Flex Template's metadata.json (--markdown: the README's parameter table)"),
    "launch": (launch_command, "print the gcloud command or REST body that launches the template"),
    "export-onnx": (export_onnx_command, "a SavedModel or Hugging Face checkpoint to ONNX (or int8), checked"),
    "build-engine": (build_engine_command, "prebuild a TensorRT engine from ONNX on a GPU machine"),
    "benchmark": (benchmark_command, "time every backend this machine runs on your model and questions, with costs"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: bertqa {{{','.join(COMMANDS)}}} [--help] [--name=value ...]\n")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:12s} {text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "run" and ("-h" in argv[1:] or "--help" in argv[1:]):
        argument_parser().print_help()
        return 0
    logging.basicConfig(level=logging.WARNING)
    return COMMANDS[argv[0]][0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
