"""The `bertqa` command. `run` starts the QA job (the same as `python template/main.py`); `metadata`
prints metadata.json; `launch` prints how to launch the Flex Template; `export-onnx` and
`build-engine` prepare models for the ONNX Runtime and TensorRT backends."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from bertqa.gpu import gpu_pipeline_args
from bertqa.params import ParameterError, argument_parser, split_args

LOCAL_RUNNER = "FnApiRunner"  # in-process; a bare DirectRunner first tries to download Prism


def preflight(params) -> None:
    """Checks that need no job: local paths that must exist. Remote ones are checked by the job."""
    from bertqa import files
    from apache_beam.io.filesystems import FileSystems

    problems = []
    if files.is_local(params.input) and not FileSystems.match([params.input])[0].metadata_list:
        problems.append(f"--input={params.input}: no file matches")
    if files.is_local(params.model_path) and not os.path.exists(params.model_path):
        problems.append(f"--model_path={params.model_path}: not found")
    if files.is_local(params.vocab_path) and not os.path.isfile(params.vocab_path):
        problems.append(f"--vocab_path={params.vocab_path}: not a file")
    if problems:
        raise ParameterError("bad template parameter(s):\n  " + "\n  ".join(problems))


def run_command(argv: Sequence[str]) -> int:
    """Validates every parameter, then builds and starts the job; local runs are waited for."""
    try:
        params, beam_args = split_args(argv)
        preflight(params)
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    beam_args = [*beam_args, *gpu_pipeline_args(params)]
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner
    worker_image = os.environ.get("BERTQA_WORKER_IMAGE")
    if worker_image and not any(arg.startswith("--sdk_container_image") for arg in beam_args):
        # Inside the template image: workers run the same image as the launcher.
        beam_args.append(f"--sdk_container_image={worker_image}")
    if runner is None:
        beam_args = [f"--runner={LOCAL_RUNNER}", *beam_args]
        runner = LOCAL_RUNNER
    local = runner in StandardOptions.LOCAL_RUNNERS or runner.endswith("DirectRunner")
    from bertqa.pipeline import run

    run(params, beam_args, wait=local)
    if local:
        output = params.output.rstrip("/")
        from bertqa.files import read_text

        print(json.dumps(json.loads(read_text(output + "/summary.json")), indent=1))
        print(f"answers: {output}/predictions.json, dead letters: {params.dead_letter_dir}/")
    return 0


def metadata_command(argv: Sequence[str]) -> int:
    from bertqa.metadata import metadata_json, parameter_reference

    sys.stdout.write(parameter_reference() if "--markdown" in argv else metadata_json())
    return 0


def launch_command(argv: Sequence[str]) -> int:
    from bertqa.launch import main as launch_main

    return launch_main(argv)


def export_onnx_command(argv: Sequence[str]) -> int:
    from bertqa.export_onnx import main as export_main

    return export_main(argv)


def build_engine_command(argv: Sequence[str]) -> int:
    from bertqa.backends.tensorrt import build_engine_main

    return build_engine_main(argv)


COMMANDS = {
    "run": (run_command, "answer the questions in --input with a BERT SQuAD v2 model"),
    "metadata": (metadata_command, "print the Flex Template's metadata.json (--markdown: the README's parameter table)"),
    "launch": (launch_command, "print the gcloud command or REST body that launches the template"),
    "export-onnx": (export_onnx_command, "convert a SavedModel to ONNX (dynamic axes), checked against TensorFlow"),
    "build-engine": (build_engine_command, "prebuild a TensorRT engine from ONNX on a GPU machine"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: bertqa {{{','.join(COMMANDS)}}} [--help] [--name=value ...]\n")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:9s} {text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "run" and ("-h" in argv[1:] or "--help" in argv[1:]):
        argument_parser().print_help()
        return 0
    logging.basicConfig(level=logging.WARNING)
    return COMMANDS[argv[0]][0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
