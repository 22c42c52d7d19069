import types

import numpy as np
import pytest
import tensorflow as tf

from bertqa.backends.base import QAModel, QAModelHandler
from bertqa.backends.named_io import SignatureError
from bertqa.backends.tensorflow import TensorFlowModelSpec
from bertqa.demo.tiny_bert import CONVENTIONS
from bertqa.qa.windows import Featurizer, WindowSettings, pad_batch, padded_length
from bertqa.qa.tokenization import wordpiece

from conftest import window_logits_of


@pytest.fixture(scope="module")
def windows(vocab, sample_records):
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(max_seq_length=64, doc_stride=24, max_query_length=16))
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
    results = window_logits_of(windows[:5], model) + window_logits_of(windows[5:8], model)
    for window, (start, end) in zip(windows[:8], results, strict=True):
        expected = reference_logits(tiny_model, window)
        assert start.shape == (window.length,)
        np.testing.assert_allclose(start, expected[:, 0], atol=1e-4)
        np.testing.assert_allclose(end, expected[:, 1], atol=1e-4)


def test_int64_inputs_and_a_fixed_sequence_length(saved_model, tiny_model, windows):
    path = saved_model("ngc", dtype=tf.int64, fixed_seq_length=128)
    handler = QAModelHandler(TensorFlowModelSpec(path), max_seq_length=64, max_batch_size=8)
    model = handler.load_model()
    assert model.fixed_seq_length == 128
    (start, _), = window_logits_of(windows[:1], model)
    np.testing.assert_allclose(start, reference_logits(tiny_model, windows[0])[:, 0], atol=1e-4)
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


def featurized_questions(vocab, records, settings):
    featurizer = Featurizer(wordpiece(vocab, True), settings)
    return [featurizer.featurize(types.SimpleNamespace(id=r["id"]), featurizer.question_ids(r["question"]),
                                 featurizer.tokenize_passage(r["context"])) for r in records]


def test_a_list_of_questions_becomes_length_sorted_calls_padded_to_the_next_multiple_of_64_only(
        saved_model, vocab, sample_records):
    calls = []

    class Recording(QAModel):
        def predict(self, ids, mask, types):
            calls.append((ids.shape, mask.sum(axis=1).tolist()))
            return np.zeros(ids.shape, np.float32), np.zeros(ids.shape, np.float32)

        def gpu_unavailable(self):
            return None

    questions = featurized_questions(vocab, sample_records, WindowSettings(192, 64, 16))
    windows = [window for question in questions for window in question.windows()]
    handler = QAModelHandler(TensorFlowModelSpec(saved_model()), max_seq_length=192, max_batch_size=8)
    (result,) = handler.run_inference([questions], Recording())
    assert len(set(padded_length(w.length) for w in windows)) > 1, "the test needs mixed lengths"
    assert sum(len(lengths) for _, lengths in calls) == len(windows)  # every window once
    for (batch, padded), lengths in calls:
        assert batch == len(lengths) <= 8 and padded == padded_length(max(lengths))
    assert [padded for (_, padded), _ in calls] == sorted(padded for (_, padded), _ in calls)  # shortest first
    assert sorted(length for _, lengths in calls for length in lengths) == sorted(w.length for w in windows)
    # Back in question order, each question's windows' logits in window order, with its share of the model time.
    assert result.questions == questions and result.failures == [None] * len(questions)
    assert result.windows == len(windows) and min(result.model_seconds) >= 0
    assert result.logits.shape == (2, sum(w.length for w in windows))
    for position, question in enumerate(questions):
        assert [w.index for w in result.window_logits(position)] == list(range(len(question.spans)))
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 1}


def test_questions_are_listed_by_similar_window_lengths_about_four_model_calls_at_a_time(vocab, sample_records):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that

    from bertqa.backends.base import CALLS_PER_LIST, batch_questions, padded_tokens

    questions = featurized_questions(vocab, sample_records, WindowSettings(192, 64, 16))
    limit = CALLS_PER_LIST * 4 * 192

    def check(lists):
        assert sorted(q.question.id for found in lists for q in found) == sorted(q.question.id for q in questions)
        assert len(lists) > 1 and all(sum(padded_tokens(q) for q in found) <= limit for found in lists)
        sizes = [[padded_tokens(q) for q in found] for found in lists]
        assert all(size == sorted(size) for size in sizes)  # sorted within each bundle before listing
        assert len({s for size in sizes for s in size}) > 1, "the test needs mixed sizes"

    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        lists = pipeline | beam.Create(questions, reshuffle=False) | batch_questions(4, 192)
        assert_that(lists, check)


def test_a_gpu_worker_whose_tensorflow_sees_no_gpu_fails_at_load_naming_why(saved_model):
    from bertqa.backends.base import GpuUnavailableError, load_checked

    spec = TensorFlowModelSpec(saved_model())
    assert load_checked(spec, 2, 64).gpu_unavailable()  # this machine has no GPU: the CPU run is fine here...
    with pytest.raises(GpuUnavailableError, match=rf"model would run on the CPU: TensorFlow {tf.__version__} is a "
                                                  "CPU-only build"):
        load_checked(spec, 2, 64, require_gpu=True)  # ...but not on a worker that pays for one


def test_the_job_fails_in_one_line_when_its_gpu_workers_cannot_use_the_gpu(tmp_path, saved_model, vocab_path,
                                                                         sample_records):
    from bertqa.dataflow.arguments import split_args
    from bertqa.local.failures import job_failure
    from bertqa.job.pipeline import run

    from conftest import write_jsonl

    path = write_jsonl(tmp_path / "q.jsonl", sample_records[:2])
    params, beam_args = split_args([f"--input={path}", f"--output={tmp_path / 'out'}", f"--model_path={saved_model()}",
                                    f"--vocab_path={vocab_path}", "--max_seq_length=64", "--doc_stride=24",
                                    "--max_query_length=16", "--gpu_type=nvidia-l4", "--runner=FnApiRunner"])
    with pytest.raises(Exception) as failure:
        run(params, beam_args, wait=True, require_gpu=True)
    assert "RunInference" in job_failure(failure.value) and "CPU-only build" in job_failure(failure.value)
