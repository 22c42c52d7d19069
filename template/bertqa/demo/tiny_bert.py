"""A small BERT (embeddings, post-LN transformer encoder, span head) in plain TensorFlow.

Used to build the demo model and the test models. `export` writes it as a SavedModel with the
signature of any of the conventions real BERT QA exports use, so each can be tested end to end.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class TinyBertConfig:
    vocab_size: int
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 128


def _gelu(x):
    # Exact GELU written with Erf: tf.nn.gelu uses Erfc, which ONNX has no operator for.
    return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


class TinyBertQA(tf.Module):
    def __init__(self, config: TinyBertConfig, seed: int = 0):
        super().__init__()
        self.config = config
        init = tf.random.stateless_truncated_normal
        counter = iter(range(10_000))

        def weight(*shape, scale=0.02):
            return tf.Variable(init(shape, seed=[seed, next(counter)], stddev=scale))

        def zeros(*shape):
            return tf.Variable(tf.zeros(shape))

        def ones(*shape):
            return tf.Variable(tf.ones(shape))

        h, f = config.hidden_size, config.intermediate_size
        self.word = weight(config.vocab_size, h)
        self.position = weight(config.max_positions, h)
        self.token_type = weight(2, h)
        self.embed_norm = (ones(h), zeros(h))
        self.layers = [
            {
                "qkv": weight(h, 3 * h), "qkv_b": zeros(3 * h),
                "out": weight(h, h), "out_b": zeros(h), "norm1": (ones(h), zeros(h)),
                "ffn1": weight(h, f), "ffn1_b": zeros(f), "ffn2": weight(f, h), "ffn2_b": zeros(h),
                "norm2": (ones(h), zeros(h)),
            }
            for _ in range(config.num_layers)
        ]
        self.span = weight(h, 2)
        self.span_b = zeros(2)

    @staticmethod
    def _norm(x, params):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + 1e-12) * params[0] + params[1]

    def logits(self, input_ids, attention_mask, token_type_ids, training: bool = False):
        """[B, S] int inputs -> [B, S, 2] start/end logits."""
        config = self.config
        input_ids = tf.cast(input_ids, tf.int32)
        seq = tf.shape(input_ids)[1]
        x = (
            tf.gather(self.word, input_ids)
            + self.position[tf.newaxis, :seq]
            + tf.gather(self.token_type, tf.cast(token_type_ids, tf.int32))
        )
        x = self._norm(x, self.embed_norm)
        heads, size = config.num_heads, config.hidden_size // config.num_heads
        bias = (1.0 - tf.cast(attention_mask, tf.float32))[:, tf.newaxis, tf.newaxis, :] * -10000.0
        batch = tf.shape(input_ids)[0]
        for layer in self.layers:
            qkv = tf.reshape(x @ layer["qkv"] + layer["qkv_b"], [batch, seq, 3, heads, size])
            q, k, v = (tf.transpose(qkv[:, :, i], [0, 2, 1, 3]) for i in range(3))
            scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(size) + bias
            context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
            context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch, seq, config.hidden_size])
            x = self._norm(x + context @ layer["out"] + layer["out_b"], layer["norm1"])
            hidden = _gelu(x @ layer["ffn1"] + layer["ffn1_b"])
            x = self._norm(x + hidden @ layer["ffn2"] + layer["ffn2_b"], layer["norm2"])
        return x @ self.span + self.span_b


# Signature conventions of real BERT SQuAD exports: input names, extra inputs, output layout.
CONVENTIONS = {
    # Hugging Face TF models
    "huggingface": dict(inputs=("input_ids", "attention_mask", "token_type_ids"), output="split"),
    # Google BERT run_squad / NVIDIA NGC exports (NGC adds unique_ids)
    "ngc": dict(inputs=("input_ids", "input_mask", "segment_ids"), extra="unique_ids", output="split"),
    # TF Hub / Model Garden: one logits tensor [batch, seq, 2]
    "tfhub": dict(inputs=("input_word_ids", "input_mask", "input_type_ids"), output="stacked"),
    # A TensorRT-style export: [batch, seq, 2, 1, 1] logits
    "stacked5d": dict(inputs=("input_ids", "input_mask", "segment_ids"), output="stacked5d"),
}


def export(model: TinyBertQA, path: str, convention: str = "huggingface", dtype=tf.int32,
           fixed_seq_length: int | None = None) -> None:
    """Writes `model` as a SavedModel whose serving_default follows `convention`."""
    spec = CONVENTIONS[convention]
    ids_name, mask_name, types_name = spec["inputs"]
    signature = [tf.TensorSpec([None, fixed_seq_length], dtype, name=name) for name in spec["inputs"]]
    if "extra" in spec:
        signature.append(tf.TensorSpec([None], dtype, name=spec["extra"]))

    def serve(*tensors):
        logits = model.logits(tensors[0], tensors[1], tensors[2])
        if spec["output"] == "split":
            return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
        if spec["output"] == "stacked":
            return {"logits": logits}
        return {"cls_squad_logits": logits[..., tf.newaxis, tf.newaxis]}

    function = tf.function(serve, input_signature=signature)
    tf.saved_model.save(model, path, signatures={"serving_default": function.get_concrete_function()})
