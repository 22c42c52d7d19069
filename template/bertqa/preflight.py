"""Checks that run before any job starts, each naming the parameter it is about.

Local paths are checked fully: the input matches files, the vocab is a WordPiece vocab, the model is of
the kind the backend loads and runs windows and batches of the requested size (it is loaded and probed),
the output directories can be written. For gs:// paths the launcher checks what it can without
downloading a model: the input matches, the model and vocab exist, the output bucket exists.
"""

from __future__ import annotations

import os
from typing import Callable

from apache_beam.io.filesystems import FileSystems

from bertqa import files
from bertqa.params import Backend, ParameterError, TemplateParams

LARGEST_VOCAB_BYTES = 64 << 20  # real WordPiece vocabs are well under 1 MB


def _input_problem(pattern: str) -> str | None:
    matched = FileSystems.match([pattern])[0].metadata_list
    if not matched:
        return "no file matches"
    if files.is_local(pattern):
        directories = [m.path for m in matched if os.path.isdir(m.path)]
        if directories:
            return f"{directories[0]} is a directory; name the files, e.g. {directories[0].rstrip('/')}/*.jsonl"
    return None


def _vocab_problem(path: str) -> str | None:
    from bertqa.windows import parse_vocab

    if files.is_local(path) and not os.path.isfile(path):
        return "not a file"
    if not FileSystems.exists(path):
        return "not found"
    data = files.read_bytes(path)
    if len(data) > LARGEST_VOCAB_BYTES:
        return f"{len(data)} bytes: far too large for a WordPiece vocab.txt"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not UTF-8 text (byte {error.start}): not a WordPiece vocab.txt"
    try:
        parse_vocab(text)
    except ValueError as error:
        return str(error)
    return None


def _model_problem(path: str, backend: str) -> str | None:
    """Whether the path is of the kind the backend loads (a SavedModel directory or a file)."""
    local = files.is_local(path)
    if local and not os.path.exists(path):
        return "not found"
    saved_model = any(FileSystems.exists(f"{path.rstrip('/')}/{name}") for name in ("saved_model.pb",
                                                                                 "saved_model.pbtxt"))
    if backend == Backend.tensorflow.value:
        if saved_model:
            return None
        if (local and os.path.isfile(path)) or (not local and FileSystems.exists(path)):
            return ("is a file; --backend=tensorflow loads a SavedModel directory (for an .onnx file use "
                    "--backend=onnxruntime or tensorrt)")
        return "no SavedModel there (no saved_model.pb)"
    if saved_model:
        return (f"is a SavedModel directory; --backend={backend} loads an .onnx file "
                "(convert it with `bertqa export-onnx`)")
    if local and os.path.isdir(path):
        return f"is a directory; --backend={backend} loads an .onnx file"
    if not FileSystems.exists(path):
        return "not found"
    return None


def _output_problem(directory: str) -> str | None:
    if not files.is_local(directory):
        from apache_beam.io.gcp.gcsio import GcsIO, parse_gcs_path

        bucket, _ = parse_gcs_path(directory.rstrip("/") + "/", object_optional=True)
        return None if GcsIO().get_bucket(bucket) else f"bucket gs://{bucket} does not exist"
    # Nothing is created here: a run stopped by a bad parameter leaves nothing behind.
    existing = os.path.abspath(directory)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return "is a file, not a directory" if existing == os.path.abspath(directory) else f"{existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot be written ({existing} is not writable)"
    return None


def _check(problems: list[str], name: str, value: str, check: Callable[[], str | None]) -> None:
    """Runs one check; its problem, or any error it raises (such as a storage error), names the parameter."""
    try:
        problem = check()
    except Exception as error:  # e.g. no permission on a bucket: still a message about this parameter
        problem = f"cannot be checked: {type(error).__name__}: {error}"
    if problem:
        problems.append(f"--{name}={value}: {problem}")


def check_parameters(params: TemplateParams) -> None:
    """Raises ParameterError listing every problem found in the paths and the model."""
    problems: list[str] = []
    _check(problems, "input", params.input, lambda: _input_problem(params.input))
    _check(problems, "vocab_path", params.vocab_path, lambda: _vocab_problem(params.vocab_path))
    _check(problems, "model_path", params.model_path, lambda: _model_problem(params.model_path, params.backend))
    _check(problems, "output", params.output, lambda: _output_problem(params.output))
    if params.dead_letter_output:
        _check(problems, "dead_letter_output", params.dead_letter_output,
               lambda: _output_problem(params.dead_letter_output))
    if not problems and files.is_local(params.model_path):
        problems += _model_load_problems(params)
    if problems:
        raise ParameterError("bad template parameter(s):\n  " + "\n  ".join(problems))


def _model_load_problems(params: TemplateParams) -> list[str]:
    """Loads the model as a worker would and probes it at the job's largest window and batch."""
    from bertqa.backends import model_spec
    from bertqa.backends.base import ModelLimitError, load_checked, short_error

    try:
        load_checked(model_spec(params), params.max_batch_size, params.max_seq_length)
    except ModelLimitError as error:  # names --max_seq_length or --max_batch_size itself
        return [str(error)]
    except Exception as error:
        return [f"--model_path={params.model_path}: cannot be loaded with --backend={params.backend}: "
                f"{short_error(error, 600)}"]
    return []


def earlier_outputs(params: TemplateParams) -> list[str]:
    """This template's files from an earlier run in the output directories."""
    from bertqa.outputs import existing_outputs

    return existing_outputs(params.output, params.dead_letter_dir)


def refuse_earlier_outputs(params: TemplateParams, found: list[str]) -> None:
    if found and not params.overwrite:
        shown = ", ".join(os.path.basename(path) for path in found[:3]) + (", ..." if len(found) > 3 else "")
        raise ParameterError(
            f"bad template parameter(s):\n  --output={params.output}: holds {len(found)} output file(s) of an "
            f"earlier run ({shown}); choose another --output, or pass --overwrite=true to delete them first")
