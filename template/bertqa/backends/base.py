"""The one interface every inference backend implements, and the Beam ModelHandler over it.

A backend only loads a model and runs one padded batch; making windows from featurized questions,
sorting them into length-bucketed model calls, model sharing, the probe of the model's limits at load,
splitting a failed call and mapping logits back to windows live here, the same for every backend.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import logging
import time
import uuid
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.transforms.util import SortAndBatchElements

from bertqa.backends.sharing import machine_model
from bertqa.qa.decoding import PackedWindows, WindowLogits
from bertqa.qa.windows import (PAD_MULTIPLE, FeaturizedQuestion, WindowOf, max_context_masks, pad_windows_of,
                               padded_length)


def _not_beams_memory_note(record: logging.LogRecord) -> bool:
    # RunInference logs this at every model load when its optional ModelManager (which needs scipy, not
    # in the image) cannot be imported; the memory figure it would read is not one the job uses.
    return not record.getMessage().startswith("Resource module is not available for current platform")


logging.getLogger().addFilter(_not_beams_memory_note)  # in every process that unpickles the handler


class QAModel(abc.ABC):
    """A loaded extractive-QA model: token ids in, per-token start and end logits out."""

    @property
    def fixed_seq_length(self) -> int | None:
        """The sequence length the model only accepts, or None when any length works."""
        return None

    def input_length(self, longest: int) -> int:
        """The length a batch whose longest window has `longest` tokens is padded to. A method, not a
        property, so that it answers through Beam's cross-process model proxy too."""
        return padded_length(longest, self.fixed_seq_length)

    @abc.abstractmethod
    def predict(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """[batch, seq] int32 inputs -> ([batch, seq] start logits, [batch, seq] end logits)."""

    def predict_calls(self, calls: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
                      ) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """`predict` on each call's inputs in turn: (start logits, end logits, seconds it took) per call. One
        method for all of a list's calls, so that a shared model answers them in one round trip."""
        found = []
        for inputs in calls:
            started = time.perf_counter()
            start, end = self.predict(*inputs)
            found.append((np.asarray(start, np.float32), np.asarray(end, np.float32), time.perf_counter() - started))
        return found

    @abc.abstractmethod
    def gpu_unavailable(self) -> str | None:
        """Why this model does not run on a GPU (the backend's own words), or None when it does."""


class GpuUnavailableError(RuntimeError):
    """A GPU worker's model would run on the CPU: the job fails instead of running slowly on a paid GPU."""


class ModelLimitError(ValueError):
    """The model cannot run the windows or batches the parameters ask for; the message says which to change.
    `longest`: the longest window the model does take, where windows are what it cannot run."""

    def __init__(self, message: str, longest: int | None = None):
        super().__init__(message)
        self.longest = longest


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
    """Token ids 5 to 99 (inside any vocab, past the padding and special tokens at its start: RoBERTa numbers
    positions by counting what is not its padding id, 1), some rows padded, question and passage segments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 100, size=(batch, length), dtype=np.int32)
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
    length (a multiple of 64) the model does take, so that no job finds out window by window; and
    ModelOutputError where the model's outputs are not a start and an end logit per token.
    """
    length = padded_length(max_seq_length, model.fixed_seq_length)
    inputs = sample_inputs(1, length)
    try:
        outputs = model.predict(*inputs)
    except Exception as error:
        works = [shorter for shorter in range(length - PAD_MULTIPLE, 0, -PAD_MULTIPLE) if _runs(model, 1, shorter)]
        advice = (f"the longest it takes is {works[0]} tokens: set --max_seq_length={works[0]} or lower" if works
                  else f"it failed at every multiple of {PAD_MULTIPLE} tokens too")
        raise ModelLimitError(f"--max_seq_length={max_seq_length}: the model fails on a window of {length} tokens "
                              f"({short_error(error)}); {advice}", works[0] if works else None) from error
    checked_logits(*outputs, inputs[0])
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


# A list of questions for the model step holds this many model calls' worth of windows, so that sorting
# its windows by length gives full, evenly padded calls.
CALLS_PER_LIST = 4


def batch_questions(max_batch_size: int, max_seq_length: int) -> beam.PTransform:
    """Featurized questions -> lists of questions whose windows are of similar lengths (sorted within each
    bundle, Beam's SortAndBatchElements), about CALLS_PER_LIST full model calls of tokens each."""
    return SortAndBatchElements(
        min_batch_size=1,
        max_batch_size=CALLS_PER_LIST * max_batch_size,
        max_batch_weight=CALLS_PER_LIST * max_batch_size * padded_length(max_seq_length),
        element_size_fn=padded_tokens,
    )


def padded_tokens(question: FeaturizedQuestion) -> int:
    """The tokens of a question's windows, each padded as the model step pads it."""
    return sum(padded_length(length) for length in question.window_lengths())


class MachineModel(QAModel):
    """The machine's shared model as one SDK process sees it: each call goes to the model's process. When that
    process has gone (it ends with the SDK process that started it, and Dataflow restarts SDK processes), the
    call starts the model again and is retried once, instead of failing every later batch of the job."""

    def __init__(self, load: Callable[[], QAModel], tag: str):
        self._load, self._tag = load, tag
        self._proxy = machine_model(load, tag)
        self._input_lengths: dict[int, int] = {}

    def _call(self, name: str, *args):
        try:
            return getattr(self._proxy, name)(*args)
        except (EOFError, OSError) as error:  # connection refused, reset or broken: the model's process is gone
            logging.warning("the shared model's process is gone (%s); starting it again", error)
            self._proxy = machine_model(self._load, self._tag)
            return getattr(self._proxy, name)(*args)

    def predict(self, input_ids, attention_mask, token_type_ids):
        return self._call("predict", input_ids, attention_mask, token_type_ids)

    def predict_calls(self, calls):
        # Timed in the model's process: the model alone, without the round trip.
        return self._call("predict_calls", calls)

    def input_length(self, longest: int) -> int:
        # Asked before every model call, and the same model always answers the same: a round trip saved.
        if longest not in self._input_lengths:
            self._input_lengths[longest] = self._call("input_length", longest)
        return self._input_lengths[longest]

    def gpu_unavailable(self) -> str | None:
        return self._call("gpu_unavailable")


def load_checked(spec: ModelSpec, max_batch_size: int, max_seq_length: int, require_gpu: bool = False) -> QAModel:
    """The model, loaded and probed at the job's largest window and batch (ModelLimitError if it cannot).

    With `require_gpu`, a model that would run on the CPU raises GpuUnavailableError naming the reason.
    """
    model = spec.load()
    if require_gpu and (reason := model.gpu_unavailable()):
        raise GpuUnavailableError(f"this worker has a GPU (--gpu_type) but the model would run on the CPU: {reason}")
    check_limits(model, max_batch_size, max_seq_length)
    return model


def check_limits(model: "QAModel", max_batch_size: int, max_seq_length: int) -> None:
    """ModelLimitError where the model cannot take the job's largest window or batch (see probe_limits)."""
    fixed = model.fixed_seq_length
    if fixed is not None and fixed < max_seq_length:
        raise ModelLimitError(f"--max_seq_length={max_seq_length}: the model only accepts sequences of {fixed} "
                              f"tokens; set --max_seq_length={fixed} or lower", fixed)
    probe_limits(model, max_batch_size, max_seq_length)


class ModelOutputError(ValueError):
    """The model's outputs are not one start and one end logit per token of its inputs."""


def checked_logits(start: np.ndarray, end: np.ndarray, input_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The logits, or ModelOutputError where their shape is not the inputs' ([batch, seq] each): a model whose
    outputs are something else (another head, a pooled score) would fail later with an error about broadcasting."""
    if np.shape(start) != input_ids.shape or np.shape(end) != input_ids.shape:
        raise ModelOutputError(f"the model returned start and end logits of shapes {list(np.shape(start))} and "
                               f"{list(np.shape(end))} for inputs of shape {list(input_ids.shape)}: not one start and "
                               "one end logit per token (is it an extractive QA model?)")
    return start, end


def model_call(windows: Sequence[WindowOf], model: QAModel) -> tuple[np.ndarray, np.ndarray, float]:
    """One model call on `windows` padded together: (start logits, end logits, model seconds per window)."""
    inputs = call_inputs(windows, model)
    start, end, took = model.predict_calls([inputs])[0]
    return (*checked_logits(start, end, inputs[0]), took / len(windows))


def call_inputs(windows: Sequence[WindowOf], model: QAModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The padded inputs of one model call on `windows`, at the length the model wants for the longest."""
    return pad_windows_of(windows, model.input_length(max(window.length for window in windows)))


def window_rows(start: np.ndarray, end: np.ndarray, seconds_per_window: float, windows: int) -> list[tuple]:
    """A model call's logits as (start logits row, end logits row, model seconds) for each of its windows."""
    return [(start[row], end[row], seconds_per_window) for row in range(windows)]


@dataclasses.dataclass
class ListResult:
    """What the model step returns for one list of questions: all their windows' logits packed in one array
    (question after question, each one's windows in order), and per question the reason a window failed."""

    questions: list[FeaturizedQuestion]
    logits: np.ndarray  # float32 [2, sum of all window lengths]: start, end logits
    failures: list[str | None]  # per question: the first failed window's reason (to the dead letters), or None
    model_seconds: list[float]  # per question: its share of its model calls

    @property
    def windows(self) -> int:
        return sum(len(question.spans) for question in self.questions)

    @functools.cached_property
    def _question_starts(self) -> list[int]:
        """Where each question's logits begin in `logits`."""
        return np.cumsum([0] + [sum(question.window_lengths()) for question in self.questions]).tolist()

    def packed_windows(self, positions: Sequence[int]) -> PackedWindows:
        """The windows of the questions at `positions` (in that order), for decoding them together."""
        firsts = self._question_starts
        starts, lengths, context_starts, doc_offsets, doc_lengths, masks, counts = [], [], [], [], [], [], []
        for position in positions:
            question, offset = self.questions[position], firsts[position]
            for (doc_offset, doc_length), length in zip(question.spans, question.window_lengths()):
                starts.append(offset)
                lengths.append(length)
                context_starts.append(question.context_start)
                doc_offsets.append(doc_offset)
                doc_lengths.append(doc_length)
                offset += length
            masks += max_context_masks(question.spans)
            counts.append(len(question.spans))
        return PackedWindows(self.logits, *(np.array(values, np.int64) for values in
                                            (starts, lengths, context_starts, doc_offsets, doc_lengths)),
                             np.concatenate(masks), np.array(counts, np.int64))

    def window_logits(self, position: int) -> list[WindowLogits]:
        """The windows of the question at `position`, each with its own logits."""
        packed = self.packed_windows([position])
        masks = max_context_masks(self.questions[position].spans)
        return [WindowLogits(index, int(packed.context_starts[index]), int(packed.doc_offsets[index]), mask,
                             *self.logits[:, packed.starts[index]:packed.starts[index] + packed.lengths[index]])
                for index, mask in enumerate(masks)]

    def __reduce__(self):
        # Across a stage boundary: a tuple of bytes and plain values, not a pickled dataclass of arrays.
        return _list_result, (self.questions, self.logits.tobytes(), self.failures, self.model_seconds)


def _list_result(questions, logits, failures, model_seconds) -> ListResult:
    return ListResult(questions, np.frombuffer(logits, np.float32).reshape(2, -1), failures, model_seconds)


def infer_questions(questions: Sequence[FeaturizedQuestion], model: QAModel, max_batch_size: int) -> ListResult:
    """The model on every window of `questions`, as the job runs it: the windows sorted by length and cut into
    calls of at most max_batch_size windows, each padded to its longest (QAModelHandler; the accuracy gate)."""
    # Each window, with where its logits go in the packed array.
    places, offset = [], 0
    for position, question in enumerate(questions):
        for index, length in enumerate(question.window_lengths()):
            places.append((position, WindowOf(question, index), offset, length))
            offset += length
    places.sort(key=lambda place: padded_length(place[3]))
    logits = np.zeros((2, offset), np.float32)
    failures: list[str | None] = [None] * len(questions)
    seconds = [0.0] * len(questions)
    calls = [places[first:first + max_batch_size] for first in range(0, len(places), max_batch_size)]
    for call, results in zip(calls, _infer_calls([[place[1] for place in call] for call in calls], model)):
        for (position, _, offset, length), result in zip(call, results):
            if isinstance(result, WindowFailure):
                failures[position] = failures[position] or result.reason
                continue
            start, end, share = result
            logits[0, offset:offset + length] = start[:length]
            logits[1, offset:offset + length] = end[:length]
            seconds[position] += share
    return ListResult(list(questions), logits, failures, seconds)


def _infer_calls(calls: list[list[WindowOf]], model: QAModel) -> list[list]:
    """`_infer` for each call, all of them asked of the model at once; where that fails, call by call."""
    try:
        inputs = [call_inputs(windows, model) for windows in calls]
        outputs = [(*checked_logits(start, end, ids), took)
                   for (ids, _, _), (start, end, took) in zip(inputs, model.predict_calls(inputs))]
    except Exception:  # the failed call's windows are found by _infer's halving
        return [_infer(windows, model) for windows in calls]
    return [window_rows(start, end, took / len(windows), len(windows))
            for windows, (start, end, took) in zip(calls, outputs)]


def _infer(windows: Sequence[WindowOf], model: QAModel) -> list:
    """Per window, (start logits row, end logits row, model seconds) or, for a window the model fails on even
    alone, a WindowFailure: a failed call is split in halves and retried."""
    try:
        return window_rows(*model_call(windows, model), len(windows))
    except Exception as error:
        if len(windows) == 1:
            (window,) = windows
            logging.warning("inference failed on window %d of question %r (%d tokens): %s", window.index,
                            window.question_id, window.length, error)
            return [WindowFailure(window.index, f"inference failed on window {window.index} "
                                                f"({window.length} tokens): {short_error(error)}")]
        half = len(windows) // 2
        return _infer(windows[:half], model) + _infer(windows[half:], model)


class QAModelHandler(ModelHandler[list, tuple, QAModel]):
    """RunInference handler: lists of featurized questions (from `batch_questions`) in, a ListResult per list
    out (its windows' logits packed in one array, and the reason where a question's window failed).

    The windows of all the questions of a list are sorted by length and cut into model calls of at most
    max_batch_size windows, each padded only to its longest window rounded up to a multiple of 64.
    RunInference's own batching is set to one list at a time, since the lists are already batched.
    A call the model fails on is split in halves and retried, so that only windows that fail on their
    own come back as failures.
    """

    def __init__(self, spec: ModelSpec, max_seq_length: int, max_batch_size: int, require_gpu: bool = False,
                 share_across_processes: bool = False):
        super().__init__(min_batch_size=1, max_batch_size=1)
        self._spec = spec
        self._max_seq_length = max_seq_length
        self._max_batch_size = max_batch_size
        self._require_gpu = require_gpu
        # One model copy per machine (sharing.machine_model), named for this job: each SDK process's
        # RunInference then holds a proxy to it instead of a copy.
        self._machine_tag = f"bertqa-model-{uuid.uuid4().hex}" if share_across_processes else None

    def load_model(self) -> QAModel:
        load = functools.partial(load_checked, self._spec, self._max_batch_size, self._max_seq_length,
                                 self._require_gpu)
        return MachineModel(load, self._machine_tag) if self._machine_tag else load()

    def run_inference(
        self, batch: Sequence[list[FeaturizedQuestion]], model: QAModel, inference_args: Optional[dict] = None
    ) -> Iterable[ListResult]:
        return [self.infer_questions(questions, model) for questions in batch]

    def infer_questions(self, questions: Sequence[FeaturizedQuestion], model: QAModel) -> ListResult:
        return infer_questions(questions, model, self._max_batch_size)

    def get_num_bytes(self, batch: Sequence[list[FeaturizedQuestion]]) -> int:
        return sum(question.query_ids.nbytes + question.passage.token_ids.nbytes for questions in batch
                   for question in questions)

    def get_metrics_namespace(self) -> str:
        return "bertqa"
