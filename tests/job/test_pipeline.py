"""The whole job on the in-process runner: every record accounted for, outputs readable."""

import dataclasses
import functools
import gzip
import json
import os

from pathlib import Path

import numpy as np
import pytest

from bertqa.io import inputs
from bertqa.backends.base import QAModelHandler
from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec
from bertqa.cli import run_command
from bertqa.qa.decoding import WindowLogits, decode_answer
from bertqa.qa.metrics import normalize_answer
from bertqa.job.answer import DecodeAnswers, Prediction
from bertqa.job.outcomes import REJECTS, SCORES
from bertqa.io.records import Question
from bertqa.qa.windows import Featurizer, WindowSettings, pad_batch
from bertqa.qa.tokenization import wordpiece

from conftest import DECODE, WINDOW_ARGS, read_rows, run_job, write_jsonl

TESTS = Path(__file__).resolve().parents[1]  # where counting_model.py is

@functools.lru_cache(maxsize=None)
def compiled_logits(tiny_model):
    """The model's logits as one TensorFlow graph (eager ops, called once per window, cost seconds a test)."""
    import tensorflow as tf

    return tf.function(tiny_model.logits, reduce_retracing=True)


def expected_answers(tiny_model, vocab, records, settings=DECODE):
    """What the model answers, computed without Beam: one window at a time, unpadded."""
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(64, 24, 16))
    logits_of = compiled_logits(tiny_model)
    answers = {}
    for record in records:
        passage = featurizer.tokenize_passage(record["context"])
        logits = []
        for window in featurizer.windows(record["id"], record["question"], passage):
            out = logits_of(*pad_batch([window], window.length)).numpy()[0]
            logits.append(WindowLogits(window.index, window.context_start, window.doc_offset, window.max_context,
                                       out[:, 0], out[:, 1]))
        answers[record["id"]] = decode_answer(logits, record["context"], passage.offsets, settings)
    return answers


@pytest.fixture(scope="module")
def bad_lines():
    good = {"question": "Who?", "context": "Anna lives here."}
    return [
        "{this is not json",
        json.dumps({"question": "Who?", "context": "x"}),
        json.dumps({"id": 7, **good}),
        json.dumps({"id": "empty-q", "question": "", "context": "x"}),
        json.dumps({"id": "no-context", "question": "Who?"}),
        json.dumps({"id": "huge", "question": "Who?", "context": "word " * 5000}),
    ]


