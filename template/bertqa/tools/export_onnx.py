"""`bertqa export-onnx`: an extractive QA model -> ONNX with dynamic batch and sequence axes, checked.

From a TensorFlow SavedModel (`--saved_model`, converted with tf2onnx) or a Hugging Face
`*ForQuestionAnswering` checkpoint directory (`--hf_model`: BERT, RoBERTa, DeBERTa-v2/v3, ALBERT, XLM-R,
ELECTRA, DistilBERT, ...; PyTorch's own exporter, torch and transformers come with the `hf` extra), opset 17+.
Either way ONNX Runtime then runs the export on the same sample inputs as the source framework, and the file
is kept only when the start and end logits agree (matched by name, not output order). A checkpoint's tokenizer
is written beside the export as tokenizer.json (its padding token included), and the `bertqa run` command that
fits it (tokenizer, window length) is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import re
import shlex
import sys
import warnings
from typing import Sequence

import numpy as np

from bertqa.backends.accuracy import AccuracyGate, AccuracyReport
from bertqa.backends.base import sample_inputs
from bertqa.params import ParameterError, TemplateParams, fitting_windows, parse_input_names
from bertqa.io.tokenizer_files import TokenizerSpec
from bertqa.qa.tokenization import TokenizerError, vocabulary_mismatch
from bertqa.tools.job_arguments import GATE_PARAMETERS, TOKENIZER_PARAMETERS, add_job_arguments, job_params

MIN_OPSET = 17
MIN_TORCH_OPSET = 18  # PyTorch's torch.export-based exporter writes opset 18 operators (Split's num_outputs)


class ExportError(RuntimeError):
    pass


@contextlib.contextmanager
def _lean_tf2onnx_optimizer():
    """tf2onnx 1.17 deep-copies the whole graph, weights included, before each pass of its ONNX optimizer,
    so that a failing pass can be skipped: a 12-layer BERT-base SavedModel then went past 24 GB and was
    killed. TF2ONNX_CATCH_ERRORS turns the copies off (tf2onnx reads only whether the variable is set:
    peak 19 GB for the same model); the caller retries without it if a pass fails."""
    if "TF2ONNX_CATCH_ERRORS" in os.environ:  # the user's own choice
        yield
        return
    os.environ["TF2ONNX_CATCH_ERRORS"] = "false"
    try:
        yield
    finally:
        os.environ.pop("TF2ONNX_CATCH_ERRORS", None)


def export_onnx(saved_model: str, output: str, opset: int = MIN_OPSET, signature_name: str = "serving_default",
                input_names: dict[str, str] | None = None, atol: float = 1e-4) -> float:
    """Writes `output`; returns the largest absolute logit difference found (at most `atol`)."""
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: use {MIN_OPSET} or newer")
    import tensorflow as tf
    import tf2onnx

    from bertqa.backends.onnxruntime import OnnxRuntimeQAModel
    from bertqa.backends.tensorflow import TensorFlowQAModel

    source = TensorFlowQAModel(saved_model, signature_name, input_names or {})
    function = source.function
    _, specs = function.structured_input_signature
    names = sorted(specs)
    signature = [tf.TensorSpec(specs[name].shape, specs[name].dtype, name=name) for name in names]

    @tf.function(input_signature=signature)
    def named(*tensors):
        return function(**dict(zip(names, tensors)))

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    try:
        with _lean_tf2onnx_optimizer():
            tf2onnx.convert.from_function(named, input_signature=signature, opset=opset, output_path=output)
    except Exception:  # one of tf2onnx's optimizers failed: again with its own guard, which skips a failing one
        tf2onnx.convert.from_function(named, input_signature=signature, opset=opset, output_path=output)

    converted = OnnxRuntimeQAModel(output, input_names or {})
    worst = 0.0
    lengths = [source.fixed_seq_length] if source.fixed_seq_length else [64, 128]
    for batch, length in zip((1, 3), lengths * 2):
        inputs = sample_inputs(batch, length, seed=batch)
        worst = max(worst, _largest_difference(source.predict(*inputs), converted.predict(*inputs)))
    if worst > atol:
        os.remove(output)
        raise ExportError(f"ONNX logits differ from TensorFlow's by up to {worst:.2e} (> {atol:.0e}); "
                          f"{output} was not kept")
    return worst


def _largest_difference(expected: Sequence[np.ndarray], actual: Sequence[np.ndarray]) -> float:
    return max(float(np.max(np.abs(np.asarray(e, np.float32) - np.asarray(a, np.float32))))
               for e, a in zip(expected, actual))


@dataclasses.dataclass(frozen=True)
class CheckpointExport:
    """What `bertqa run` needs to know about an exported checkpoint."""

    onnx_path: str
    tokenizer_path: str
    max_seq_length: int  # 384, or the longest window the checkpoint's position table takes where that is shorter
    max_query_length: int
    doc_stride: int
    largest_difference: float

    def run_command(self) -> str:
        return shlex.join([
            "bertqa", "run", "--input=QUESTIONS", "--output=OUTPUT_DIR", f"--model_path={self.onnx_path}",
            f"--tokenizer_path={self.tokenizer_path}", "--backend=onnxruntime",
            f"--max_seq_length={self.max_seq_length}", f"--max_query_length={self.max_query_length}",
            f"--doc_stride={self.doc_stride}",
        ])


def window_settings(positions: int, special_tokens: int = 3) -> tuple[int, int, int]:
    """(max_seq_length, max_query_length, doc_stride): the template's defaults (384, 64, 128), shrunk for a
    model whose windows can be no longer than `positions` tokens."""
    return fitting_windows(min(TemplateParams.model_fields["max_seq_length"].default, positions), special_tokens)


def checkpoint_tokenizer(tokenizer, output_dir: str) -> str:
    """The checkpoint's fast tokenizer as `output_dir`/tokenizer.json, its padding token in it, so that the file
    alone is the job's tokenizer; ExportError where the template cannot cut windows with it."""
    from tokenizers import Tokenizer

    from bertqa.qa.tokenization import TOKENIZER_FILE, from_tokenizer_json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ExportError(f"the checkpoint's tokenizer ({type(tokenizer).__name__}) has no fast (tokenizers) form "
                          "to write as tokenizer.json")
    fast = Tokenizer.from_str(backend.to_str())
    fast.no_truncation()
    fast.no_padding()
    if tokenizer.pad_token is not None and tokenizer.pad_token_id is not None:
        fast.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    try:
        from_tokenizer_json(fast.to_str())
    except TokenizerError as error:
        raise ExportError(f"the checkpoint's tokenizer cannot cut windows: {error}") from None
    path = os.path.join(output_dir, TOKENIZER_FILE)
    fast.save(path)
    return path


