"""PyTorch backend: a Hugging Face `*ForQuestionAnswering` checkpoint run with transformers, on CUDA when present.

- `--model_path` is a checkpoint directory as `save_pretrained` writes it (config.json, model.safetensors or
  pytorch_model.bin, tokenizer.json), local or gs://. A gs:// checkpoint is copied once per machine, its weights
  in one format (safetensors where it has them), whatever the number of SDK processes.
- No export step: any architecture transformers has a question-answering head for (BERT, RoBERTa, DeBERTa-v2/v3,
  ALBERT, XLM-R, ELECTRA, DistilBERT, ...), loaded with `AutoModelForQuestionAnswering` in the job's precision
  (fp32 on the CPU; fp16 or bf16 on a GPU, `auto` = fp16 there) with PyTorch's scaled-dot-product attention where
  the architecture has it.
- Inputs are bound by the names the model's `forward` takes: token type ids only where the model has a segment
  embedding of more than one segment (BERT, ALBERT, ELECTRA; not RoBERTa, XLM-R, DistilBERT or DeBERTa-v3).
- Token ids the model has no embedding for are refused on the CPU, before the call: on a GPU, an embedding lookup
  out of range is a device-side assert, which breaks the process's CUDA context for every later batch.
- fp16 and bf16 must pass the accuracy gate (`accuracy.py`) against the same checkpoint in fp32 on the same GPU.
- At most two calls are in flight on a GPU (one on the CPU), whatever the number of threads and processes
  calling: GPU memory holds at most two batches' activations.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import threading

import numpy as np

from bertqa.backends.accuracy import AccuracyGate
from bertqa.backends.base import ModelSpec, QAModel
from bertqa.io.files import localize_dir

CALLS_IN_FLIGHT_GPU = 2

# Weight files transformers can load, besides safetensors; a checkpoint that has safetensors needs none of them.
_OTHER_WEIGHTS = (".bin", ".h5", ".msgpack", ".ckpt", ".pt", ".pth", ".onnx", ".ot", ".index")


def checkpoint_files(names: list[str]) -> list[str]:
    """Of a checkpoint directory's files (relative names), those transformers loads it from: the top-level files,
    with safetensors weights where there are any (PyTorch's pickled weights otherwise), not the other frameworks'
    weights or sub-directories (onnx/, runs/) that hub checkpoints often carry too."""
    top = [name for name in names if "/" not in name]
    safetensors = any(name.endswith(".safetensors") for name in top)

    def wanted(name: str) -> bool:
        if name.endswith(".safetensors") or name == "model.safetensors.index.json":
            return True
        if name.startswith("pytorch_model") and (name.endswith(".bin") or name.endswith(".bin.index.json")):
            return not safetensors
        return not name.endswith(_OTHER_WEIGHTS)

    return [name for name in top if wanted(name)]


def takes_segments(model) -> bool:
    """Whether the model is given token type ids: its forward takes them and it embeds more than one segment
    (RoBERTa's table has one row, so only zeros are valid there; DeBERTa-v3 has none)."""
    forward = inspect.signature(model.forward).parameters  # through transformers' decorators
    return "token_type_ids" in forward and int(getattr(model.config, "type_vocab_size", 2) or 0) > 1


def torch_dtype(precision: str, device: str):
    """The torch dtype of --precision on `device`; ValueError for a precision this device has no math for."""
    import torch

    if device == "cpu":
        if precision in ("fp16", "bf16"):
            raise ValueError(f"--precision={precision} needs a GPU, and PyTorch sees none on this machine "
                             "(torch.cuda.is_available() is False): use --precision=fp32 or auto")
        return torch.float32
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name()
        raise ValueError(f"--precision=bf16: the {name} has no bf16 math (compute capability "
                         f"{'.'.join(map(str, torch.cuda.get_device_capability()))}); use --precision=fp16")
    return {"auto": torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]


def load_checkpoint(directory: str, dtype, attention: str = "sdpa"):
    """The checkpoint's QA model in `dtype`, with `attention` (scaled-dot-product by default) where its architecture
    has it. ValueError for a checkpoint that lacks weights the model needs: transformers would start them at random
    (a base model without a fine-tuned question-answering head answers at random, without an error)."""
    import transformers

    if not os.path.isfile(os.path.join(directory, "config.json")):
        raise ValueError(f"{directory} is not a Hugging Face checkpoint directory (no config.json); save one with "
                         "save_pretrained(DIR) or `hf download NAME --local-dir DIR`")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    load = dict(local_files_only=True, dtype=dtype, output_loading_info=True)
    try:
        model, info = transformers.AutoModelForQuestionAnswering.from_pretrained(
            directory, attn_implementation=attention, **load)
    except ValueError as error:
        if "sdpa" not in str(error).lower() and "scaled_dot_product" not in str(error).lower():
            raise
        logging.info("%s has no scaled-dot-product attention in transformers %s; its own attention is used",
                     directory, transformers.__version__)
        model, info = transformers.AutoModelForQuestionAnswering.from_pretrained(directory, **load)
    missing = sorted(info["missing_keys"])
    if missing:
        head = [key for key in missing if key.startswith("qa_outputs")]
        raise ValueError(
            f"the checkpoint lacks {len(missing)} weight(s) the model needs ({', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''})" + (
                ": it has no question-answering head, so it is a base model, not one fine-tuned for extractive QA "
                "(SQuAD)" if head else ""))
    return model


class PyTorchQAModel(QAModel):
    def __init__(self, directory: str, precision: str = "auto", threads: int = 0, device: str | None = None):
        import torch

        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch_dtype(precision, self.device)
        if self.device == "cpu" and threads:
            torch.set_num_threads(threads)  # one SDK process per vCPU: a thread each, not one per core each
        self._model = load_checkpoint(directory, self.dtype).to(self.device).eval()
        config = self._model.config
        self._segments = takes_segments(self._model)
        # Calls in flight at once: a GPU runs one process's kernels in turn on its default stream, so two keep it
        # busy, and each call in flight holds its batch's activations (on a shared model, every SDK process calls).
        self._in_flight = threading.BoundedSemaphore(CALLS_IN_FLIGHT_GPU if self.device != "cpu" else 1)
        self._vocab_size = int(config.vocab_size)
        self._type_vocab_size = int(getattr(config, "type_vocab_size", 0) or 0)
        logging.info("PyTorch model %s (%s) on %s in %s, %s attention, token type ids %s", directory,
                     type(self._model).__name__, self.device, str(self.dtype).removeprefix("torch."),
                     getattr(config, "_attn_implementation", "?"), "given" if self._segments else "not given")

    def _tensor(self, array: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).to(self.device)

    def predict(self, input_ids, attention_mask, token_type_ids):
        largest = int(input_ids.max(initial=0))
        if largest >= self._vocab_size or int(input_ids.min(initial=0)) < 0:
            raise ValueError(f"token id {largest} is outside the model's vocabulary of {self._vocab_size}: the "
                             "tokenizer is not this model's")
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._segments:
            if int(token_type_ids.max(initial=0)) >= self._type_vocab_size:
                raise ValueError(f"segment id {int(token_type_ids.max())} is outside the model's "
                                 f"{self._type_vocab_size} segments")
            feeds["token_type_ids"] = token_type_ids
        with self._in_flight, self._torch.inference_mode():
            output = self._model(**{name: self._tensor(array) for name, array in feeds.items()})
            return (output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy())

    def gpu_unavailable(self) -> str | None:
        torch = self._torch
        if self.device != "cpu":
            return None
        if torch.version.cuda is None:
            return f"torch {torch.__version__} is a CPU-only build"
        return (f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) sees no GPU: "
                "torch.cuda.is_available() is False (no driver or device: see the worker log)")

    def release(self) -> None:
        """Frees the model's memory now (the accuracy gate's fp32 reference, once it has been compared)."""
        del self._model
        if self.device != "cpu":
            self._torch.cuda.empty_cache()


@dataclasses.dataclass(frozen=True)
class PyTorchModelSpec(ModelSpec):
    path: str  # a checkpoint directory, local or gs://
    precision: str = "auto"
    threads: int = 0  # intra-op threads on the CPU (backends.threads_per_process); 0: PyTorch's default
    gate: AccuracyGate | None = None  # fp16 and bf16 are checked against fp32 with it

    def load(self) -> QAModel:
        directory = localize_dir(self.path, checkpoint_files)
        model = PyTorchQAModel(directory, self.precision, self.threads)
        if model.dtype != model._torch.float32 and self.gate is not None:
            reference = PyTorchQAModel(directory, "fp32", device=model.device)
            try:
                name = {model._torch.float16: "fp16", model._torch.bfloat16: "bf16"}[model.dtype]
                report = self.gate.check(reference, model, f"the PyTorch {name} model")
            finally:
                reference.release()
            logging.info("PyTorch %s model accepted against fp32: %s", name, report.describe())
        return model