@pytest.mark.parametrize("part_bytes", [None, 900], ids=["files whole", "a.jsonl in parts"])
def test_every_record_is_answered_or_dead_lettered(tmp_path, saved_model, vocab_path, vocab, tiny_model,
                                                   sample_records, bad_lines, monkeypatch, part_bytes):
    if part_bytes:  # as a large file is read: by workers at once, each a part of whole lines
        monkeypatch.setattr(inputs, "MIN_PART_BYTES", part_bytes)
    first, second = sample_records[:12], sample_records[12:]
    duplicate = dict(first[0], question="A later record with an id already used")
    elsewhere = dict(first[1], context="Another passage altogether, with an id already used.")  # another group
    write_jsonl(tmp_path / "a.jsonl", first + bad_lines[:3] + [""])
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in second + [duplicate, elsewhere])
        handle.writelines(line + "\n" for line in bad_lines[3:])
    output = run_job(tmp_path, tmp_path / "*.jsonl*", saved_model(), vocab_path, "--max_context_chars=10000",
                     "--max_dead_letter_fraction=1")

    predictions = json.loads((output / "predictions.json").read_text(encoding="utf-8"))
    assert set(predictions) == {r["id"] for r in sample_records}
    expected = expected_answers(tiny_model, vocab, sample_records)
    assert predictions == {key: answer.text for key, answer in expected.items()}

    rows = read_rows(str(output / "predictions-*.jsonl"))
    assert sorted(row["id"] for row in rows) == sorted(predictions)
    for row in rows:
        record = next(r for r in sample_records if r["id"] == row["id"])
        if row["answer"]:
            assert record["context"][row["start_char"]:row["end_char"]] == row["answer"]
        else:
            assert row["start_char"] is None and row["null_score_diff"] > 0
        assert row["score"] == pytest.approx(expected[row["id"]].score, abs=1e-3)

    dead = read_rows(str(output / "dead_letter" / "*.jsonl"))
    reasons = sorted(row["reason"].split(":")[0].split(" (")[0] for row in dead)
    assert len(dead) == len(bad_lines) + 2
    assert any("not valid JSON" in r for r in reasons)
    assert any("missing 'id'" in r for r in reasons)
    assert any("'id' must be a non-empty string" in r for r in reasons)
    assert any("'question' is empty" in r for r in reasons)
    assert any("missing 'context'" in r for r in reasons)
    assert any(row["id"] == "huge" and "over the limit of 10000" in row["reason"] for row in dead)
    dup, other = sorted((row for row in dead if row["stage"] == "deduplicate"), key=lambda row: row["source"])
    assert dup["id"] == first[0]["id"] and dup["source"].endswith("b.jsonl.gz:%d" % (len(second) + 1))
    assert dup["raw"]["question"] == duplicate["question"] and "a.jsonl:1" in dup["reason"]
    assert other["id"] == first[1]["id"] and other["source"].endswith("b.jsonl.gz:%d" % (len(second) + 2))
    assert other["raw"]["context"] == elsewhere["context"] and other["reason"].endswith("a.jsonl:2")

    summary = json.loads((output / "summary.json").read_text())
    assert summary["records_read"] == len(sample_records) + len(bad_lines) + 2
    assert summary["records_read"] == summary["predicted"] + summary["dead_lettered"]
    assert summary["predicted"] == len(sample_records)
    assert summary["answered"] + summary["no_answer"] == summary["predicted"]
    assert summary["answered"] == sum(1 for text in predictions.values() if text)
    assert summary["metrics"]["total"] == len(sample_records)
    assert summary["metrics"]["NoAns_total"] == sum(1 for r in sample_records if not r["answers"])
    timing = summary["timing"]
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(64, 24, 16))
    windows = sum(len(featurizer.windows(r["id"], r["question"], featurizer.tokenize_passage(r["context"])))
                  for r in sample_records)
    assert timing["model_windows"] == windows and 0 < timing["model_seconds"] < timing["seconds_since_submission"]
    assert timing["windows_per_model_second"] == pytest.approx(windows / timing["model_seconds"], rel=1e-3)
    assert timing["questions_per_model_second"] == pytest.approx(len(sample_records) / timing["model_seconds"],
                                                                 rel=1e-3)
    assert timing["questions_per_second_since_submission"] > 0


def test_past_the_dead_letter_budget_the_job_writes_everything_then_fails_naming_share_and_reasons(
        tmp_path, saved_model, vocab_path, sample_records, bad_lines, capsys):
    write_jsonl(tmp_path / "q.jsonl", sample_records[:10] + bad_lines + bad_lines[:1])
    args = [f"--input={tmp_path}/q.jsonl", f"--model_path={saved_model()}", f"--vocab_path={vocab_path}",
            "--backend=tensorflow", *WINDOW_ARGS]
    assert run_command([*args, f"--output={tmp_path}/out"]) == 3  # over the default 0.1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())  # every output was written first
    dead, read = summary["dead_lettered"], summary["records_read"]
    assert read == 17 and dead == 17 - summary["predicted"] >= 5
    assert error.startswith(f"error: the job failed: step 'Summarize/WriteSummary': DeadLetterBudgetExceeded: {dead} of 17 "
                            f"records ({dead / 17:.1%}) went to the dead letters, more than "
                            "--max_dead_letter_fraction=0.1; most common: 2 x ")
    assert "2 x parse: not valid JSON" in error and "Every output is written" in error
    assert summary["dead_letter_reasons"][0]["count"] == 2 and len(summary["dead_letter_reasons"]) == 3
    assert len(json.loads((tmp_path / "out" / "predictions.json").read_text())) == summary["predicted"]
    assert len(read_rows(str(tmp_path / "out" / "dead_letter" / "*.jsonl"))) == dead
    assert run_command([*args, f"--output={tmp_path}/out2", "--max_dead_letter_fraction=0.5"]) == 0