def longest_window(run, positions: int) -> int:
    """The longest multiple of PAD_MULTIPLE tokens, up to `positions`, that `run(length)` takes: the job pads each
    window up to such a multiple (RoBERTa's 514 positions take 512 tokens, its first two being reserved)."""
    from bertqa.qa.windows import PAD_MULTIPLE

    for length in range(positions - positions % PAD_MULTIPLE, 0, -PAD_MULTIPLE):
        try:
            run(length)
            return length
        except Exception:
            continue
    raise ExportError(f"the checkpoint fails on every window of a multiple of {PAD_MULTIPLE} tokens up to its "
                      f"{positions} positions")


def export_checkpoint(model_dir: str, output: str, opset: int = MIN_TORCH_OPSET,
                      atol: float = 1e-4) -> CheckpointExport:
    """A Hugging Face *ForQuestionAnswering checkpoint (a directory: config, weights, tokenizer files) to
    `output`, with tokenizer.json beside it; checked against the PyTorch model's logits."""
    if opset < MIN_TORCH_OPSET:
        raise ExportError(f"opset {opset}: PyTorch's exporter writes opset {MIN_TORCH_OPSET} or newer")
    try:
        import torch
        import transformers
    except ImportError as error:
        raise ExportError(f"--hf_model needs PyTorch and transformers ({error}): pip install 'bertqa[hf]'") from None
    from bertqa.backends.pytorch import load_checkpoint, takes_segments

    try:
        # Eager attention: what PyTorch's exporter traces into plain ONNX operators.
        model = load_checkpoint(model_dir, torch.float32, attention="eager")
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise ExportError(f"cannot load {model_dir} as a question-answering checkpoint: "
                          f"{' '.join(str(error).split())[:400]}") from None
    model.eval()
    if mismatch := vocabulary_mismatch(len(tokenizer), model.get_input_embeddings().num_embeddings):
        raise ExportError(f"{model_dir}: {mismatch}")
    output = os.path.abspath(output)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    tokenizer_path = checkpoint_tokenizer(tokenizer, os.path.dirname(output))
    # Every export gets the three inputs the template feeds; models without segments ignore the third.
    segments = takes_segments(model)

    class ThreeInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            given = {"token_type_ids": token_type_ids} if segments else {}
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, **given)
            # An unused input would be pruned from the graph; zero times it keeps it, at no cost.
            keep = 0 if segments else (token_type_ids[:, :1] * 0).to(out.start_logits.dtype)
            return out.start_logits + keep, out.end_logits + keep

    def torch_inputs(batch: int, length: int, seed: int = 0):
        return tuple(torch.from_numpy(array.astype(np.int64)) for array in sample_inputs(batch, length, seed))

    def run(length: int):
        with torch.no_grad():
            return ThreeInputs()(*torch_inputs(1, length))

    positions = longest_window(run, int(getattr(model.config, "max_position_embeddings", 512)))
    example = torch_inputs(2, 32)
    # torch.export's exporter: batch and sequence stay symbolic through the attention-mask code, which the
    # older tracing exporter froze at the example's shape.
    axes = {0: torch.export.Dim("batch"), 1: torch.export.Dim("seq", max=positions)}
    for name in ("torch.onnx", "onnxscript"):  # notes on torchvision ops, axis names and constant folding
        logging.getLogger(name).setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            ThreeInputs().eval(), example, input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["start_logits", "end_logits"], dynamic_shapes=(axes, axes, axes), opset_version=opset,
            dynamo=True, verbose=False)
    program.save(output)

    from bertqa.backends.onnxruntime import OnnxRuntimeQAModel

    converted = OnnxRuntimeQAModel(output, {})
    worst = 0.0
    for batch, length in ((1, min(64, positions)), (3, min(128, positions))):
        inputs = sample_inputs(batch, length, seed=batch)
        with torch.no_grad():
            expected = ThreeInputs()(*(torch.from_numpy(a.astype(np.int64)) for a in inputs))
        worst = max(worst, _largest_difference([t.numpy() for t in expected], converted.predict(*inputs)))
    if worst > atol:
        os.remove(output)
        raise ExportError(f"ONNX logits differ from PyTorch's by up to {worst:.2e} (> {atol:.0e}); "
                          f"{output} was not kept")
    special_tokens = TokenizerSpec(tokenizer_path, wordpiece=False).load().layout.special_tokens
    return CheckpointExport(output, tokenizer_path, *window_settings(positions, special_tokens), worst)


