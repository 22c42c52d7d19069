"""The job parameters a developer command takes (build-engine, export-onnx --quantize=int8, benchmark): declared
from TemplateParams' fields and checked by TemplateParams with every rule of a job's, so that a setting `bertqa
run` refuses is refused here with the same message, and the accuracy gate is the job's (params.accuracy_gate)."""

from __future__ import annotations

from typing import Sequence

from bertqa.params import NO_INPUT, TemplateParams, build_params

# The settings the accuracy gate cuts its sample into windows with and decodes it with.
GATE_PARAMETERS = ("max_seq_length", "doc_stride", "max_query_length", "max_batch_size", "max_answer_length",
                   "n_best_size", "max_changed_spans")
TOKENIZER_PARAMETERS = ("vocab_path", "tokenizer_path", "do_lower_case")


def add_job_arguments(parser, names: Sequence[str]) -> None:
    """--NAME for each of these TemplateParams fields, as `bertqa run` takes it (unset: the job's default)."""
    for name in names:
        field = TemplateParams.model_fields[name]
        default = "" if field.is_required() or field.default is None else f" (default {field.default})"
        parser.add_argument(f"--{name}", metavar="VALUE", help=f"{field.description}{default}")


def job_params(args, names: Sequence[str], **fixed: str) -> TemplateParams:
    """The job parameters `add_job_arguments`' arguments give, with `fixed` (the tool's own: backend, model_path,
    output); raises bertqa.params.ParameterError naming what is wrong."""
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return build_params({**given, **fixed}, context={NO_INPUT: True})
