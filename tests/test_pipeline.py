"""The whole job on the in-process runner: every record accounted for, outputs readable."""

import glob
import gzip
import json

import numpy as np
import pytest

from bertqa.windows import pad_batch
from bertqa.cli import run_command
from bertqa.decoding import DecodeSettings, WindowLogits, decode_answer
from bertqa.windows import Featurizer, WindowSettings

from conftest import write_jsonl

WINDOW_ARGS = ["--max_seq_length=64", "--doc_stride=24", "--max_query_length=16", "--max_batch_size=4"]


def run_job(tmp_path, input_pattern, model_path, vocab_path, *extra):
    output = tmp_path / "out"
    code = run_command([f"--input={input_pattern}", f"--output={output}", f"--model_path={model_path}",
                        f"--vocab_path={vocab_path}", "--backend=tensorflow", *WINDOW_ARGS, *extra])
    assert code == 0
    return output


def read_rows(pattern):
    rows = []
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def expected_answers(tiny_model, vocab, records):
    """What the model answers, computed without Beam: one window at a time, unpadded."""
    featurizer = Featurizer(vocab, True, WindowSettings(64, 24, 16))
    answers = {}
    for record in records:
        passage = featurizer.tokenize_passage(record["context"])
        logits = []
        for window in featurizer.windows(record["id"], record["question"], passage):
            out = tiny_model.logits(*pad_batch([window], window.length)).numpy()[0]
            logits.append(WindowLogits(window.index, window.context_start, window.doc_offset, window.max_context,
                                       out[:, 0], out[:, 1]))
        answers[record["id"]] = decode_answer(logits, record["context"], passage.offsets, DecodeSettings())
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


def test_every_record_is_answered_or_dead_lettered(tmp_path, saved_model, vocab_path, vocab, tiny_model,
                                                   sample_records, bad_lines):
    first, second = sample_records[:12], sample_records[12:]
    duplicate = dict(first[0], question="A later record with an id already used")
    write_jsonl(tmp_path / "a.jsonl", first + bad_lines[:3] + [""])
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in second + [duplicate])
        handle.writelines(line + "\n" for line in bad_lines[3:])
    output = run_job(tmp_path, tmp_path / "*.jsonl*", saved_model(), vocab_path, "--max_context_chars=10000")

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
    assert len(dead) == len(bad_lines) + 1
    assert any("not valid JSON" in r for r in reasons)
    assert any("missing 'id'" in r for r in reasons)
    assert any("'id' must be a non-empty string" in r for r in reasons)
    assert any("'question' is empty" in r for r in reasons)
    assert any("missing 'context'" in r for r in reasons)
    assert any(row["id"] == "huge" and "over the limit of 10000" in row["reason"] for row in dead)
    (dup,) = [row for row in dead if row["stage"] == "deduplicate"]
    assert dup["id"] == first[0]["id"] and dup["source"].endswith("b.jsonl.gz:%d" % (len(second) + 1))
    assert dup["raw"]["question"] == duplicate["question"] and "a.jsonl:1" in dup["reason"]

    summary = json.loads((output / "summary.json").read_text())
    assert summary["records_read"] == len(sample_records) + len(bad_lines) + 1
    assert summary["records_read"] == summary["predicted"] + summary["dead_lettered"]
    assert summary["predicted"] == len(sample_records)
    assert summary["answered"] + summary["no_answer"] == summary["predicted"]
    assert summary["answered"] == sum(1 for text in predictions.values() if text)
    assert summary["metrics"]["total"] == len(sample_records)
    assert summary["metrics"]["NoAns_total"] == sum(1 for r in sample_records if not r["answers"])
    assert summary["questions_per_second"] > 0


def test_squad_json_input_with_two_worker_processes(tmp_path, saved_model, vocab_path, vocab, tiny_model,
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
    output = run_job(tmp_path, tmp_path / "dev-v2.0.json", saved_model("tfhub"), vocab_path,
                     "--direct_num_workers=2", "--direct_running_mode=multi_processing",
                     f"--dead_letter_output={dead_letters}")
    predictions = json.loads((output / "predictions.json").read_text(encoding="utf-8"))
    expected = expected_answers(tiny_model, vocab, sample_records)
    assert predictions == {key: answer.text for key, answer in expected.items()}
    summary = json.loads((output / "summary.json").read_text())
    assert summary["dead_lettered"] == 0 and summary["records_read"] == len(sample_records)
    assert list(dead_letters.glob("dead_letter*.jsonl")) and read_rows(str(dead_letters / "*.jsonl")) == []
    assert not (output / "dead_letter").exists()


def test_inference_failures_are_dead_lettered_per_question(tmp_path, saved_model, vocab_path, sample_records):
    # A model with a position table shorter than the windows fails on long windows only.
    from bertqa.demo.tiny_bert import TinyBertConfig, TinyBertQA, export

    import tensorflow as tf

    short = TinyBertQA(TinyBertConfig(vocab_size=600, hidden_size=16, num_heads=2, max_positions=40))
    export(short, str(tmp_path / "short"))
    records = sample_records[:8]
    write_jsonl(tmp_path / "q.jsonl", records)
    output = run_job(tmp_path, tmp_path / "q.jsonl", tmp_path / "short", vocab_path)
    predictions = json.loads((output / "predictions.json").read_text())
    dead = read_rows(str(output / "dead_letter" / "*.jsonl"))
    assert len(predictions) + len(dead) == len(records)
    assert dead and all(row["stage"] == "inference" and "inference failed" in row["reason"] for row in dead)
    assert {row["id"] for row in dead}.isdisjoint(predictions)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["records_read"] == summary["predicted"] + summary["dead_lettered"] == len(records)


@pytest.mark.parametrize("convention", ["huggingface", "ngc", "tfhub", "stacked5d"])
def test_every_signature_convention_through_the_whole_job(convention, tmp_path, saved_model, vocab_path, vocab,
                                                         tiny_model, sample_records):
    records = sample_records[:6]
    write_jsonl(tmp_path / "q.jsonl", records)
    output = run_job(tmp_path, tmp_path / "q.jsonl", saved_model(convention), vocab_path)
    predictions = json.loads((output / "predictions.json").read_text(encoding="utf-8"))
    assert predictions == {key: answer.text for key, answer in expected_answers(tiny_model, vocab, records).items()}
