"""Models called with named arrays (TensorFlow signatures, ONNX Runtime, TensorRT via Polygraphy).

Finds which input is which (Hugging Face, Google BERT / NVIDIA NGC and TF Hub / Model Garden
conventions, or an explicit mapping; a model with only token ids and a mask gets no segment ids), fills
extra integer inputs such as NGC's `unique_ids`, casts
to the declared dtypes, and reads the start/end logits by name (or from one [batch, seq, 2, ...] tensor).
"""

from __future__ import annotations

import abc
from typing import Mapping, Sequence

import numpy as np

from bertqa.backends.base import QAModel

# Each role's known input names, most common first.
KNOWN_INPUT_NAMES = {
    "input_ids": ("input_ids", "input_word_ids"),
    "attention_mask": ("attention_mask", "input_mask"),
    "token_type_ids": ("token_type_ids", "segment_ids", "input_type_ids"),
}

Shape = Sequence  # dims: int, or None / a name for dynamic ones


class SignatureError(ValueError):
    """The model's inputs or outputs are not ones this project can call."""


def resolve_inputs(available: Sequence[str], explicit: Mapping[str, str]) -> dict[str, str]:
    """role -> model input name, from the explicit mapping or the known conventions."""
    roles = {}
    for role, known in KNOWN_INPUT_NAMES.items():
        if role in explicit:
            if explicit[role] not in available:
                raise SignatureError(
                    f"input_names maps {role} to '{explicit[role]}', which the model does not have; "
                    f"it has: {', '.join(sorted(available))}"
                )
            roles[role] = explicit[role]
            continue
        found = [name for name in known if name in available]
        if not found and role == "token_type_ids" and not set(available) - set(roles.values()):
            continue  # a model without segments (RoBERTa, DistilBERT, as Optimum exports them): none are fed
        if not found:
            raise SignatureError(
                f"cannot find the {role} input (tried {', '.join(known)}); the model has inputs: "
                f"{', '.join(sorted(available))}. Map them with --input_names=role=name,..."
            )
        roles[role] = found[0]
    return roles


def resolve_outputs(outputs: Mapping[str, Shape | None]) -> tuple[str, ...]:
    """(start name, end name), or (name,) of one [batch, seq, 2, ...] logits tensor."""
    if "start_logits" in outputs and "end_logits" in outputs:
        return ("start_logits", "end_logits")
    starts = [name for name in outputs if "start" in name]
    ends = [name for name in outputs if "end" in name]
    if len(starts) == 1 and len(ends) == 1 and starts != ends:
        return (starts[0], ends[0])
    if len(outputs) == 1:
        ((name, shape),) = outputs.items()
        if shape is not None and [d for d in list(shape)[2:] if d != 1] == [2]:
            return (name,)
    described = ", ".join(f"{name} {list(shape) if shape is not None else '?'}" for name, shape in sorted(outputs.items()))
    raise SignatureError(
        "cannot find the start and end logits: expected outputs start_logits and end_logits, "
        f"or one tensor shaped [batch, seq, 2, ...]; the model has outputs: {described}"
    )


class NamedIOModel(QAModel):
    """A QAModel over a callable that takes and returns dicts of named numpy arrays."""

    def __init__(
        self,
        inputs: Mapping[str, tuple[np.dtype, Shape]],
        outputs: Mapping[str, Shape | None],
        input_names: Mapping[str, str],
    ):
        self._inputs = dict(inputs)
        self._roles = resolve_inputs(list(inputs), input_names)
        self._outputs = resolve_outputs(outputs)
        self._extras = sorted(set(inputs) - set(self._roles.values()))
        for name in self._extras:
            if not np.issubdtype(inputs[name][0], np.integer):
                raise SignatureError(f"cannot fill extra input '{name}' of type {np.dtype(inputs[name][0]).name}")

    @abc.abstractmethod
    def call(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """Runs the model on named inputs; returns (at least) the named outputs."""

    @property
    def fixed_seq_length(self) -> int | None:
        shape = self._inputs[self._roles["input_ids"]][1]
        return shape[1] if len(shape) >= 2 and isinstance(shape[1], int) and shape[1] > 0 else None

    def predict(self, input_ids, attention_mask, token_type_ids):
        arrays = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feeds = {self._roles[role]: array.astype(self._inputs[self._roles[role]][0], copy=False)
                 for role, array in arrays.items() if role in self._roles}
        batch = input_ids.shape[0]
        for name in self._extras:
            dtype, shape = self._inputs[name]
            dims = [batch] + [d if isinstance(d, int) and d > 0 else 1 for d in list(shape)[1:]]
            feeds[name] = np.zeros(dims, dtype=dtype)
        outputs = self.call(feeds)
        if len(self._outputs) == 2:
            start, end = (np.asarray(outputs[name]) for name in self._outputs)
        else:
            combined = np.asarray(outputs[self._outputs[0]])
            combined = combined.reshape(combined.shape[0], combined.shape[1], 2)
            start, end = combined[..., 0], combined[..., 1]
        return start.reshape(batch, -1), end.reshape(batch, -1)