def test_one_id_on_very_many_records_is_de_duplicated_without_holding_them():
    import random
    import tracemalloc

    from bertqa.job.featurize import LaterRecord, later_records

    class Places:
        """A grouped iterable as a runner gives it: read lazily, as often as asked, in no particular order."""

        def __init__(self, count):
            self.numbers = list(range(count))
            random.Random(5).shuffle(self.numbers)

        def __iter__(self):
            return ((("in.jsonl", n), f"in.jsonl:{n}", b"key%d" % (n % 7)) for n in self.numbers)

    places = Places(300_000)
    tracemalloc.start()
    later, first_sources = 0, set()
    for key, record in later_records(("0", places)):
        assert isinstance(record, LaterRecord) and record.order != ("in.jsonl", 0)
        assert key == b"key%d" % (record.order[1] % 7)
        later, first_sources = later + 1, first_sources | {record.first_source}
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert later == 299_999 and first_sources == {"in.jsonl:0"}
    assert peak < 2 << 20, f"{peak / 2**20:.1f} MiB held for one id's 300,000 records"


def test_dead_letter_reasons_count_together_with_values_blanked_and_field_names_kept():
    from bertqa.job.summary import reason_kind

    def kind(stage, reason):
        return reason_kind({"stage": stage, "reason": reason})

    assert kind("deduplicate", "duplicate id 'q17': first seen at a.jsonl:3") == kind(
        "deduplicate", "duplicate id \"it's\": first seen at a.jsonl:12") == (
        "deduplicate: duplicate id '...': first seen at a.jsonl:N")
    assert kind("parse", "article has no 'paragraphs' list") == "parse: article has no 'paragraphs' list"
    assert kind("validate", "'context' has 120001 characters") == "validate: 'context' has N characters"
    assert kind("validate", "'id' holds U+001F, 2 times") == "validate: 'id' holds U+001F, N times"
    assert kind("validate", "x" * 200) == "validate: " + "x" * 117 + "..."  # the reason cut at 120 characters


