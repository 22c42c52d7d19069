"""The `bertqa` command: `bertqa run` starts the QA job (the same as `python template/main.py`)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from bertqa.params import ParameterError, argument_parser, split_args

LOCAL_RUNNER = "FnApiRunner"  # in-process; a bare DirectRunner first tries to download Prism


def preflight(params) -> None:
    """Checks that need no job: local paths that must exist. Remote ones are checked by the job."""
    import os

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
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"run": run_command}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: bertqa {run} [--help] [--name=value ...]\n\n"
              "  run    answer the questions in --input with a BERT SQuAD v2 model (see bertqa run --help)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if "-h" in argv[1:] or "--help" in argv[1:]:
        argument_parser().print_help()
        return 0
    logging.basicConfig(level=logging.WARNING)
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
