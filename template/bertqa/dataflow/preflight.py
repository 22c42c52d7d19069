"""Checks that run before any job starts, each naming the parameter it is about.

Local paths are checked fully: the input matches files, the tokenizer (a WordPiece vocab or a tokenizer.json)
loads and leaves windows room for the passage, the model is of the kind the backend loads and runs windows and
batches of the requested size (it is loaded and probed), the output directories can be written. For gs://
paths the launcher checks what it can without downloading a model: the input matches, the tokenizer loads,
the model exists, the output bucket exists.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from typing import Callable

from apache_beam.io.filesystems import FileSystems

from bertqa.io import files
from bertqa.io.documents import AskedQuestions, QuestionsFileError, load_questions
from bertqa.params import Backend, GpuType, ParameterError, TemplateParams
from bertqa.io.bigquery import BigQueryReadMethod


def _input_problem(pattern: str) -> str | None:
    if files.is_local(pattern):
        import glob

        # Beam's match leaves out a link to nothing: the questions of the file it stood for would be missing unsaid.
        broken = [path for path in sorted(glob.glob(pattern, recursive=True))
                  if os.path.islink(path) and not os.path.exists(path)]
        if broken:
            return (f"{broken[0]} is a symbolic link to nothing (its target is missing, or links loop): the "
                    "questions of the file it stood for would be left out")
    matched = FileSystems.match([pattern])[0].metadata_list
    if not matched:
        return "no file matches"
    if files.is_local(pattern):
        directories = [m.path for m in matched if os.path.isdir(m.path)]
        if directories:
            return f"{directories[0]} is a directory; name the files, e.g. {directories[0].rstrip('/')}/*.jsonl"
        # A pipe, device or socket (--input=/dev/stdin, a FIFO) is read by the job's workers, not by this command:
        # it would be read empty, or by the first reader only, or wait forever.
        special = [m.path for m in matched if not stat.S_ISREG(os.stat(m.path).st_mode)]
        if special:
            return (f"{special[0]} is not a regular file (a pipe, device or socket): the job's workers read their "
                    "input as files; write the questions to a file first")
    return None


def _input_covers_outputs(params: TemplateParams) -> str | None:
    """An input pattern that matches files this run writes would read an earlier run's outputs, or the shards an
    interrupted run left, as questions."""
    import re

    from apache_beam.io.filesystem import FileSystem

    from bertqa.io.outputs import DEAD_LETTER_ROWS, PREDICTION_ROWS, PREDICTIONS_JSON, SUMMARY

    def absolute(path: str) -> str:
        return os.path.abspath(path) if files.is_local(path) else path

    output = absolute(params.output).rstrip("/")
    written = [f"{output}/{PREDICTION_ROWS}-00000-of-00001.jsonl", f"{output}/{PREDICTIONS_JSON}", f"{output}/{SUMMARY}",
               f"{output}/beam-temp-{PREDICTION_ROWS}-0/0.{PREDICTION_ROWS}.jsonl"]
    for directory in params.dead_letter_dirs:
        directory = absolute(directory).rstrip("/")
        written += [f"{directory}/{DEAD_LETTER_ROWS}-00000-of-00001.jsonl",
                    f"{directory}/beam-temp-{DEAD_LETTER_ROWS}-0/0.{DEAD_LETTER_ROWS}.jsonl"]
    pattern = re.compile(FileSystem.translate_pattern(absolute(params.input)))
    covered = next((path for path in written if pattern.fullmatch(path)), None)
    return (f"matches files this run writes ({covered}): it would read an earlier run's outputs as questions; "
            "choose an --output that --input does not cover") if covered else None


def _read_questions(path: str) -> tuple[AskedQuestions | None, str | None]:
    """(the questions file's questions, None), or (None, what is wrong with it)."""
    if files.is_local(path) and not os.path.isfile(path):
        return None, "not a file" if os.path.exists(path) else "not found"
    try:
        return load_questions(path), None
    except QuestionsFileError as error:
        return None, str(error)


def _tokenizer_problem(params: TemplateParams) -> str | None:
    """Whether the job's tokenizer loads, and leaves its windows room for passage tokens after the question and
    its own special tokens (RoBERTa's four, BERT's three)."""
    from bertqa.params import window_room_problem
    from bertqa.qa.tokenization import TokenizerError, vocabulary_mismatch

    try:
        tokenizer = params.tokenizer.load()
    except TokenizerError as error:
        return str(error)
    if params.backend is Backend.pytorch:
        embedded = _checkpoint_vocab_size(params.model_path)
        if embedded is not None and (mismatch := vocabulary_mismatch(tokenizer.vocab_size, embedded)):
            return mismatch
    return window_room_problem(params.max_seq_length, params.max_query_length, params.doc_stride,
                               tokenizer.layout.special_tokens)


def _checkpoint_vocab_size(path: str) -> int | None:
    """A Hugging Face checkpoint's vocab_size (config.json), or None where it cannot be read."""
    import json

    try:
        size = json.loads(files.read_bytes(f"{path.rstrip('/')}/config.json")).get("vocab_size")
    except Exception:  # no config.json: --model_path's own check says so
        return None
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _model_problem(path: str, backend: str) -> str | None:
    """Whether the path is of the kind the backend loads (a SavedModel directory or a file)."""
    local = files.is_local(path)
    if local and not os.path.exists(path):
        return "not found"
    saved_model = any(FileSystems.exists(f"{path.rstrip('/')}/{name}") for name in ("saved_model.pb",
                                                                                 "saved_model.pbtxt"))
    checkpoint = FileSystems.exists(f"{path.rstrip('/')}/config.json")
    hugging_face_file = re.search(r"(\.safetensors|\.bin|(^|/)(tokenizer|config|tokenizer_config)\.json)$", path)
    if backend != Backend.pytorch and (checkpoint or hugging_face_file):
        directory = os.path.dirname(path.rstrip("/")) if hugging_face_file else path
        return (f"is a Hugging Face checkpoint{'' if checkpoint else ' file'}: run its directory with "
                f"--backend=pytorch --model_path={directory}, or export it to ONNX with `bertqa export-onnx --hf_model={directory} "
                "--output=model.onnx` for --backend=onnxruntime or tensorrt")
    if backend == Backend.pytorch:
        if checkpoint:
            return None
        if saved_model:
            return "is a SavedModel directory; --backend=pytorch loads a Hugging Face checkpoint (use tensorflow)"
        return ("no Hugging Face checkpoint there (no config.json); --backend=pytorch loads a directory as "
                "save_pretrained writes it")
    if backend == Backend.tensorflow:
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


def _check_bigquery(problems: list[str], params: TemplateParams) -> None:
    """The BigQuery input and output tables, where this machine has credentials to ask BigQuery."""
    from bertqa.dataflow import bigquery_checks
    from bertqa.io import bigquery

    inputs = [name for name in ("input_table", "input_query") if getattr(params, name)]
    outputs = {name: schema for name, schema in (("output_table", bigquery.prediction_schema(bool(params.top_k))),
                                                  ("dead_letter_table", bigquery.DEAD_LETTER_SCHEMA))
               if getattr(params, name)}
    if not inputs and not outputs:
        return
    try:
        client = bigquery_checks.service_client()
    except Exception as error:  # a broken credentials file, say: the job itself would fail on it too
        problems.append(f"BigQuery cannot be reached to check the tables: {type(error).__name__}: {error}")
        return
    if client is None:
        print(f"warning: --{', --'.join([*inputs, *outputs])} not checked before the job: no Google credentials "
              "with a project here (the job's workers use their service account's)", file=sys.stderr)
        return
    for name in inputs:
        _check(problems, name, getattr(params, name), lambda: bigquery_checks.input_problem(client, params))
    for name, schema in outputs.items():
        _check(problems, name, getattr(params, name), lambda name=name, schema=schema: bigquery_checks.output_problem(
            client, getattr(params, name), schema, params.table_write_disposition))


def check_parameters(params: TemplateParams) -> AskedQuestions | None:
    """Raises ParameterError listing every problem found in the paths and the model. Returns the questions
    file's questions (documents mode), read once, here: the job then asks the questions that were checked."""
    problems: list[str] = []
    if params.input:  # (BigQuery input is read by the job: its tables are not reached from here)
        _check(problems, "input", params.input,
               lambda: _input_problem(params.input) or _input_covers_outputs(params))
    questions = None
    if params.questions_file:
        def questions_problem() -> str | None:  # run by _check: even an unexpected error names the parameter
            nonlocal questions
            questions, problem = _read_questions(params.questions_file)
            return problem

        _check(problems, "questions_file", params.questions_file, questions_problem)
    _check_bigquery(problems, params)
    tokenizer = params.tokenizer_parameter
    _check(problems, tokenizer, getattr(params, tokenizer), lambda: _tokenizer_problem(params))
    _check(problems, "model_path", params.model_path, lambda: _model_problem(params.model_path, params.backend))
    _check(problems, "output", params.output, lambda: _output_problem(params.output))
    if params.dead_letter_output:
        _check(problems, "dead_letter_output", params.dead_letter_output,
               lambda: _output_problem(params.dead_letter_output))
    if not problems and files.is_local(params.model_path):
        problems += _model_load_problems(params)
    if problems:
        raise ParameterError("bad template parameter(s):\n  " + "\n  ".join(problems))
    if questions is not None:
        _warn_of_cut_questions(params, questions)
    return questions


def _warn_of_cut_questions(params: TemplateParams, questions: AskedQuestions) -> None:
    """A warning line naming the questions of the questions file longer than --max_query_length tokens: each is
    cut to it in every window of every document, and nothing else would say so before the summary."""
    from bertqa.qa.windows import Featurizer

    featurizer = Featurizer(params.tokenizer.load(), params.window_settings)
    lengths = [length for _, length in featurizer.questions_tokens([text for _, text in questions.questions])]
    cut = [(question_id, length) for (question_id, _), length in zip(questions.questions, lengths)
           if length > params.max_query_length]
    if cut:
        named = ", ".join(f"{question_id}: {length} tokens" for question_id, length in cut[:3])
        print(f"warning: --questions_file={params.questions_file}: {len(cut)} of {len(lengths)} questions have more "
              f"than --max_query_length={params.max_query_length} tokens and are cut to it in every window ({named}"
              f"{', ...' if len(cut) > 3 else ''}): the model sees only their start; raise --max_query_length (each "
              "window then holds that much less of the passage) or shorten them", file=sys.stderr)


def with_fitting_windows(error, tokenizer, max_query_length: int, doc_stride: int) -> str:
    """A ModelLimitError's message, and where the windows were too long for the model, a whole set of window
    settings that fit it and each other (`tokenizer`: a TokenizerSpec, for its special tokens)."""
    from bertqa.params import fitting_windows, window_flags

    if error.longest is None:
        return str(error)
    special_tokens = tokenizer.load().layout.special_tokens
    return (f"{error}; with windows that long: "
            f"{window_flags(fitting_windows(error.longest, special_tokens, max_query_length, doc_stride))}")


def _model_load_problems(params: TemplateParams) -> list[str]:
    """Loads the model as a worker would and probes it at the job's largest window and batch."""
    from bertqa.backends.base import ModelLimitError, load_checked, short_error

    try:
        model = load_checked(params.model_spec(), params.max_batch_size, params.max_seq_length)
    except ModelLimitError as error:  # names --max_seq_length or --max_batch_size itself
        return [with_fitting_windows(error, params.tokenizer, params.max_query_length, params.doc_stride)]
    except Exception as error:
        return [f"--model_path={params.model_path}: cannot be loaded with --backend={params.backend}: "
                f"{short_error(error, 600)}"]
    return _vocabulary_problems(params, model)


def _vocabulary_problems(params: TemplateParams, model) -> list[str]:
    """The model run once on the tokenizer's largest token id: another model's tokenizer with more tokens than this
    model embeds would fail every window that holds one of them (a GPU may not even fail, and answer garbage)."""
    import numpy as np

    from bertqa.backends.base import short_error

    try:
        tokenizer = params.tokenizer.load()
    except Exception:  # its own check has said why
        return []
    largest = tokenizer.vocab_size - 1
    ids = np.full((1, 8), largest, np.int32)
    ids[0, 0] = tokenizer.layout.prefix[0]
    try:
        model.predict(ids, np.ones_like(ids), np.zeros_like(ids))
    except Exception as error:
        name = params.tokenizer_parameter
        return [f"--{name}={getattr(params, name)}: the tokenizer's largest token id, {largest}, fails in the model "
                f"({short_error(error, 300)}): the tokenizer has more tokens than the model embeds, so it is not this "
                "model's tokenizer"]
    return []


def check_worker_image(params: TemplateParams, beam_args: list[str], local: bool) -> None:
    """A Dataflow job launched from one of the template's images: its workers must be given an image (the spec's
    default environment names the launcher's own), and the launcher's image, which they run, must carry the
    backend on the device the job gives it. Refused here, before the job exists, instead of failing on every
    worker."""
    from apache_beam.options.pipeline_options import PipelineOptions, WorkerOptions

    from bertqa.images import BACKEND_PACKAGES, image_for, this_image

    image = this_image()
    if local or image is None:
        return
    problems = []
    worker = PipelineOptions(beam_args).view_as(WorkerOptions)  # as Beam reads them: either spelling, either form
    if not (worker.sdk_container_image or worker.worker_harness_container_image):
        problems.append("the job names no worker image (--sdk_container_image), so its workers would run Beam's own "
                        "image, which has no bertqa: launch from a template spec the build wrote (its default "
                        "environment names this image), or pass --sdk_container_image=IMAGE")
    gpu = params.gpu_type is not GpuType.none
    backend = params.backend
    if backend not in image.backends or image.gpu != gpu:
        fitting = image_for(backend, gpu)
        where = "a GPU" if gpu else "CPU workers"
        problems.append(
            f"--backend={backend} on {where}: this template's image ({image.name}: {', '.join(image.backends)}"
            f"{', CUDA' if image.gpu else ', no CUDA'}) cannot run it; " + (
                f"launch from the {fitting.name} image's template (bertqa-{fitting.name}-TAG.json)" if fitting else
                f"no image of this template carries it yet: launch from a template built on an image with "
                f"{' and '.join(BACKEND_PACKAGES[backend])}"))
    if problems:
        raise ParameterError("bad template parameter(s):\n" + "\n".join(f"  {line}" for line in problems))


def check_bigquery_staging(params: TemplateParams, beam_args: list[str], local: bool) -> None:
    """A local job that exports from BigQuery or loads into it stages those files under a gs:// --temp_location
    (Beam's connectors refuse any other, but only once the job runs); Dataflow jobs always have one."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    users = [f"--{name}" for name in ("input_table", "input_query") if getattr(params, name)
             and params.bigquery_read_method is BigQueryReadMethod.export]
    users += [f"--{name}" for name in ("output_table", "dead_letter_table") if getattr(params, name)]
    temp = PipelineOptions(beam_args).view_as(GoogleCloudOptions).temp_location or ""
    if local and users and not temp.startswith("gs://"):
        raise ParameterError(
            f"bad template parameter(s):\n  {' and '.join(users)}: BigQuery's export and load files are staged "
            f"under --temp_location, which must be a gs:// path (got {temp or 'none'})")


def earlier_outputs(params: TemplateParams) -> list[str]:
    """This template's files from an earlier run in the output directories."""
    from bertqa.io.outputs import existing_outputs

    return existing_outputs(params.output, params.dead_letter_dirs)


def refuse_earlier_outputs(params: TemplateParams, found: list[str]) -> None:
    if found and not params.overwrite:
        shown = ", ".join(os.path.basename(path) for path in found[:3]) + (", ..." if len(found) > 3 else "")
        raise ParameterError(
            f"bad template parameter(s):\n  --output={params.output}: holds {len(found)} output file(s) of an "
            f"earlier run ({shown}); choose another --output, or pass --overwrite=true to delete them first")