def test_summary_metrics_follow_the_official_rules_and_count_dead_lettered_labelled_questions(
        tmp_path, saved_model, vocab_path, vocab, tiny_model, sample_records):
    # A threshold at the median null-score difference: the model answers about half of the questions.
    diffs = [answer.null_score_diff for answer in expected_answers(tiny_model, vocab, sample_records).values()]
    threshold = float(np.median(diffs))
    expected = expected_answers(tiny_model, vocab, sample_records, dataclasses.replace(DECODE, null_score_diff_threshold=threshold))
    answered = [r for r in sample_records if expected[r["id"]].text]
    unanswered = [r for r in sample_records if not expected[r["id"]].text]
    assert answered and unanswered, "the tiny model must give both kinds of answer here"
    # Each question labelled with the model's own answer, so every predicted one scores exactly 1...
    records = [dict(r, answers=[{"text": expected[r["id"]].text}] if r in answered else []) for r in sample_records]
    # ...including these edge cases of evaluate-v2.0.py's rules:
    records[sample_records.index(unanswered[0])]["answers"] = [{"text": "The"}]  # has answers; only "" matches
    records[sample_records.index(answered[0])]["is_impossible"] = True  # ignored: the answers are scored
    duplicate = dict(records[0], answers=[{"text": "not what the model says"}])  # a later duplicate: not scored
    invisible = {"question": "Where?", "context": "\u200b\u200b"}  # no tokens: dead-lettered, labelled
    lost = [dict(invisible, id="lost-has-answer", answers=[{"text": "Ulm"}]), dict(invisible, id="lost-no-answer",
                                                                                 answers=[])]
    unlabelled = {"id": "unlabelled", "question": records[0]["question"], "context": records[0]["context"]}
    write_jsonl(tmp_path / "labelled.jsonl", records + [duplicate, unlabelled] + lost)
    output = run_job(tmp_path, tmp_path / "labelled.jsonl", saved_model(), vocab_path,
                     f"--null_score_diff_threshold={threshold!r}", "--max_dead_letter_fraction=1")

    summary = json.loads((output / "summary.json").read_text())
    n, has_answer = len(records), len(answered) + 1
    assert summary["predicted"] == n + 1 and summary["dead_lettered"] == 3
    # The best threshold answers exactly the questions answered (the smallest such: the largest difference among
    # those whose answer counts; an answer that normalizes to nothing scores the same as ""). The job's logits
    # differ from the ones computed here in the last bits (other batches), hence approx.
    best = max(expected[r["id"]].null_score_diff for r in answered if normalize_answer(expected[r["id"]].text))
    assert summary["metrics"] == {"exact": 100.0, "f1": 100.0, "total": n,
                                  "HasAns_exact": 100.0, "HasAns_f1": 100.0, "HasAns_total": has_answer,
                                  "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": n - has_answer,
                                  "best_exact": 100.0, "best_exact_thresh": pytest.approx(best, abs=1e-5),
                                  "best_f1": 100.0, "best_f1_thresh": pytest.approx(best, abs=1e-5)}
    assert summary["labelled_without_prediction"] == 2
    everything = summary["metrics_all_labelled"]
    assert everything["total"] == n + 2
    assert everything["exact"] == pytest.approx(100 * n / (n + 2))
    assert everything["HasAns_total"] == has_answer + 1
    assert everything["HasAns_f1"] == pytest.approx(100 * has_answer / (has_answer + 1))
    assert everything["NoAns_exact"] == pytest.approx(100 * (n - has_answer) / (n - has_answer + 1))


