"""Every template parameter, defined once: type, bounds, default, help, group and cross-field rules.

The CLI, `--help`, metadata.json and the docs are derived from `TemplateParams`. Values arrive as
`--name=value` strings, as the Flex Template launcher passes them; options this model does not own
are Beam pipeline options and pass through untouched.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any

import pydantic
from pydantic import Field

from bertqa.images import GPU_MIN_DISK_GB
from bertqa.io.bigquery import BigQueryReadMethod, WriteDisposition
from bertqa.io.formats import InputFormat


class Backend(enum.StrEnum):
    tensorflow = "tensorflow"
    onnxruntime = "onnxruntime"
    tensorrt = "tensorrt"
    pytorch = "pytorch"


class Precision(enum.StrEnum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


# The backends that choose their precision (the others run the model file as it is).
PRECISION_BACKENDS = (Backend.tensorrt.value, Backend.pytorch.value)


INPUT_ROLES = ("input_ids", "attention_mask", "token_type_ids")
_ROLE = "|".join(INPUT_ROLES)
_INPUT_NAMES_PATTERN = rf"^$|^({_ROLE})=[^,=]+(,({_ROLE})=[^,=]+)*$"


def parse_input_names(text: str) -> dict[str, str]:
    """'role=name,role=name' (the input_names parameter) as {role: name}; empty text means detect."""
    return dict(pair.split("=", 1) for pair in text.split(",")) if text else {}


class OutputFormat(enum.StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"


# A table's name as the Console form checks it (BigQuery's own rules are checked by Beam's parser, below).
BIGQUERY_TABLE = r"^(([a-z0-9.-]+:)?[a-z][a-z0-9-]*[a-z0-9][:.])?[A-Za-z0-9_]+\.[^\n\r.:]+$"


class GpuType(enum.StrEnum):
    none = "none"
    t4 = "nvidia-tesla-t4"
    l4 = "nvidia-l4"
    a100_40gb = "nvidia-tesla-a100"
    a100_80gb = "nvidia-a100-80gb"
    h100 = "nvidia-h100-80gb"


class GpuScope(enum.StrEnum):
    inference_step = "inference_step"
    all_workers = "all_workers"


class GpuProcesses(enum.StrEnum):
    shared = "shared"
    mps = "mps"
    one_per_vcpu = "one_per_vcpu"


GCS_PATH = r"^gs:\/\/[^\n\r]+$"


@dataclasses.dataclass(frozen=True)
class MachineFamily:
    pattern: str  # the machine types that take one GPU of the type
    accepted: str  # the same in words, for messages
    default: str


# Compute Engine's GPU machine families, one GPU per machine (the GPU-to-machine table in Google's docs).
GPU_MACHINE_TYPES = {
    # One T4 takes an N1 machine of up to 48 vCPUs; N1 custom types are spelled custom-VCPUS-MEMORY_MB.
    GpuType.t4.value: MachineFamily(r"n1-(standard|highmem|highcpu)-(1|2|4|8|16|32)|custom-([1-9]|[1-3]\d|4[0-8])-\d+",
                                    "an n1 machine type of up to 48 vCPUs (n1-standard-1 to -32, n1-highmem-2 to "
                                    "-32, n1-highcpu-2 to -32, or custom-VCPUS-MEMORY_MB)", "n1-standard-4"),
    GpuType.l4.value: MachineFamily(r"g2-standard-(4|8|12|16|32)", "g2-standard-4, 8, 12, 16 or 32", "g2-standard-8"),
    GpuType.a100_40gb.value: MachineFamily(r"a2-highgpu-1g", "a2-highgpu-1g", "a2-highgpu-1g"),
    GpuType.a100_80gb.value: MachineFamily(r"a2-ultragpu-1g", "a2-ultragpu-1g", "a2-ultragpu-1g"),
    GpuType.h100.value: MachineFamily(r"a3-highgpu-1g", "a3-highgpu-1g", "a3-highgpu-1g"),
}


class Group(enum.StrEnum):
    """The parameter groups of `--help` and the Console form, in their order."""

    inputs = "inputs"
    model = "model"
    output = "output"
    performance = "performance"
    gpu = "gpu"


def _field(
    default: Any = ...,
    *,
    label: str,
    help: str,
    group: Group,
    param_type: str | None = None,
    regexes: tuple[str, ...] = (),
    parent: tuple[str, tuple[str, ...]] | None = None,
    **constraints: Any,
) -> Any:
    """A parameter: pydantic validation plus what the Console form needs (metadata.json)."""
    extra = {"group": group.value, "param_type": param_type, "regexes": list(regexes), "parent": parent}
    return Field(default, title=label, description=help, json_schema_extra=extra, **constraints)


def _table_field(label: str, group: Group, help: str) -> Any:
    """An optional BigQuery table parameter (the Console form offers a table picker)."""
    return _field("", label=label, help=help, group=group, param_type="BIGQUERY_TABLE", regexes=(BIGQUERY_TABLE,))


_GPU_SET = tuple(member.value for member in GpuType if member is not GpuType.none)


class TemplateParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)  # choices held as their enum members

    # inputs
    input: str = _field(
        "",
        label="Input files",
        help="File pattern of question files, local or gs://: JSONL records {id, question, context} with optional "
        "SQuAD v2 'answers', SQuAD v1.1/v2.0 JSON, or tables (Parquet, Avro, CSV) whose columns the *_column "
        "parameters name; .gz and .bz2 files are read too. One of input, input_table, input_query.",
        group=Group.inputs,
        param_type="GCS_READ_FILE",
        regexes=(GCS_PATH,),
    )
    input_table: str = _table_field(
        "Input BigQuery table", Group.inputs,
        "PROJECT:DATASET.TABLE (or PROJECT.DATASET.TABLE) whose rows are the records, columns named by the "
        "*_column parameters. One of input, input_table, input_query.")
    input_query: str = _field(
        "", label="Input BigQuery query",
        help="A GoogleSQL query whose result rows are the records, columns named by the *_column parameters. One "
        "of input, input_table, input_query.",
        group=Group.inputs,
    )
    bigquery_read_method: BigQueryReadMethod = _field(
        BigQueryReadMethod.export, label="BigQuery read method",
        help="export: BigQuery exports the table (or the query's result) to files under temp_location, which the "
        "workers read. direct_read: the workers stream it through the BigQuery Storage Read API (no export job; "
        "needs the Read Session User role).",
        group=Group.inputs,
    )
    input_format: InputFormat = _field(
        InputFormat.auto,
        label="Input format",
        help="jsonl, squad (SQuAD JSON), parquet, avro, csv (a header line; .tsv files tab-separated) or auto: by "
        "the name (.json SQuAD, .parquet, .avro, .csv, .tsv, else JSONL) unless the content says otherwise "
        "(JSON Lines named .json, a SQuAD document named .jsonl, Parquet or Avro under any name).",
        group=Group.inputs,
    )
    id_column: str = _field(
        "id", label="Id column", help="Tables (Parquet, Avro, CSV): the column of each row's id (text, or an "
        "integer, read as its decimal text).", group=Group.inputs, pattern=r"^\S(.*\S)?$",
    )
    question_column: str = _field(
        "question", label="Question column", help="Tables: the column of each row's question.", group=Group.inputs,
        pattern=r"^\S(.*\S)?$",
    )
    context_column: str = _field(
        "context", label="Passage column", help="Tables: the column of each row's passage.", group=Group.inputs,
        pattern=r"^\S(.*\S)?$",
    )
    answers_column: str = _field(
        "answers", label="Answers column",
        help="Tables: the column of each row's SQuAD v2 labels, if it has one: a list of answer texts or of "
        "{text, answer_start}, or {text: [...], answer_start: [...]}; an empty list is 'no answer'. In CSV a "
        "JSON cell, or one answer's text; empty: unlabelled.",
        group=Group.inputs, pattern=r"^\S(.*\S)?$",
    )
    questions_file: str = _field(
        "", label="Questions asked of every document",
        help="Local or gs:// file of questions to ask of every input record, each record then a document (id and "
        "context; in a table id_column and context_column): JSON Lines of {\"question_id\", \"question\"}, or "
        "one question per line (ids q1, q2, ...); .gz and .bz2 read too. Each document is tokenized once; a "
        "prediction's id is the document's and the question's ids joined by U+001F, with document_id and "
        "question_id beside it.",
        group=Group.inputs, param_type="GCS_READ_FILE", regexes=(GCS_PATH,),
    )
    max_context_chars: int = _field(
        100_000,
        label="Largest passage (characters)",
        help="Records whose context is longer go to the dead-letter output instead of the model.",
        group=Group.inputs,
        ge=1,
        le=10_000_000,
    )
    # model
    backend: Backend = _field(
        Backend.tensorflow,
        label="Inference backend",
        help="tensorflow: a SavedModel. onnxruntime: an ONNX file (CUDA when present). tensorrt: an ONNX file "
        "built into a TensorRT engine on the worker's GPU, or a prebuilt engine (GPU image only). pytorch: a "
        "Hugging Face *ForQuestionAnswering checkpoint directory, run with transformers (CUDA when present).",
        group=Group.model,
    )
    model_path: str = _field(
        label="Model",
        help="Extractive QA model fine-tuned on SQuAD v2 (local or gs://): SavedModel directory for tensorflow, "
        ".onnx file for onnxruntime, .onnx file or serialized engine for tensorrt, Hugging Face checkpoint "
        "directory (config.json, weights, tokenizer.json) for pytorch.",
        group=Group.model, param_type="TEXT", regexes=(GCS_PATH,), min_length=1,
    )
    vocab_path: str = _field(
        "", label="WordPiece vocabulary",
        help="A BERT-family model's WordPiece vocab.txt (local or gs://): windows cut exactly as Google's BERT SQuAD "
        "code cuts them. Give this or tokenizer_path (a pytorch checkpoint's own tokenizer.json needs neither).",
        group=Group.model, param_type="GCS_READ_FILE", regexes=(GCS_PATH,),
    )
    tokenizer_path: str = _field(
        "", label="Tokenizer",
        help="A Hugging Face fast tokenizer's tokenizer.json, or a directory holding one (local or gs://): any "
        "model's tokenizer (RoBERTa, DeBERTa, ALBERT, XLM-R, BERT), with the special tokens and segments its "
        "post-processor puts around a question and a passage. Empty with backend=pytorch: the checkpoint's own.",
        group=Group.model, param_type="TEXT", regexes=(GCS_PATH,),
    )
    do_lower_case: bool = _field(
        True, label="Lower-case input",
        help="With vocab_path: true for uncased models, false for cased ones (a tokenizer.json has its own rule).",
        group=Group.model,
    )
    signature_name: str = _field(
        "serving_default", label="Signature", help="SavedModel signature to call.", group=Group.model,
        parent=("backend", ("tensorflow",)), min_length=1,
    )
    input_names: str = _field(
        "",
        label="Input name mapping",
        help="Leave empty to detect. Otherwise role=name pairs, e.g. "
        "input_ids=input_word_ids,attention_mask=input_mask,token_type_ids=input_type_ids.",
        group=Group.model,
        pattern=_INPUT_NAMES_PATTERN,
    )
    precision: Precision = _field(
        Precision.auto, label="Precision",
        help="tensorrt: of the engines built on the worker (fp16 or fp32). pytorch: of the model's weights and "
        "math, fp16 or bf16 on a GPU, fp32 on the CPU. auto: fp16 on a GPU, fp32 on the CPU. fp16 and bf16 must "
        "pass the accuracy gate against fp32 (max_changed_spans).",
        group=Group.model, parent=("backend", PRECISION_BACKENDS),
    )
    workspace_mib: int = _field(
        4096, label="TensorRT workspace (MiB)", help="Builder workspace limit for engines built on the worker.",
        group=Group.model, parent=("backend", ("tensorrt",)), ge=64, le=65536,
    )
    engine_cache: str = _field(
        "",
        label="TensorRT engine cache",
        help="Directory (gs://, or local for local runs) where engines built on workers are kept for later jobs "
        "with the same GPU, TensorRT version, model and settings; each machine also keeps them in its /tmp.",
        group=Group.model,
        parent=("backend", ("tensorrt",)),
        regexes=(GCS_PATH,),
    )
    tensorrt_contexts: int = _field(
        2,
        label="TensorRT contexts per worker process",
        help="Execution contexts shared by a worker process's threads; each holds the activation memory of the "
        "largest batch (max_batch_size x max_seq_length) on the GPU. 2 keeps a GPU busy; raise it only if the GPU "
        "idles and has memory to spare.",
        group=Group.model,
        parent=("backend", ("tensorrt",)),
        ge=1,
        le=16,
    )
    max_changed_spans: float = _field(
        0.02,
        label="Largest share of answers fp16 or bf16 may change",
        help="Accuracy gate: a newly built TensorRT engine, or a PyTorch model in fp16 or bf16, runs beside the model "
        "in fp32 on a fixed sample of windows and is refused when the share of windows whose best span changes is "
        "larger than this (0 to 1).",
        group=Group.model,
        parent=("backend", PRECISION_BACKENDS),
        ge=0.0,
        le=1.0,
    )
    build_engines: bool = _field(
        True, label="Build TensorRT engines", help="false: use cached engines only; fail when none fits.",
        group=Group.model, parent=("backend", ("tensorrt",)),
    )
    # question answering
    max_seq_length: int = _field(
        384, label="Window length (tokens)", help="Tokens per model input window.", group=Group.model, ge=16, le=4096
    )
    doc_stride: int = _field(
        128, label="Window stride (tokens)", help="Passage tokens between the starts of consecutive windows.",
        group=Group.model, ge=1, le=4096,
    )
    max_query_length: int = _field(
        64, label="Longest question (tokens)",
        help="Longer questions are cut to this many tokens (counted in summary.json's questions_truncated).",
        group=Group.model, ge=1,
        le=4096,
    )
    max_answer_length: int = _field(
        30, label="Longest answer (tokens)", help="Longest answer span considered.", group=Group.model, ge=1,
        le=4096,
    )
    n_best_size: int = _field(
        20, label="Candidates per window", help="Best start and end positions considered per window.",
        group=Group.model, ge=1, le=200,
    )
    version_2_with_negative: bool = _field(
        True, label="Allow 'no answer'", help="SQuAD v2 behaviour: answer \"\" when the passage holds no answer.",
        group=Group.model,
    )
    null_score_diff_threshold: float = _field(
        0.0, label="No-answer threshold",
        help="Answer \"\" when null score - best span score exceeds this. A labelled run's summary.json gives "
        "the best value for its questions (metrics.best_f1_thresh).",
        group=Group.model, allow_inf_nan=False, ge=-1e6, le=1e6,
    )
    align_to_words: bool = _field(
        True, label="Whole-word answers",
        help="true: an answer cut inside a word is widened to the whole word (as Hugging Face's QA pipeline "
        "does), within max_answer_length; the model's own span stays in raw_start_char/raw_end_char. false: "
        "Google's run_squad.py answers exactly.",
        group=Group.model,
    )
    # output
    output: str = _field(
        label="Output directory",
        help="Local or gs:// directory for predictions.json, predictions-*.jsonl, summary.json, dead_letter/.",
        group=Group.output,
        param_type="GCS_WRITE_FOLDER",
        regexes=(GCS_PATH,),
        min_length=1,
    )
    output_format: OutputFormat = _field(
        OutputFormat.jsonl, label="Prediction files' format",
        help="jsonl: predictions-*.jsonl. parquet: predictions-*.parquet (one column per field). predictions.json "
        "is written either way.", group=Group.output,
    )
    top_k: int = _field(
        0, label="Candidate answers per question",
        help="Up to this many of a question's best spans, with distinct texts, in each prediction row's "
        "candidates (best first; each with its answer text, score, probability, start_char and end_char), "
        "whatever the no-answer decision. 0: no candidates column. At most n_best_size.",
        group=Group.output, ge=0, le=200,
    )
    output_table: str = _table_field(
        "Output BigQuery table", Group.output,
        "PROJECT:DATASET.TABLE for the prediction rows instead of prediction files, created if missing with "
        "the template's schema and loaded with BigQuery load jobs; summary.json still goes to output.")
    dead_letter_table: str = _table_field(
        "Dead-letter BigQuery table", Group.output,
        "PROJECT:DATASET.TABLE for the dead letters instead of dead-letter files (raw as JSON text in "
        "raw_json), created if missing.")
    table_write_disposition: WriteDisposition = _field(
        WriteDisposition.empty, label="When an output table has rows",
        help="empty: the load fails when the table already holds rows (a run never mixes with an earlier one). "
        "append: add the rows. truncate: replace the table's rows.",
        group=Group.output,
    )
    dead_letter_output: str = _field(
        "", label="Dead-letter directory", help="Where rejected records go; default OUTPUT/dead_letter.",
        group=Group.output, param_type="GCS_WRITE_FOLDER", regexes=(GCS_PATH,),
    )
    overwrite: bool = _field(
        False, label="Replace an earlier run's outputs",
        help="false: stop before the job when the output directories already hold this template's outputs. "
        "true: delete those files first (other files are left alone).",
        group=Group.output,
    )
    max_dead_letter_fraction: float = _field(
        0.1,
        label="Largest share of records that may go to the dead letters",
        help="Past it the job still writes every output, then ends as failed (exit code 3 locally, a failed "
        "Summarize/WriteSummary step on Dataflow), naming the share and the three most common reasons. 1: never "
        "fail.",
        group=Group.output,
        ge=0.0,
        le=1.0,
    )
    # performance
    max_batch_size: int = _field(
        64, label="Largest batch", help="Most windows per model call.", group=Group.performance, ge=1, le=4096
    )

    # GPU
    gpu_type: GpuType = _field(
        GpuType.none,
        label="GPU type",
        help="Attach this GPU to the workers that run the model (none: CPU only). Pick a worker machine type "
        "that takes it: n1 for T4, g2 for L4, a2 for A100, a3 for H100.",
        group=Group.gpu,
    )
    gpu_count: int = _field(
        1, label="GPUs per worker",
        help="1. A worker's model process drives one GPU, so further GPUs on the same worker would sit idle: "
        "for more throughput, raise max_num_workers.",
        group=Group.gpu, parent=("gpu_type", _GPU_SET), ge=1, le=8,
    )
    gpu_machine_type: str = _field(
        "",
        label="GPU worker machine type",
        help="Machine type of the workers that get the GPU; it must take that GPU with one GPU per machine "
        "(n1 of up to 48 vCPUs or custom-VCPUS-MEMORY_MB for T4, g2-standard-4/8/12/16/32 for L4, a2-highgpu-1g for A100 40GB, a2-ultragpu-1g for "
        "A100 80GB, a3-highgpu-1g for H100). Empty: n1-standard-4, g2-standard-8, a2-highgpu-1g, "
        "a2-ultragpu-1g or a3-highgpu-1g.",
        group=Group.gpu,
        parent=("gpu_type", _GPU_SET),
        pattern=r"^$|^[a-z][a-z0-9]*(-[a-z0-9]+)+$",
    )
    disk_size_gb: int = _field(
        0,
        label="Worker disk (GB)",
        help="Boot disk of every worker, shared by the system, the container image, models and engines. "
        "0: one that fits the template's image (twice its size, for the pull, and 20 GB more; 30 GB for the "
        "CPU image, 50 GB for the GPU ones).",
        group=Group.performance,
        ge=0,
        le=65536,
    )
    gpu_scope: GpuScope = _field(
        GpuScope.inference_step,
        label="GPU workers",
        help="inference_step: only the model step runs on GPU workers (a resource hint; reading, tokenizing and "
        "writing stay on CPU workers). all_workers: every worker gets the GPU.",
        group=Group.gpu,
        parent=("gpu_type", _GPU_SET),
    )
    gpu_processes: GpuProcesses = _field(
        GpuProcesses.shared,
        label="Model copies per GPU worker",
        help="shared: one SDK process per vCPU (all of them read, tokenize and decode) and one model copy per "
        "worker, loaded once and called by every process (Beam's model sharing across processes). mps: a model "
        "copy per process, the GPU shared through NVIDIA MPS (small models). one_per_vcpu: a model copy per "
        "process without MPS (risks GPU out-of-memory).",
        group=Group.gpu,
        parent=("gpu_type", _GPU_SET),
    )

    @property
    def share_model_across_processes(self) -> bool:
        """One model copy per worker, called by all its SDK processes (GPU jobs with gpu_processes=shared)."""
        return self.gpu_type is not GpuType.none and self.gpu_processes is GpuProcesses.shared

    @pydantic.field_validator("output", "dead_letter_output")
    @classmethod
    def _a_path_not_a_pattern(cls, value: str) -> str:
        # Output locations are matched with patterns (an earlier run's files, to refuse or delete): a '*' in one
        # would match, and with --overwrite delete, another run's files.
        if found := [character for character in "*?[" if character in value]:
            raise ValueError(f"an output location is a path, not a pattern: it holds {found[0]!r}")
        return value

    @pydantic.field_validator("engine_cache")
    @classmethod
    def _engine_cache_is_writable_safely(cls, value: str) -> str:
        # Entries are written create-only on gs:// and by rename locally; other filesystems offer neither.
        if "://" in value and not value.startswith("gs://"):
            raise ValueError("an engine cache is a gs:// location, or a local directory for local runs")
        return value

    @pydantic.model_validator(mode="after")
    def _windows_have_room(self, info: pydantic.ValidationInfo) -> "TemplateParams":
        # BERT's 3 special tokens; a tokenizer with more (RoBERTa's 4) is checked when it is read (preflight).
        problem = window_room_problem(self.max_seq_length, self.max_query_length, self.doc_stride, 3)
        if problem:
            raise ValueError(problem)
        named = [self.id_column, self.question_column, self.context_column, self.answers_column]
        if len(set(named)) < len(named):
            raise ValueError(f"id_column, question_column, context_column and answers_column must name different "
                             f"columns, got {', '.join(named)}")
        given = [name for name in ("input", "input_table", "input_query") if getattr(self, name)]
        if len(given) != 1 and not (info.context or {}).get(NO_INPUT):
            raise ValueError(f"give one of input (files), input_table or input_query (BigQuery), got "
                             f"{', '.join(given) or 'none'}")
        for name in ("input_table", "output_table", "dead_letter_table"):
            if problem := table_name_problem(getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)}: {problem}")
        tables = [table for table in (self.input_table, self.output_table, self.dead_letter_table) if table]
        if len({table.replace(":", ".") for table in tables}) < len(tables):
            raise ValueError(f"input_table, output_table and dead_letter_table must be different tables, got "
                             f"{', '.join(tables)}")
        if self.top_k > self.n_best_size:
            raise ValueError(f"top_k={self.top_k} is more than n_best_size={self.n_best_size}, the spans a question's "
                             "candidates come from: lower top_k or raise n_best_size")
        if self.questions_file and self.input_format is InputFormat.squad:
            raise ValueError("questions_file asks questions of documents; a SQuAD file holds questions of its own "
                             "(input_format=squad): use JSON Lines or a table of documents")
        if self.vocab_path and self.tokenizer_path:
            raise ValueError(
                f"vocab_path={self.vocab_path} and tokenizer_path={self.tokenizer_path}: give one tokenizer, a "
                "WordPiece vocab.txt or a tokenizer.json")
        if not (self.vocab_path or self.tokenizer_path) and self.backend is not Backend.pytorch:
            raise ValueError(
                "no tokenizer: give --vocab_path (a WordPiece vocab.txt) or --tokenizer_path (a tokenizer.json, or a "
                "directory holding one); only --backend=pytorch reads the checkpoint's own tokenizer.json")
        if self.backend is Backend.tensorrt and self.precision is Precision.bf16:
            raise ValueError("precision=bf16: TensorRT engines are built in fp16 or fp32 here (use fp16, or "
                             "--backend=pytorch for bf16)")
        if (self.gpu_processes is GpuProcesses.mps and self.gpu_type is not GpuType.none
                and self.gpu_scope is GpuScope.inference_step):
            raise ValueError(
                "gpu_processes=mps: Google documents NVIDIA MPS only through the worker_accelerator service option "
                "(https://cloud.google.com/dataflow/docs/gpu/use-nvidia-mps), which right fitting's per-step GPU "
                "(gpu_scope=inference_step, the default) does not use: set gpu_scope=all_workers with mps, or "
                "use gpu_processes=shared")
        if self.gpu_count > 1:
            raise ValueError(
                f"gpu_count={self.gpu_count}: a worker's model process drives one GPU, so the other "
                f"{self.gpu_count - 1} would sit idle (paid for); use gpu_count=1 and raise --max_num_workers"
            )
        if self.disk_size_gb and self.gpu_type is not GpuType.none and self.disk_size_gb < GPU_MIN_DISK_GB:
            raise ValueError(
                f"disk_size_gb={self.disk_size_gb}: GPU workers need at least {GPU_MIN_DISK_GB} GB (the image "
                "with CUDA, cuDNN and TensorRT is several GB, and models and engines are written to /tmp)"
            )
        if self.gpu_machine_type and self.gpu_type is not GpuType.none:
            family = GPU_MACHINE_TYPES[self.gpu_type]
            if not re.fullmatch(family.pattern, self.gpu_machine_type):
                raise ValueError(
                    f"gpu_machine_type={self.gpu_machine_type} cannot take one {self.gpu_type}: use "
                    f"{family.accepted} (e.g. {family.default})"
                )
        return self

    @property
    def tokenizer_parameter(self) -> str:
        """The parameter that names the job's tokenizer (a pytorch checkpoint's own: model_path)."""
        return "vocab_path" if self.vocab_path else "tokenizer_path" if self.tokenizer_path else "model_path"

    @property
    def tokenizer(self):
        """Where the job's tokenizer is (a bertqa.io.tokenizer_files.TokenizerSpec)."""
        from bertqa.io.tokenizer_files import TokenizerSpec

        if self.vocab_path:
            return TokenizerSpec(self.vocab_path, wordpiece=True, do_lower_case=self.do_lower_case)
        return TokenizerSpec(self.tokenizer_path or self.model_path, wordpiece=False)

    @property
    def gpu_worker_machine_type(self) -> str | None:
        """The machine type of GPU workers (the default for the GPU when none was given); None without a GPU."""
        if self.gpu_type is GpuType.none:
            return None
        return self.gpu_machine_type or GPU_MACHINE_TYPES[self.gpu_type].default

    @property
    def worker_disk_size_gb(self) -> int | None:
        """--disk_size_gb for the job: the one given, else a disk that fits the template image the job is
        launched from (bertqa.images), else GPU_MIN_DISK_GB with a GPU and None (Dataflow's default) without."""
        from bertqa.images import this_image

        if self.disk_size_gb:
            return self.disk_size_gb
        image = this_image()
        if image is not None:
            return image.boot_disk_gb
        return GPU_MIN_DISK_GB if self.gpu_type is not GpuType.none else None

    def ignored_settings(self) -> list[str]:
        """Settings given explicitly that have no effect with the others (one line each, for a warning)."""
        given = self.model_fields_set
        notes = []
        if self.gpu_type is GpuType.none:
            notes += [f"--{name} has no effect without --gpu_type" for name in (
                "gpu_count", "gpu_scope", "gpu_processes", "gpu_machine_type") if name in given]
        if self.backend is not Backend.tensorrt:
            notes += [f"--{name} has no effect with --backend={self.backend} (TensorRT only)"
                      for name in ("workspace_mib", "engine_cache", "build_engines", "tensorrt_contexts")
                      if name in given]
        if self.backend not in PRECISION_BACKENDS:
            notes += [f"--{name} has no effect with --backend={self.backend} (TensorRT and PyTorch only: the model file "
                      "runs in its own precision)" for name in ("precision", "max_changed_spans") if name in given]
        if self.questions_file and "question_column" in given:
            notes.append("--question_column has no effect with --questions_file (the documents' questions are the "
                         "file's)")
        if self.input and "bigquery_read_method" in given:
            notes.append("--bigquery_read_method has no effect with --input (files; BigQuery input only)")
        if not self.input and "input_format" in given:
            notes.append("--input_format has no effect with BigQuery input (its rows are read as a table's)")
        if self.output_table and "output_format" in given:
            notes.append("--output_format has no effect with --output_table (the predictions go to the table)")
        if not (self.output_table or self.dead_letter_table) and "table_write_disposition" in given:
            notes.append("--table_write_disposition has no effect without --output_table or --dead_letter_table")
        if self.input and self.input_format in (InputFormat.jsonl, InputFormat.squad):
            notes += [f"--{name} has no effect with --input_format={self.input_format} (tables only)"
                      for name in ("id_column", "question_column", "context_column", "answers_column") if name in given]
        if not self.vocab_path and "do_lower_case" in given:
            notes.append("--do_lower_case has no effect without --vocab_path (a tokenizer.json has its own "
                         "normalizer)")
        if self.backend is not Backend.tensorflow and "signature_name" in given:
            notes.append(f"--signature_name has no effect with --backend={self.backend} (SavedModels only)")
        return notes

    @property
    def input_name_map(self) -> dict[str, str]:
        return parse_input_names(self.input_names)

    @property
    def columns(self):
        """Which table column holds each of a record's fields (a bertqa.io.tables.Columns)."""
        from bertqa.io.tables import Columns

        return Columns(self.id_column, self.question_column, self.context_column, self.answers_column)

    @property
    def dead_letter_dir(self) -> str:
        return self.dead_letter_output or self._default_dead_letter_dir

    @property
    def _default_dead_letter_dir(self) -> str:
        return self.output.rstrip("/") + "/dead_letter"

    @property
    def dead_letter_dirs(self) -> list[str]:
        """Where this run's dead letters go, and the output directory's own dead_letter/ (an earlier run's may be
        there): every place whose dead letters belong to the output directory's run."""
        return sorted({self.dead_letter_dir.rstrip("/"), self._default_dead_letter_dir})

    # The settings objects of each layer, built from these parameters (they have no defaults of their own).

    @property
    def window_settings(self):
        """How questions and passages are cut into windows (a bertqa.qa.windows.WindowSettings)."""
        from bertqa.qa.windows import WindowSettings

        return WindowSettings(self.max_seq_length, self.doc_stride, self.max_query_length)

    @property
    def decode_settings(self):
        """How answers are chosen from the logits (a bertqa.qa.decoding.DecodeSettings)."""
        from bertqa.qa.decoding import DecodeSettings

        return DecodeSettings(self.n_best_size, self.max_answer_length, self.null_score_diff_threshold,
                              self.version_2_with_negative, self.align_to_words, self.top_k)

    @property
    def accuracy_gate(self):
        """The accuracy gate of the job's reduced-precision models: its sample cut with the job's tokenizer and
        windows, decoded with its settings (a bertqa.backends.accuracy.AccuracyGate)."""
        from bertqa.backends.accuracy import AccuracyGate

        return AccuracyGate(self.tokenizer, self.window_settings, self.max_batch_size, self.decode_settings,
                            self.max_changed_spans)

    @property
    def model_precision(self) -> str:
        """The precision the model runs in: auto is fp16 for TensorRT (on a GPU, always), the model's own for
        PyTorch."""
        if self.precision is Precision.auto and self.backend is Backend.tensorrt:
            return Precision.fp16.value
        return self.precision.value

    @property
    def engine_settings(self):
        """What a TensorRT engine is built for (a bertqa.backends.tensorrt.EngineSettings)."""
        from bertqa.backends.tensorrt import EngineSettings

        return EngineSettings(self.max_batch_size, self.max_seq_length, self.model_precision, self.workspace_mib)

    def model_spec(self, threads: int = 0):
        """The backend's description of the model (a bertqa.backends.base.ModelSpec); `threads` as
        bertqa.job.answer.threads_per_process gives (only ONNX Runtime and PyTorch on the CPU take it: TensorFlow
        fixes its threads at start-up, and TensorRT's work is on the GPU)."""
        input_names = tuple(self.input_name_map.items())
        if self.backend is Backend.tensorflow:
            from bertqa.backends.tensorflow import TensorFlowModelSpec

            return TensorFlowModelSpec(self.model_path, self.signature_name, input_names)
        if self.backend is Backend.onnxruntime:
            from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec

            return OnnxRuntimeModelSpec(self.model_path, input_names, threads)
        if self.backend is Backend.tensorrt:
            from bertqa.backends.tensorrt import TensorRTModelSpec

            return TensorRTModelSpec(self.model_path, self.engine_settings, self.accuracy_gate, self.engine_cache,
                                     self.build_engines, input_names, self.tensorrt_contexts)
        from bertqa.backends.pytorch import PyTorchModelSpec

        return PyTorchModelSpec(self.model_path, self.model_precision, threads, self.accuracy_gate)

    def accelerator(self, with_machine_type: bool = False) -> str | None:
        """Dataflow's accelerator string for the chosen GPU, or None for CPU only."""
        if self.gpu_type is GpuType.none:
            return None
        parts = [f"type:{self.gpu_type}", f"count:{self.gpu_count}", "install-nvidia-driver"]
        if self.gpu_processes is GpuProcesses.mps:
            parts.append("use_nvidia_mps")
        if with_machine_type:  # a resource hint chooses the GPU pool's machine; the job's machine type is for the rest
            parts.append(f"machine_type:{self.gpu_worker_machine_type}")
        return ";".join(parts)

    @property
    def inference_step_accelerator(self) -> str | None:
        """The accelerator resource hint for the RunInference step (None: no hint)."""
        if self.gpu_scope is not GpuScope.inference_step:
            return None
        return self.accelerator(with_machine_type=True)


