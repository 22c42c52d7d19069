"""The one interface every inference backend implements, and the Beam ModelHandler over it.

A backend only loads a model and runs one padded batch; padding to length buckets, batching,
model sharing and mapping logits back to windows live here, the same for every backend.
"""

from __future__ import annotations

import abc
from typing import Iterable, Optional, Sequence

import numpy as np
import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.transforms.util import SortAndBatchElements

from bertqa.decoding import WindowLogits
from bertqa.windows import Window, pad_batch, padded_length


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


class QAModelHandler(ModelHandler[list, tuple, QAModel]):
    """RunInference handler: lists of windows (from `batch_by_length`) in, (question_id, WindowLogits) out.

    Each list is one model call, padded only to its longest window rounded up to a multiple of 64.
    RunInference's own batching is set to one list at a time, since the lists are already batches.
    """

    def __init__(self, spec: ModelSpec, max_seq_length: int):
        super().__init__(min_batch_size=1, max_batch_size=1)
        self._spec = spec
        self._max_seq_length = max_seq_length

    def load_model(self) -> QAModel:
        model = self._spec.load()
        fixed = model.fixed_seq_length
        if fixed is not None and fixed < self._max_seq_length:
            raise ValueError(
                f"the model only accepts sequences of {fixed} tokens, shorter than "
                f"max_seq_length={self._max_seq_length}: set --max_seq_length={fixed} or lower"
            )
        return model

    def run_inference(
        self, batch: Sequence[list[Window]], model: QAModel, inference_args: Optional[dict] = None
    ) -> Iterable[tuple]:
        return [result for windows in batch for result in self._predict(windows, model)]

    @staticmethod
    def _predict(windows: Sequence[Window], model: QAModel) -> list[tuple]:
        length = padded_length(max(window.length for window in windows), model.fixed_seq_length)
        start, end = model.predict(*pad_batch(windows, length))
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
            )
            for row, window in enumerate(windows)
        ]

    def get_num_bytes(self, batch: Sequence[list[Window]]) -> int:
        return sum(window.input_ids.nbytes + window.token_type_ids.nbytes for windows in batch for window in windows)

    def get_metrics_namespace(self) -> str:
        return "bertqa"