def test_squad_json_input_with_two_worker_processes(tmp_path, onnx_model, vocab_path, vocab, tiny_model,
                                                    sample_records):
    paragraphs = {}
    for record in sample_records:
        paragraphs.setdefault(record["context"], []).append(
            {"id": record["id"], "question": record["question"], "answers": record["answers"],
             "is_impossible": not record["answers"]})
    document = {"version": "v2.0", "data": [{"title": "towns", "paragraphs": [
        {"context": context, "qas": qas} for context, qas in paragraphs.items()]}]}
    (tmp_path / "dev-v2.0.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    dead_letters = tmp_path / "rejected"
    output = run_job(tmp_path, tmp_path / "dev-v2.0.json", onnx_model(), vocab_path, "--backend=onnxruntime",
                     "--direct_num_workers=2", "--direct_running_mode=multi_processing",
                     f"--dead_letter_output={dead_letters}")
    predictions = json.loads((output / "predictions.json").read_text(encoding="utf-8"))
    expected = expected_answers(tiny_model, vocab, sample_records)
    assert predictions == {key: answer.text for key, answer in expected.items()}
    summary = json.loads((output / "summary.json").read_text())
    assert summary["dead_lettered"] == 0 and summary["records_read"] == len(sample_records)
    assert list(dead_letters.glob("dead_letter*.jsonl")) and read_rows(str(dead_letters / "*.jsonl")) == []
    assert not (output / "dead_letter").exists()


def model_loads(gpu_args, tmp_path, monkeypatch, model_path, vocab_path, sample_records):
    """(processes that loaded the model, model calls, predictions) of the job on two local worker processes."""
    from apache_beam.metrics.metric import MetricsFilter

    from bertqa.dataflow.arguments import split_args
    from bertqa.job import pipeline
    from bertqa.params import TemplateParams

    from counting_model import CountingSpec

    # Worker processes (and the model's own) import CountingSpec by name from the tests folder.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS),
                                                                   os.environ.get("PYTHONPATH")])))
    log = tmp_path / f"loads{len(gpu_args)}.txt"
    monkeypatch.setattr(TemplateParams, "model_spec", lambda params, threads=0: CountingSpec(model_path, log=str(log)))
    write_jsonl(tmp_path / "q.jsonl", sample_records)
    output = tmp_path / f"out{len(gpu_args)}"
    params, beam_args = split_args([f"--input={tmp_path}/q.jsonl", f"--output={output}", f"--model_path={model_path}",
                                    f"--vocab_path={vocab_path}", "--backend=onnxruntime", *WINDOW_ARGS, *gpu_args,
                                    "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    result = pipeline.run(params, beam_args, wait=True)
    inferences = result.metrics().query(MetricsFilter().with_name("num_inferences"))["counters"]
    loaders = log.read_text().split()
    return loaders, sum(c.committed for c in inferences), json.loads((output / "predictions.json").read_text())


def test_gpu_workers_load_one_model_copy_that_every_process_calls(tmp_path, monkeypatch, onnx_model, vocab_path,
                                                                   vocab, tiny_model, sample_records):
    # CPU jobs: each SDK process loads its own copy (here both of them, so the comparison means something).
    loaders, inferences, cpu = model_loads([], tmp_path, monkeypatch, onnx_model(), vocab_path, sample_records)
    assert len(loaders) == len(set(loaders)) == 2 and inferences >= 2
    # GPU jobs (gpu_processes=shared, the default): one copy, loaded once in a process of its own, that both
    # worker processes call.
    loaders, inferences, gpu = model_loads(["--gpu_type=nvidia-l4"], tmp_path, monkeypatch, onnx_model(),
                                           vocab_path, sample_records)
    assert len(loaders) == 1 and inferences >= 2
    expected = expected_answers(tiny_model, vocab, sample_records)
    assert gpu == cpu == {key: answer.text for key, answer in expected.items()}


def poisoned_model(tiny_model, path: str, poison: int) -> str:
    """The tiny model, but its call fails on any window holding token id `poison` (as a model fails on
    an input it cannot take), and works on every other batch."""
    import tensorflow as tf

    class Poisoned(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = tiny_model

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=name)
                                      for name in ("input_ids", "attention_mask", "token_type_ids")])
        def serve(self, input_ids, attention_mask, token_type_ids):
            tf.debugging.assert_none_equal(input_ids, poison, message="poisoned token")
            logits = self.model.logits(input_ids, attention_mask, token_type_ids)
            return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}

    module = Poisoned()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def test_a_window_the_model_fails_on_sends_only_its_own_question_to_the_dead_letters(
        tmp_path, tiny_model, vocab, vocab_path, sample_records):
    records = sample_records[:16]
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(64, 24, 16))
    tokens = {r["id"]: {int(t) for w in featurizer.windows(r["id"], r["question"],
                                                             featurizer.tokenize_passage(r["context"]))
                        for t in w.input_ids} for r in records}
    # A token (above the ids the load-time probe uses) in a few questions' windows, not in most.
    poison = next(t for t in range(100, len(vocab)) if 2 <= sum(t in ids for ids in tokens.values()) <= 5)
    poisoned = {key for key, ids in tokens.items() if poison in ids}
    write_jsonl(tmp_path / "q.jsonl", records)
    model = poisoned_model(tiny_model, str(tmp_path / "poisoned"), poison)
    output = run_job(tmp_path, tmp_path / "q.jsonl", model, vocab_path, "--max_dead_letter_fraction=1")

    dead = read_rows(str(output / "dead_letter" / "*.jsonl"))
    assert {row["id"] for row in dead} == poisoned
    assert all(row["stage"] == "inference" and "inference failed on window" in row["reason"]
               and "poisoned token" in row["reason"] and "\n" not in row["reason"] for row in dead)
    # Questions that shared a batch with a poisoned window still get exactly the model's answers.
    predictions = json.loads((output / "predictions.json").read_text())
    expected = expected_answers(tiny_model, vocab, [r for r in records if r["id"] not in poisoned])
    assert predictions == {key: answer.text for key, answer in expected.items()}
    summary = json.loads((output / "summary.json").read_text())
    assert summary["records_read"] == summary["predicted"] + summary["dead_lettered"] == len(records)