def window_room_problem(max_seq_length: int, max_query_length: int, doc_stride: int, special_tokens: int
                        ) -> str | None:
    """Why windows of these settings would not cover a passage with `special_tokens` special tokens each, or None."""
    room = max_seq_length - max_query_length - special_tokens
    fitting = window_flags(fitting_windows(max_seq_length, special_tokens, max_query_length, doc_stride))
    if room < 1:
        return (f"max_seq_length={max_seq_length} leaves no room for passage tokens after "
                f"max_query_length={max_query_length} and {special_tokens} special tokens; settings that fit "
                f"together: {fitting}")
    if doc_stride > room:
        return (f"doc_stride={doc_stride} is larger than the passage part of a window (max_seq_length - "
                f"max_query_length - {special_tokens} special tokens = {room}); windows would skip text; settings "
                f"that fit together: {fitting}")
    return None


def fitting_windows(longest: int, special_tokens: int = 3, max_query_length: int | None = None,
                    doc_stride: int | None = None) -> tuple[int, int, int]:
    """(max_seq_length, max_query_length, doc_stride) for windows of at most `longest` tokens: the given question
    length and stride (by default the template's), shrunk where they would not fit: the question to a quarter of
    the window, the stride to half of what is left for the passage."""
    fields = TemplateParams.model_fields
    query = min(max_query_length or fields["max_query_length"].default, longest // 4)
    stride = min(doc_stride or fields["doc_stride"].default, (longest - query - special_tokens) // 2)
    return longest, query, stride


def window_flags(windows: tuple[int, int, int]) -> str:
    return "--max_seq_length={} --max_query_length={} --doc_stride={}".format(*windows)


# A validation context's key: parameters for a developer tool that reads no records (build-engine), checked but for
# the one input every job names.
NO_INPUT = "no_input"


class ParameterError(ValueError):
    """A bad template parameter: the message names it, its value and what is accepted."""


def _accepted(name: str) -> str:
    field = TemplateParams.model_fields[name]
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(member.value for member in annotation)
    parts = [getattr(annotation, "__name__", str(annotation))]
    for constraint in field.metadata:
        for attr, sign in (("ge", ">="), ("le", "<="), ("min_length", "length >="), ("pattern", "matching")):
            if hasattr(constraint, attr):
                parts.append(f"{sign} {getattr(constraint, attr)}")
    return " ".join(parts)


def build_params(values: dict[str, str], context: dict | None = None) -> TemplateParams:
    """The parameters `values` give, validated; `context` {NO_INPUT: True} for a tool that reads no records."""
    try:
        return TemplateParams.model_validate(values, context=context)
    except pydantic.ValidationError as error:
        messages = []
        for item in error.errors():
            if item["loc"]:
                name = str(item["loc"][0])
                given = values.get(name, "<missing>")
                detail = "required" if item["type"] == "missing" else item["msg"]
                messages.append(f"--{name}={given}: {detail} (accepted: {_accepted(name)})")
            else:
                messages.append(item["msg"].removeprefix("Value error, "))
        raise ParameterError("bad template parameter(s):\n  " + "\n  ".join(messages)) from None


def table_name_problem(table: str) -> str | None:
    """What is wrong with a BigQuery table's name (PROJECT:DATASET.TABLE), by Beam's own parser; None if fine."""
    if not table:
        return None
    from apache_beam.io.gcp.bigquery_tools import parse_table_reference

    try:
        parse_table_reference(table)
    except ValueError:
        return ("not a BigQuery table name: write PROJECT:DATASET.TABLE or PROJECT.DATASET.TABLE (or DATASET.TABLE "
                "in the job's project), dataset letters, digits and underscores")
    return None
