"""What the pipeline-cost benchmarks share: an instant ONNX model and generated question files."""

from __future__ import annotations

import json


def instant_model(path: str) -> None:
    """[batch, seq] int32 ids, mask, types -> start/end logits [batch, seq] float32 from two cheap ops."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", "seq"])
              for name in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "seq"])
               for name in ("start_logits", "end_logits")]
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.001])
    nodes = [helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["ids", "scale"], ["start_logits"]),
             helper.make_node("Neg", ["start_logits"], ["end_logits"])]
    graph = helper.make_graph(nodes, "instant", inputs, outputs, initializer=[scale])
    # IR version 8 (the oldest for opset 17), not the onnx package's newest: an onnxruntime older than the onnx
    # package beside it refuses a newer IR version (onnx 1.23 writes 14, onnxruntime 1.30 reads up to 13).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def write_questions(path: str, count: int) -> None:
    from bertqa.demo import data

    with open(path, "w", encoding="utf-8") as handle:
        written = 0
        for seed in range(10**6):
            for record in data.generate(seed=seed, passages=1000):
                record = {**record, "id": f"{record['id']}-{written}"}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
                if written == count:
                    return