def test_a_model_that_cannot_take_the_window_length_stops_the_job_before_it_starts(
        tmp_path, vocab_path, sample_records, capsys):
    from bertqa.demo.tiny_bert import TinyBertConfig, TinyBertQA, export

    short = str(tmp_path / "short")
    export(TinyBertQA(TinyBertConfig(vocab_size=600, hidden_size=16, num_heads=2, max_positions=128)), short)
    write_jsonl(tmp_path / "q.jsonl", sample_records[:4])
    code = run_command([f"--input={tmp_path}/q.jsonl", f"--output={tmp_path}/out", f"--model_path={short}",
                        f"--vocab_path={vocab_path}", "--max_seq_length=256", "--doc_stride=64",
                        "--max_query_length=16"])
    assert code == 2
    error = capsys.readouterr().err
    assert "--max_seq_length=256: the model fails on a window of 256 tokens" in error
    assert "the longest it takes is 128 tokens: set --max_seq_length=128 or lower" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("convention", ["huggingface", "ngc", "tfhub", "stacked5d"])
def test_every_signature_convention_through_the_whole_job(convention, tmp_path, saved_model, vocab_path, vocab,
                                                         tiny_model, sample_records):
    records = sample_records[:6]
    write_jsonl(tmp_path / "q.jsonl", records)
    output = run_job(tmp_path, tmp_path / "q.jsonl", saved_model(convention), vocab_path)
    predictions = json.loads((output / "predictions.json").read_text(encoding="utf-8"))
    assert predictions == {key: answer.text for key, answer in expected_answers(tiny_model, vocab, records).items()}


def test_a_question_the_model_gives_logits_that_are_not_finite_is_dead_lettered_the_rest_answered(
        vocab, sample_records, onnx_model):
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(64, 24, 16))
    records = [Question(r["id"], r["question"], r["context"], f"q.jsonl:{n}", (n,), tuple(a["text"] for a in
                                                                                           r["answers"]))
               for n, r in enumerate(sample_records[:6], start=1)]
    questions = [featurizer.featurize(r, featurizer.question_ids(r.question), featurizer.tokenize_passage(r.context))
                 for r in records]
    handler = QAModelHandler(OnnxRuntimeModelSpec(onnx_model()), 64, 8)
    (result,) = handler.run_inference([questions], handler.load_model())
    decode = DecodeAnswers(DECODE)
    expected = [output.answer for output in decode.process(result) if isinstance(output, Prediction)]
    assert len(expected) == len(records)
    broken = result.packed_windows([2])  # as a model that overflowed in float16 on this question's window
    result.logits[1, broken.starts[0] + broken.context_starts[0] + 1] = np.nan
    outputs = list(decode.process(result))
    rejects = [json.loads(output.value) for output in outputs if getattr(output, "tag", None) == REJECTS]
    assert [(row["id"], row["stage"], row["source"]) for row in rejects] == [(records[2].id, "decode", "q.jsonl:3")]
    assert rejects[0]["reason"] == ("decoding failed: ValueError: the model's logits are not finite (NaN or "
                                    f"infinity) in 1 of {len(questions[2].spans)} windows (the first is window 0)")
    assert [output.answer for output in outputs if isinstance(output, Prediction)] == expected[:2] + expected[3:]
    scores = [output.value for output in outputs if getattr(output, "tag", None) == SCORES]
    assert len(scores) == len(records)  # the dead-lettered question is scored as missing


