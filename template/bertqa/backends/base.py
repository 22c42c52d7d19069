"""The one interface every inference backend implements, and the Beam ModelHandler over it.

A backend only loads a model and runs one padded batch; padding to length buckets, batching,
model sharing, the probe of the model's limits at load, splitting a failed batch and mapping logits
back to windows live here, the same for every backend.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import time
from typing import Iterable, Optional, Sequence

import numpy as np
import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.transforms.util import SortAndBatchElements

from bertqa.decoding import WindowLogits
from bertqa.windows import PAD_MULTIPLE, Window, pad_batch, padded_length


class QAModel(abc.ABC):
    """A loaded extractive-QA model: token ids in, per-token start and end logits out."""

    @property
    def fixed_seq_length(self) -> int | None:
        """The sequence length the model only accepts, or None when any length works."""
        return None

    @abc.abstractmethod
    def predict(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """[batch, seq] int32 inputs -> ([batch, seq] start logits, [batch, seq] end logits)."""

    @abc.abstractmethod
    def gpu_unavailable(self) -> str | None:
        """Why this model does not run on a GPU (the backend's own words), or None when it does."""


class GpuUnavailableError(RuntimeError):
    """A GPU worker's model would run on the CPU: the job fails instead of running slowly on a paid GPU."""


class ModelLimitError(ValueError):
    """The model cannot run the windows or batches the parameters ask for; the message says which to change."""


@dataclasses.dataclass(frozen=True)
class WindowFailure:
    """A window the model failed on even alone (its question goes to the dead letters)."""

    index: int
    reason: str


def short_error(error: BaseException, limit: int = 300) -> str:
    """An exception as one short line (a dead-letter reason); the whole text belongs in the log."""
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sample_inputs(batch: int, length: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids below 100 (inside any BERT vocab), some rows padded, question and passage segments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 100, size=(batch, length), dtype=np.int32)
    mask = np.ones_like(ids)
    types = np.zeros_like(ids)
    for row in range(batch):
        real = length - row * (length // (2 * batch))
        ids[row, real:] = 0
        mask[row, real:] = 0
        types[row, real // 3: real] = 1
    return ids, mask, types


def probe_limits(model: "QAModel", max_batch_size: int, max_seq_length: int) -> None:
    """Runs the model once on the longest window and once on the largest batch the job can send.

    Raises ModelLimitError naming the parameter to change: for a window too long, the longest
    length (a multiple of 64) the model does take, so that no job finds out window by window.
    """
    length = padded_length(max_seq_length, model.fixed_seq_length)
    try:
        model.predict(*sample_inputs(1, length))
    except Exception as error:
        works = [shorter for shorter in range(length - PAD_MULTIPLE, 0, -PAD_MULTIPLE) if _runs(model, 1, shorter)]
        advice = (f"the longest it takes is {works[0]} tokens: set --max_seq_length={works[0]} or lower" if works
                  else f"it failed at every multiple of {PAD_MULTIPLE} tokens too")
        raise ModelLimitError(f"--max_seq_length={max_seq_length}: the model fails on a window of {length} tokens "
                              f"({short_error(error)}); {advice}") from error
    if max_batch_size > 1:
        try:
            model.predict(*sample_inputs(max_batch_size, length))
        except Exception as error:
            raise ModelLimitError(
                f"--max_batch_size={max_batch_size}: the model fails on a batch of {max_batch_size} windows of "
                f"{length} tokens ({short_error(error)}); lower --max_batch_size") from error


def _runs(model: "QAModel", batch: int, length: int) -> bool:
    try:
        model.predict(*sample_inputs(batch, length))
        return True
    except Exception:
        return False


class ModelSpec(abc.ABC):
    """Picklable description of a model to load on a worker (one per backend)."""

    @abc.abstractmethod
    def load(self) -> QAModel: ...


def batch_by_length(max_batch_size: int, max_seq_length: int) -> beam.PTransform:
    """Windows -> lists of windows of similar length (sorted within each bundle, Beam's
    SortAndBatchElements), at most `max_batch_size` windows and that many full windows' tokens."""
    return SortAndBatchElements(
        min_batch_size=1,
        max_batch_size=max_batch_size,
        max_batch_weight=max_batch_size * padded_length(max_seq_length),
        element_size_fn=lambda window: padded_length(window.length),
    )


def load_checked(spec: ModelSpec, max_batch_size: int, max_seq_length: int, require_gpu: bool = False) -> QAModel:
    """The model, loaded and probed at the job's largest window and batch (ModelLimitError if it cannot).

    With `require_gpu`, a model that would run on the CPU raises GpuUnavailableError naming the reason.
    """
    model = spec.load()
    if require_gpu and (reason := model.gpu_unavailable()):
        raise GpuUnavailableError(f"this worker has a GPU (--gpu_type) but the model would run on the CPU: {reason}")
    fixed = model.fixed_seq_length
    if fixed is not None and fixed < max_seq_length:
        raise ModelLimitError(f"--max_seq_length={max_seq_length}: the model only accepts sequences of {fixed} "
                              f"tokens; set --max_seq_length={fixed} or lower")
    probe_limits(model, max_batch_size, max_seq_length)
    return model


def predict_windows(windows: Sequence[Window], model: QAModel) -> list[tuple]:
    """(question_id, WindowLogits, model seconds per window) for one model call on `windows`."""
    length = padded_length(max(window.length for window in windows), model.fixed_seq_length)
    inputs = pad_batch(windows, length)
    started = time.perf_counter()
    start, end = model.predict(*inputs)
    share = (time.perf_counter() - started) / len(windows)
    return [
        (
            window.question_id,
            WindowLogits(
                index=window.index,
                context_start=window.context_start,
                doc_offset=window.doc_offset,
                max_context=window.max_context,
                start_logits=np.asarray(start[row, : window.length], dtype=np.float32),
                end_logits=np.asarray(end[row, : window.length], dtype=np.float32),
            ),
            share,
        )
        for row, window in enumerate(windows)
    ]


class QAModelHandler(ModelHandler[list, tuple, QAModel]):
    """RunInference handler: lists of windows (from `batch_by_length`) in, (question_id, WindowLogits,
    model seconds) out, the seconds being the window's share of its model call (for the summary).

    Each list is one model call, padded only to its longest window rounded up to a multiple of 64.
    RunInference's own batching is set to one list at a time, since the lists are already batches.
    A batch the model fails on is split in halves and retried, so that only windows that fail on their
    own come back as (question_id, WindowFailure, 0.0).
    """

    def __init__(self, spec: ModelSpec, max_seq_length: int, max_batch_size: int, require_gpu: bool = False):
        super().__init__(min_batch_size=1, max_batch_size=1)
        self._spec = spec
        self._max_seq_length = max_seq_length
        self._max_batch_size = max_batch_size
        self._require_gpu = require_gpu

    def load_model(self) -> QAModel:
        return load_checked(self._spec, self._max_batch_size, self._max_seq_length, self._require_gpu)

    def run_inference(
        self, batch: Sequence[list[Window]], model: QAModel, inference_args: Optional[dict] = None
    ) -> Iterable[tuple]:
        return [result for windows in batch for result in self._predict_or_split(windows, model)]

    def _predict_or_split(self, windows: Sequence[Window], model: QAModel) -> list[tuple]:
        try:
            return predict_windows(windows, model)
        except Exception as error:
            if len(windows) == 1:
                (window,) = windows
                logging.warning("inference failed on window %d of question %r (%d tokens): %s", window.index,
                                window.question_id, window.length, error)
                return [(window.question_id, WindowFailure(window.index, f"inference failed on window "
                                                           f"{window.index} ({window.length} tokens): "
                                                           f"{short_error(error)}"), 0.0)]
            half = len(windows) // 2
            return self._predict_or_split(windows[:half], model) + self._predict_or_split(windows[half:], model)

    def get_num_bytes(self, batch: Sequence[list[Window]]) -> int:
        return sum(window.input_ids.nbytes + window.token_type_ids.nbytes for windows in batch for window in windows)

    def get_metrics_namespace(self) -> str:
        return "bertqa"
