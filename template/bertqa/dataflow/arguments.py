"""Command-line arguments -> validated template parameters and Beam pipeline options.

Arguments arrive as `--name=value` strings (as the Flex Template launcher passes them). Template
parameters go to `TemplateParams`; the rest must be options some Beam `PipelineOptions` class knows.
Anything else (a typo, a stray word, a parameter given twice) stops the program, naming it, instead
of being dropped with a log line by Beam.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import enum
import functools
from typing import Any, Sequence

from bertqa.params import Group, ParameterError, TemplateParams, build_params


class _Raising:
    """An argparse parser that raises ParameterError (exit 2 with one message) instead of exiting itself."""

    def error(self, message: str):
        raise ParameterError(f"bad argument(s):\n  {message}")


class _TemplateParser(_Raising, argparse.ArgumentParser):
    pass


def argument_parser(prog: str = "bertqa run") -> argparse.ArgumentParser:
    """An argparse parser derived from TemplateParams (used for --help and for splitting argv)."""
    parser = _TemplateParser(
        prog=prog,
        allow_abbrev=False,
        description="Answer questions about passages with a BERT SQuAD v2 model on Apache Beam. "
        "Other --options are Beam pipeline options (e.g. --runner, --project, --region).",
    )
    for group in Group:
        section = parser.add_argument_group(group.value)
        for name, field in TemplateParams.model_fields.items():
            if field.json_schema_extra["group"] != group:
                continue
            default = "required" if field.is_required() else f"default: {_default_text(field.default)}"
            section.add_argument(f"--{name}", metavar="VALUE", help=f"{field.description} ({default})")
    return parser


def _default_text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if value == "" else str(value)


@functools.cache
def beam_option_parser() -> argparse.ArgumentParser:
    """Every option of every Beam PipelineOptions class, as Beam itself collects them."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    class Parser(_Raising, _BeamArgumentParser):
        pass

    parser = Parser(allow_abbrev=False)
    classes = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 (Beam's own way, see PipelineOptions.get_all_options)
    return parser


def _option_name(arg: str) -> str | None:
    return arg.split("=", 1)[0] if arg.startswith("--") else None


def unknown_arguments(beam_args: Sequence[str]) -> list[str]:
    """Messages for arguments that are neither template parameters nor Beam options."""
    _, unknown = beam_option_parser().parse_known_args(list(beam_args))
    known = [f"--{name}" for name in TemplateParams.model_fields] + [
        option for action in beam_option_parser()._actions for option in action.option_strings]
    messages = []
    for arg in unknown:
        name = _option_name(arg)
        if name is None:
            messages.append(f"{arg!r}: unexpected argument (parameters are --name=value)")
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        messages.append(f"{name}: not a template parameter or Beam pipeline option{hint}")
    return messages


def repeated_parameters(argv: Sequence[str]) -> list[str]:
    counts = collections.Counter(_option_name(arg) for arg in argv)
    return [f"{name}: given {count} times; give it once" for name, count in counts.items()
            if name and name[2:] in TemplateParams.model_fields and count > 1]


def split_args(argv: Sequence[str]) -> tuple[TemplateParams, list[str]]:
    """Template parameters validated, and the remaining arguments for Beam's PipelineOptions."""
    namespace, beam_args = argument_parser().parse_known_args(list(argv))
    problems = repeated_parameters(argv) + unknown_arguments(beam_args)
    if problems:
        raise ParameterError("bad argument(s):\n  " + "\n  ".join(problems))
    given = {name: value for name, value in vars(namespace).items() if value is not None}
    return build_params(given), beam_args
