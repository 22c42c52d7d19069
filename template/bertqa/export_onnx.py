"""`bertqa export-onnx`: a BERT QA SavedModel -> ONNX with dynamic batch and sequence axes, checked.

Converts with tf2onnx (opset 17+), then runs TensorFlow and ONNX Runtime on the same sample inputs and
reports success only when the start and end logits agree (matched by name, not output order).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np

from bertqa.backends.base import sample_inputs
from bertqa.params import parse_input_names

MIN_OPSET = 17


class ExportError(RuntimeError):
    pass


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
    tf2onnx.convert.from_function(named, input_signature=signature, opset=opset, output_path=output)

    converted = OnnxRuntimeQAModel(output, input_names or {})
    worst = 0.0
    lengths = [source.fixed_seq_length] if source.fixed_seq_length else [64, 128]
    for batch, length in zip((1, 3), lengths * 2):
        inputs = sample_inputs(batch, length, seed=batch)
        for expected, actual in zip(source.predict(*inputs), converted.predict(*inputs)):
            worst = max(worst, float(np.max(np.abs(expected - actual))))
    if worst > atol:
        os.remove(output)
        raise ExportError(f"ONNX logits differ from TensorFlow's by up to {worst:.2e} (> {atol:.0e}); "
                          f"{output} was not kept")
    return worst


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bertqa export-onnx", description=__doc__)
    parser.add_argument("--saved_model", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--opset", type=int, default=MIN_OPSET)
    parser.add_argument("--signature_name", default="serving_default")
    parser.add_argument("--input_names", default="", help="role=name pairs, as for bertqa run")
    args = parser.parse_args(list(argv))
    mapping = parse_input_names(args.input_names)
    try:
        worst = export_onnx(args.saved_model, args.output, args.opset, args.signature_name, mapping)
    except (ExportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} (opset {args.opset}); logits match TensorFlow within {worst:.1e}")
    return 0
