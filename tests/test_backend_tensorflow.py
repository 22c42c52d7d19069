import numpy as np
import pytest
import tensorflow as tf

from bertqa.backends.base import QAModelHandler
from bertqa.backends.named_io import SignatureError
from bertqa.backends.tensorflow import TensorFlowModelSpec
from bertqa.demo.tiny_bert import CONVENTIONS
from bertqa.windows import Featurizer, WindowSettings, pad_batch, padded_length


@pytest.fixture(scope="module")
def windows(vocab, sample_records):
    featurizer = Featurizer(vocab, True, WindowSettings(max_seq_length=64, doc_stride=24, max_query_length=16))
    result = []
    for record in sample_records[:6]:
        result += featurizer.windows(record["id"], record["question"], featurizer.tokenize_passage(record["context"]))
    return result


def reference_logits(tiny_model, window):
    ids, mask, types = pad_batch([window], window.length)
    return tiny_model.logits(ids, mask, types).numpy()[0]


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_every_signature_convention_gives_the_models_logits(convention, saved_model, tiny_model, windows):
    handler = QAModelHandler(TensorFlowModelSpec(saved_model(convention)), max_seq_length=64, max_batch_size=8)
    model = handler.load_model()
    results = handler.run_inference([windows[:5], windows[5:8]], model)
    assert [question_id for question_id, *_ in results] == [w.question_id for w in windows[:8]]
    for window, (_, logits, _) in zip(windows, results):
        expected = reference_logits(tiny_model, window)
        assert logits.start_logits.shape == (window.length,)
        np.testing.assert_allclose(logits.start_logits, expected[:, 0], atol=1e-4)
        np.testing.assert_allclose(logits.end_logits, expected[:, 1], atol=1e-4)
        assert (logits.doc_offset, logits.context_start, logits.index) == (
            window.doc_offset, window.context_start, window.index)


def test_int64_inputs_and_a_fixed_sequence_length(saved_model, tiny_model, windows):
    path = saved_model("ngc", dtype=tf.int64, fixed_seq_length=128)
    handler = QAModelHandler(TensorFlowModelSpec(path), max_seq_length=64, max_batch_size=8)
    model = handler.load_model()
    assert model.fixed_seq_length == 128
    (_, logits, _), = handler.run_inference([windows[:1]], model)
    np.testing.assert_allclose(logits.start_logits, reference_logits(tiny_model, windows[0])[:, 0], atol=1e-4)
    too_long = QAModelHandler(TensorFlowModelSpec(path), max_seq_length=256, max_batch_size=8)
    with pytest.raises(ValueError, match="only accepts sequences of 128 tokens.*--max_seq_length=128"):
        too_long.load_model()


def test_explicit_input_names(tmp_path, tiny_model, windows):
    path = str(tmp_path / "odd")

    class Odd(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=n) for n in ("ids", "m", "t")])
        def serve(self, ids, m, t):
            logits = tiny_model.logits(ids, m, t)
            return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}

    module = Odd()
    module.bert = tiny_model  # tracked, so its variables are saved
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    with pytest.raises(SignatureError, match=r"cannot find the input_ids input .* has inputs: ids, m, t"):
        TensorFlowModelSpec(path).load()
    mapping = (("input_ids", "ids"), ("attention_mask", "m"), ("token_type_ids", "t"))
    model = TensorFlowModelSpec(path, input_names=mapping).load()
    start, _ = model.predict(*pad_batch(windows[:1], windows[0].length))
    np.testing.assert_allclose(start[0], reference_logits(tiny_model, windows[0])[:, 0], atol=1e-4)
    with pytest.raises(SignatureError, match="maps input_ids to 'nope'"):
        TensorFlowModelSpec(path, input_names=(("input_ids", "nope"),)).load()


