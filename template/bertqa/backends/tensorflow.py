"""TensorFlow backend: a SavedModel loaded with `tf.saved_model.load`, on GPU when one is visible.

Input names are found from the signature (Hugging Face, Google BERT / NVIDIA NGC and TF Hub /
Model Garden conventions) or given explicitly; extra integer inputs (NGC's `unique_ids`) are filled.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from bertqa.backends.base import ModelSpec, QAModel
from bertqa.files import localize_dir

# Each role's known input names, most common first.
KNOWN_INPUT_NAMES = {
    "input_ids": ("input_ids", "input_word_ids"),
    "attention_mask": ("attention_mask", "input_mask"),
    "token_type_ids": ("token_type_ids", "segment_ids", "input_type_ids"),
}


class SignatureError(ValueError):
    """The SavedModel's signature is not one this backend can call."""


def _configure_gpus(tf) -> None:
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: growth was set then
            pass


def resolve_inputs(input_specs: dict, explicit: dict[str, str]) -> dict[str, str]:
    """role -> signature input name, from the explicit mapping or the known conventions."""
    roles = {}
    for role, known in KNOWN_INPUT_NAMES.items():
        if role in explicit:
            if explicit[role] not in input_specs:
                raise SignatureError(
                    f"input_names maps {role} to '{explicit[role]}', which the signature does not have; "
                    f"it has: {', '.join(sorted(input_specs))}"
                )
            roles[role] = explicit[role]
            continue
        found = [name for name in known if name in input_specs]
        if not found:
            raise SignatureError(
                f"cannot find the {role} input (tried {', '.join(known)}); the signature has inputs: "
                f"{', '.join(sorted(input_specs))}. Map them with --input_names=role=name,..."
            )
        roles[role] = found[0]
    return roles


def resolve_outputs(output_specs: dict) -> tuple[str, ...]:
    """(start name, end name) or (combined name,) for a single [B, S, 2, ...] logits tensor."""
    if "start_logits" in output_specs and "end_logits" in output_specs:
        return ("start_logits", "end_logits")
    starts = [name for name in output_specs if "start" in name]
    ends = [name for name in output_specs if "end" in name]
    if len(starts) == 1 and len(ends) == 1 and starts != ends:
        return (starts[0], ends[0])
    if len(output_specs) == 1:
        (name, spec), = output_specs.items()
        dims = [d for d in spec.shape.as_list()[2:] if d != 1] if spec.shape.rank is not None else None
        if dims == [2]:
            return (name,)
    described = ", ".join(f"{name} {spec.shape}" for name, spec in sorted(output_specs.items()))
    raise SignatureError(
        "cannot find the start and end logits: expected outputs start_logits and end_logits, "
        f"or one tensor shaped [batch, seq, 2, ...]; the signature has outputs: {described}"
    )


class TensorFlowQAModel(QAModel):
    def __init__(self, path: str, signature_name: str, input_names: dict[str, str]):
        import tensorflow as tf

        self._tf = tf
        _configure_gpus(tf)
        self._loaded = tf.saved_model.load(localize_dir(path))
        if signature_name not in self._loaded.signatures:
            raise SignatureError(
                f"SavedModel at {path} has no signature '{signature_name}'; it has: "
                f"{', '.join(self._loaded.signatures) or 'none'}"
            )
        self._function = self._loaded.signatures[signature_name]
        _, input_specs = self._function.structured_input_signature
        self._input_specs = input_specs
        self._roles = resolve_inputs(input_specs, input_names)
        self._outputs = resolve_outputs(self._function.structured_outputs)
        extras = set(input_specs) - set(self._roles.values())
        for name in extras:
            if not input_specs[name].dtype.is_integer:
                raise SignatureError(f"cannot fill extra input '{name}' of type {input_specs[name].dtype.name}")
        self._extras = sorted(extras)
        logging.info("TensorFlow model %s: inputs %s, outputs %s, extras %s, GPUs %s", path, self._roles,
                     self._outputs, self._extras, tf.config.list_physical_devices("GPU"))

    @property
    def fixed_seq_length(self) -> int | None:
        shape = self._input_specs[self._roles["input_ids"]].shape
        return shape[1] if shape.rank and shape.rank >= 2 else None

    def predict(self, input_ids, attention_mask, token_type_ids):
        tf = self._tf
        arrays = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feeds = {
            self._roles[role]: tf.constant(array, dtype=self._input_specs[self._roles[role]].dtype)
            for role, array in arrays.items()
        }
        batch = input_ids.shape[0]
        for name in self._extras:
            spec = self._input_specs[name]
            shape = [batch] + [1 if d is None else d for d in spec.shape.as_list()[1:]]
            feeds[name] = tf.zeros(shape, dtype=spec.dtype)
        outputs = self._function(**feeds)
        if len(self._outputs) == 2:
            start, end = (outputs[name].numpy() for name in self._outputs)
        else:
            combined = outputs[self._outputs[0]].numpy()
            combined = combined.reshape(combined.shape[0], combined.shape[1], 2)
            start, end = combined[..., 0], combined[..., 1]
        return start.reshape(batch, -1), end.reshape(batch, -1)


@dataclasses.dataclass(frozen=True)
class TensorFlowModelSpec(ModelSpec):
    path: str
    signature_name: str = "serving_default"
    input_names: tuple[tuple[str, str], ...] = ()

    def load(self) -> QAModel:
        return TensorFlowQAModel(self.path, self.signature_name, dict(self.input_names))