class _WithoutPreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing before quantization")


def quantize_int8(fp32_path: str, output: str, gate: AccuracyGate) -> AccuracyReport:
    """ONNX Runtime's dynamic int8 quantization of `fp32_path` into `output` (weights int8, activations
    quantized per batch at run time: the CPU's int8 kernels), kept only if the accuracy gate accepts it
    against the fp32 model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from bertqa.backends.accuracy import AccuracyGateError
    from bertqa.backends.onnxruntime import OnnxRuntimeQAModel

    output = os.path.abspath(output)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    root = logging.getLogger()
    advice = _WithoutPreprocessingAdvice()
    root.addFilter(advice)  # ORT's shape pre-processing fails on tf2onnx's exports; quantization is checked below
    try:
        quantize_dynamic(fp32_path, output, weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(advice)
    try:
        return gate.check(OnnxRuntimeQAModel(fp32_path, {}), OnnxRuntimeQAModel(output, {}), "the int8 model",
                          instead="keep the fp32 model")
    except AccuracyGateError:
        os.remove(output)
        raise


def gate_params(args, fp32_path: str, **fixed) -> TemplateParams:
    """The job parameters the int8 gate runs with, checked as `bertqa run` checks them; `fixed` replaces given
    ones (--hf_model: the export's tokenizer and windows)."""
    names = GATE_PARAMETERS if args.hf_model else (*TOKENIZER_PARAMETERS, *GATE_PARAMETERS)
    return job_params(args, names, backend="onnxruntime", model_path=fp32_path, output=args.output, **fixed)


def gate_windows_problem(fp32_path: str, params: TemplateParams) -> str | None:
    """What `bertqa run` would refuse in the gate's window settings for this tokenizer's special tokens or in the
    model's limits for them, with a whole set of settings that work; None if the gate can run."""
    from bertqa.backends.base import ModelLimitError, check_limits
    from bertqa.backends.onnxruntime import OnnxRuntimeQAModel
    from bertqa.params import window_room_problem
    from bertqa.dataflow.preflight import with_fitting_windows

    if problem := window_room_problem(params.max_seq_length, params.max_query_length, params.doc_stride,
                                      params.tokenizer.load().layout.special_tokens):
        return problem
    try:
        check_limits(OnnxRuntimeQAModel(fp32_path, {}), params.max_batch_size, params.max_seq_length)
    except ModelLimitError as error:
        return with_fitting_windows(error, params.tokenizer, params.max_query_length, params.doc_stride)
    return None


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bertqa export-onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--saved_model", help="a TensorFlow SavedModel directory")
    source.add_argument("--hf_model", help="a Hugging Face *ForQuestionAnswering checkpoint directory")
    source.add_argument("--onnx", help="an fp32 ONNX model to quantize (with --quantize=int8)")
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int,
                        help=f"default {MIN_OPSET} (--saved_model), {MIN_TORCH_OPSET} (--hf_model)")
    parser.add_argument("--signature_name", default="serving_default", help="SavedModel only")
    parser.add_argument("--input_names", default="", help="SavedModel only: role=name pairs, as for bertqa run")
    quantize = parser.add_argument_group(
        "int8", "--quantize=int8: ONNX Runtime dynamic quantization for CPU workers. --output is the int8 model; "
        "the fp32 export goes beside it as NAME.fp32.onnx. Kept only if, on a fixed sample of windows of real "
        "text cut with the job's tokenizer and window settings, at most --max_changed_spans of the windows "
        "get another best span than from the fp32 model (--hf_model writes and uses its own tokenizer.json).")
    quantize.add_argument("--quantize", choices=["none", "int8"], default="none")
    add_job_arguments(quantize, (*TOKENIZER_PARAMETERS, *GATE_PARAMETERS))
    args = parser.parse_args(list(argv))
    int8 = args.quantize == "int8"
    if args.onnx and not int8:
        parser.error("--onnx is the model to quantize: add --quantize=int8")
    if int8 and not (args.vocab_path or args.tokenizer_path or args.hf_model):
        parser.error("--quantize=int8 needs --vocab_path or --tokenizer_path (the accuracy check cuts real text "
                     "into windows)")
    fp32_path = args.onnx or (re.sub(r"(\.onnx)?$", ".fp32.onnx", args.output, count=1) if int8 else args.output)
    command, params = None, None
    if int8:
        try:  # before any export: a setting the job would refuse fails at once
            params = gate_params(args, fp32_path, **({"tokenizer_path": args.hf_model} if args.hf_model else {}))
        except ParameterError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    try:
        if args.hf_model:
            opset = args.opset or MIN_TORCH_OPSET
            export = export_checkpoint(args.hf_model, fp32_path, opset)
            if int8:
                params = gate_params(args, fp32_path, tokenizer_path=export.tokenizer_path,
                                     max_seq_length=export.max_seq_length, max_query_length=export.max_query_length,
                                     doc_stride=export.doc_stride)
            print(f"wrote {export.onnx_path} (opset {opset}); logits match PyTorch within "
                  f"{export.largest_difference:.1e}\nwrote {export.tokenizer_path}")
            command = export.run_command()
        elif args.saved_model:
            opset = args.opset or MIN_OPSET
            worst = export_onnx(args.saved_model, fp32_path, opset, args.signature_name,
                                parse_input_names(args.input_names))
            print(f"wrote {fp32_path} (opset {opset}); logits match TensorFlow within {worst:.1e}")
        if int8:
            from bertqa.backends.accuracy import AccuracyGateError

            if problem := gate_windows_problem(fp32_path, params):
                print(f"error: {problem} (the int8 check runs the model on the job's windows)", file=sys.stderr)
                return 2
            try:
                report = quantize_int8(fp32_path, args.output, params.accuracy_gate)
            except AccuracyGateError as error:
                print(f"error: {error}; {args.output} was not kept", file=sys.stderr)
                return 1
            print(f"wrote {args.output} (int8, dynamic quantization); against the fp32 model: {report.describe()}")
            if command:
                command = command.replace(shlex.quote(f"--model_path={export.onnx_path}"),
                                          shlex.quote(f"--model_path={os.path.abspath(args.output)}"))
        if command:
            print(f"run it with:\n  {command}")
    except (ExportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
