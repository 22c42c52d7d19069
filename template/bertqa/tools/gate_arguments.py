"""The arguments of the developer commands whose accuracy gate cuts real text into windows (export-onnx
--quantize=int8, build-engine, benchmark), as `bertqa run` takes them."""

from __future__ import annotations

from bertqa.backends.accuracy import AccuracyGate
from bertqa.io.tokenizer_files import TokenizerSpec
from bertqa.params import TemplateParams
from bertqa.qa.tokenization import TokenizerError
from bertqa.qa.windows import WindowSettings


def add_tokenizer_arguments(parser) -> None:
    """--vocab_path, --tokenizer_path and --do_lower_case, as `bertqa run` takes them, for the tools whose accuracy
    gate cuts real text into windows (export-onnx --quantize=int8, build-engine)."""
    parser.add_argument("--vocab_path", help="the model's WordPiece vocab.txt")
    parser.add_argument("--tokenizer_path", help="the model's tokenizer.json (or a directory holding one)")
    parser.add_argument("--do_lower_case", choices=["true", "false"], default="true", help="with --vocab_path")


def tokenizer_from_args(args) -> TokenizerSpec | None:
    """The tokenizer `add_tokenizer_arguments`' arguments name, or None where they name none."""
    if args.vocab_path and args.tokenizer_path:
        raise TokenizerError("give --vocab_path or --tokenizer_path, not both")
    if args.vocab_path:
        return TokenizerSpec(args.vocab_path, wordpiece=True, do_lower_case=args.do_lower_case == "true")
    return TokenizerSpec(args.tokenizer_path, wordpiece=False) if args.tokenizer_path else None


GATE_SETTINGS = ("max_seq_length", "doc_stride", "max_query_length", "max_batch_size", "max_answer_length")


def add_gate_arguments(parser) -> None:
    """The job settings the int8 accuracy gate cuts and decodes its sample with, defaults as `bertqa run`'s."""
    fields = TemplateParams.model_fields
    for name in GATE_SETTINGS:
        parser.add_argument(f"--{name}", type=int, default=fields[name].default)
    parser.add_argument("--max_changed_spans", type=float, default=fields["max_changed_spans"].default,
                        help="the int8 model's accuracy gate: the share of sample windows allowed another best span")


def gate_from_args(args, tokenizer, windows: tuple[int, int, int] | None = None) -> AccuracyGate:
    """The gate for `add_gate_arguments`' settings, its sample cut with `tokenizer` (a TokenizerSpec); `windows`
    (max_seq_length, max_query_length, doc_stride) replaces theirs."""
    max_seq_length, max_query_length, doc_stride = windows or (args.max_seq_length, args.max_query_length,
                                                               args.doc_stride)
    decoding = TemplateParams.model_construct(max_answer_length=args.max_answer_length).decode_settings
    return AccuracyGate(tokenizer, WindowSettings(max_seq_length, doc_stride, max_query_length), args.max_batch_size,
                        decoding, args.max_changed_spans)