def test_a_passage_crosses_the_shuffle_once_per_bundle_not_once_per_question():
    from bertqa.job.featurize import IDS, KeyByPassage, PassageText, passage_key

    contexts = ["The bridge at Tholfen was built in 1622.", "Anna Belen is the mayor of Zanlo."]
    questions = [Question(f"q{n}", f"Question {n}?", contexts[n % 2], f"q.jsonl:{n}", (n,)) for n in range(6)]
    step = KeyByPassage()
    step.start_bundle()
    outputs = [output for question in questions for output in step.process(question)]
    keyed = [output for output in outputs if not hasattr(output, "tag")]
    texts = [(key, value.context) for key, value in keyed if isinstance(value, PassageText)]
    assert texts == [(passage_key(questions[0]), contexts[0]), (passage_key(questions[1]), contexts[1])]
    sent = [(key, value) for key, value in keyed if isinstance(value, Question)]
    assert [(key, value.with_context(contexts[n % 2])) for n, (key, value) in enumerate(sent)] == [
        (passage_key(question), question) for question in questions]
    assert all(value.context is None for _, value in sent)
    ids = [output.value for output in outputs if getattr(output, "tag", None) == IDS]
    assert ids == [(q.id, (q.order, q.source, passage_key(q))) for q in questions]
    step.start_bundle()  # a new bundle sends the text again
    again = [output for output in step.process(questions[2]) if not hasattr(output, "tag")]
    assert [type(value) for _, value in again] == [PassageText, Question]


def test_a_vocabulary_that_is_not_the_models_and_questions_cut_short_are_named_in_warnings(
        tmp_path, saved_model, vocab_path, vocab, sample_records, capsys):
    # The right vocabulary and questions that fit: no warning, and the passages' tokens counted.
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(64, 24, 16))  # WINDOW_ARGS
    lengths = [length for _, length in featurizer.questions_tokens([r["question"] for r in sample_records])]
    fitting = [r for r, length in zip(sample_records, lengths) if length <= 16][:8]
    assert len(fitting) == 8
    write_jsonl(tmp_path / "q.jsonl", fitting)
    output = run_job(tmp_path, tmp_path / "q.jsonl", saved_model(), vocab_path)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["passage_tokens"] > 0 and summary["unknown_passage_tokens"] == 0 and "warnings" not in summary
    assert summary["questions_truncated"] == 0 and "warning:" not in capsys.readouterr().err
    # A vocabulary of a few tokens (as a tokenizer that ignored its vocab file writes it): every passage word is
    # [UNK], the model still answers, and only the share of unknown tokens tells. Two questions are longer than
    # --max_query_length (16 here): the model sees their start only, which only their count tells.
    few = tmp_path / "few.txt"
    few.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "."]) + "\n")
    long_questions = [dict(r, question=r["question"] + " the" * 20) if n < 2 else r for n, r in enumerate(fitting)]
    write_jsonl(tmp_path / "long.jsonl", long_questions)
    output = run_job(tmp_path / "few", tmp_path / "long.jsonl", saved_model(), few)
    summary = json.loads((output / "summary.json").read_text())
    share = summary["unknown_passage_tokens"] / summary["passage_tokens"]
    assert share > 0.5 and summary["predicted"] == 8 and summary["questions_truncated"] == 2
    vocabulary, cut = summary["warnings"]
    assert f"tokens ({share:.1%}) are the tokenizer's unknown token: is --vocab_path={few} this model's vocabulary?" \
        in vocabulary
    assert cut.startswith("2 of 8 questions (25.0%) have more than --max_query_length=16 tokens and were cut to it")
    errors = capsys.readouterr().err
    assert f"warning: {vocabulary}" in errors and f"warning: {cut}" in errors


def test_the_unknown_token_is_found_in_every_kind_of_vocabulary():
    from tokenizers import Tokenizer, models

    from bertqa.qa.tokenization import QATokenizer

    def unknown(model):
        return QATokenizer(Tokenizer(model), None).unknown_id

    assert unknown(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]")) == 0
    assert unknown(models.Unigram([("<unk>", 0.0), ("a", -1.0)], unk_id=0)) == 0
    assert unknown(models.BPE({"a": 0, "<unk>": 1}, [], unk_token="<unk>")) == 1
    assert unknown(models.BPE({"a": 0}, [])) is None  # byte-level BPE: no unknown token