def test_unrecognised_outputs_and_signature_names_fail_at_load_and_say_what_exists(tmp_path, saved_model):
    path = str(tmp_path / "bad_outputs")

    class Bad(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=n)
                                      for n in ("input_ids", "attention_mask", "token_type_ids")])
        def serve(self, input_ids, attention_mask, token_type_ids):
            return {"pooled": tf.cast(input_ids, tf.float32), "other": tf.cast(attention_mask, tf.float32)}

    module = Bad()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    with pytest.raises(SignatureError, match="the model has outputs: other .*pooled"):
        TensorFlowModelSpec(path).load()
    with pytest.raises(SignatureError, match="has no signature 'predict'; it has: serving_default"):
        TensorFlowModelSpec(saved_model(), signature_name="predict").load()


def test_each_list_is_one_call_padded_to_the_next_multiple_of_64_only(saved_model, windows):
    seen = []

    class Recording:
        fixed_seq_length = None

        def predict(self, ids, mask, types):
            seen.append((ids.shape, mask.sum(axis=1).tolist()))
            return np.zeros(ids.shape, np.float32), np.zeros(ids.shape, np.float32)

    handler = QAModelHandler(TensorFlowModelSpec(saved_model()), max_seq_length=384, max_batch_size=8)
    short = [w for w in windows if w.length <= 64][:3]
    handler.run_inference([short, short[:1]], Recording())
    assert seen == [((3, 64), [w.length for w in short]), ((1, 64), [short[0].length])]
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 1}


def test_batches_group_windows_of_similar_length(vocab, sample_records):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that

    from bertqa.backends.base import batch_by_length

    featurizer = Featurizer(vocab, True, WindowSettings(max_seq_length=192, doc_stride=64, max_query_length=16))
    mixed = [window for record in sample_records for window in featurizer.windows(
        record["id"], record["question"], featurizer.tokenize_passage(record["context"]))]
    lengths = sorted(w.length for w in mixed)

    def check(batches):
        assert sorted(len(b) for b in batches) and all(len(b) <= 4 for b in batches)
        assert sorted(w.length for b in batches for w in b) == lengths  # nothing lost
        # Sorted by padded length before batching: a batch spans at most two padded lengths,
        # and batches follow each other in length order.
        padded = [[padded_length(w.length) for w in batch] for batch in batches]
        assert all(p == sorted(p) and len(set(p)) <= 2 for p in padded)
        ordered = sorted(padded)
        assert all(a[-1] <= b[0] for a, b in zip(ordered, ordered[1:]))
        assert len(set(p for batch in padded for p in batch)) > 1, "the test needs mixed lengths"

    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        batches = pipeline | beam.Create(mixed, reshuffle=False) | batch_by_length(4, 192)
        assert_that(batches, check)


def test_a_gpu_worker_whose_tensorflow_sees_no_gpu_fails_at_load_naming_why(saved_model):
    from bertqa.backends.base import GpuUnavailableError, load_checked

    spec = TensorFlowModelSpec(saved_model())
    assert load_checked(spec, 2, 64).gpu_unavailable()  # this machine has no GPU: the CPU run is fine here...
    with pytest.raises(GpuUnavailableError, match=rf"model would run on the CPU: TensorFlow {tf.__version__} is a "
                                                  "CPU-only build"):
        load_checked(spec, 2, 64, require_gpu=True)  # ...but not on a worker that pays for one


def test_the_job_fails_in_one_line_when_its_gpu_workers_cannot_use_the_gpu(tmp_path, saved_model, vocab_path,
                                                                         sample_records):
    from bertqa.arguments import split_args
    from bertqa.failures import job_failure
    from bertqa.pipeline import run

    from conftest import write_jsonl

    path = write_jsonl(tmp_path / "q.jsonl", sample_records[:2])
    params, beam_args = split_args([f"--input={path}", f"--output={tmp_path / 'out'}", f"--model_path={saved_model()}",
                                    f"--vocab_path={vocab_path}", "--max_seq_length=64", "--doc_stride=24",
                                    "--max_query_length=16", "--gpu_type=nvidia-l4", "--runner=FnApiRunner"])
    with pytest.raises(Exception) as failure:
        run(params, beam_args, wait=True, require_gpu=True)
    assert "RunInference" in job_failure(failure.value) and "CPU-only build" in job_failure(failure.value)
