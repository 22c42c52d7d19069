"""Documents asked a list of questions (--questions_file): every document asked every question, each tokenized
once, the answers those of the cross product written out as records, and every bad document or questions file
named."""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import json
import re

import pytest

from bertqa.cli import run_command
from bertqa.demo import data
from bertqa.io.documents import MAX_QUESTIONS, QuestionsFileError, load_questions, parse_questions, split_pair_id
from bertqa.io.records import PAIR_SEPARATOR

from conftest import write_jsonl

JOB = ["--max_seq_length=64", "--doc_stride=24", "--max_query_length=16", "--max_batch_size=32"]
QUESTIONS = ["Who founded the town?", "Which river flows through the town?", "How many people live there?",
             "Which town is it twinned with?", "In which month is the lantern festival held?"]


def test_a_questions_file_is_json_lines_or_one_question_per_line():
    assert parse_questions("Who?\n\n  Where?  \n").questions == (("q1", "Who?"), ("q2", "Where?"))
    assert parse_questions('{"question_id": "party", "question": "Who?"}\n{"id": "law", "question": "Which law?"}\n'
                           ).questions == (("party", "Who?"), ("law", "Which law?"))


@pytest.mark.parametrize("text, expected", [
    ("", "holds no question"),
    ('{"question_id": "a", "question": "Who?"}\n{"question_id": "a", "question": "Where?"}', "line 2: 'question_id' "
     "'a' is on line 1 too"),
    ('{"question_id": "a\\u001fb", "question": "Who?"}', "line 1: 'question_id' 'a\\x1fb' holds U+001F"),
    ('{"question_id": "a", "question": ""}', "line 1: 'question' must be a non-empty string"),
    ('{"question_id": 7, "question": "Who?"}', "line 1: 'question_id' must be a non-empty string, got int 7"),
    ('{"question_id": "a", "question": "Who?"}\nWhere?', "line 2: not a JSON object"),
    ('{"question_id": "a", "question": "Who?", "question": "Where?"}', "line 1: it holds a name twice in one object "
     "('question')"),
    ("x" * 10_001, "line 1: the question has 10,001 characters, more than 10,000"),
    ("Who?\n" * (MAX_QUESTIONS + 1), "holds 10,001 questions, more than 10,000"),
])
def test_a_questions_file_that_cannot_be_used_says_which_line_and_why(text, expected):
    with pytest.raises(QuestionsFileError) as error:
        parse_questions(text)
    assert expected in str(error.value)


def test_a_question_may_hold_any_line_separator_but_a_newline():
    # U+2028 and U+0085 are JSON text as they are, and characters of a plain question: neither ends a line.
    assert parse_questions('{"question_id": "a", "question": "Who\u2028wrote it?"}\r\n').questions == (
        ("a", "Who\u2028wrote it?"),)
    assert parse_questions("Who\x85 wrote it?\r\nWhere?\n").questions == (("q1", "Who\x85 wrote it?"),
                                                                          ("q2", "Where?"))


def test_a_compressed_questions_file_is_read_as_the_input_files_are(tmp_path):
    text = "Who founded the town?\nWhere is it?\n".encode()
    for name, packed in (("q.txt.gz", gzip.compress(text)), ("q.txt.bz2", bz2.compress(text))):
        (tmp_path / name).write_bytes(packed)
        assert load_questions(str(tmp_path / name)).questions == (("q1", "Who founded the town?"),
                                                                  ("q2", "Where is it?"))


# Each file made by the test, not at collection: gzip writes the time into its header, and pytest-xdist refuses to
# run when its workers collect tests whose names (here the bytes) differ.
@pytest.mark.parametrize("name, content, expected", [
    pytest.param("q.txt", lambda: gzip.compress(b"Who?\n"), "the file is a gzip file (it starts with the bytes 1f 8b), "
                 "not UTF-8 text: end its name in .gz", id="gzip-named-plain"),
    pytest.param("q.txt", lambda: "Who?\n".encode("utf-16"), "the file is UTF-16 LE text", id="utf-16"),
    pytest.param("q.txt.gz", lambda: gzip.compress(b"Who?\n" * 1000)[:-20], "cannot be read: EOFError",
                 id="gzip-cut-short"),
    pytest.param("q.txt.gz", lambda: b"Who?\n", "cannot be read: BadGzipFile", id="not-gzip"),
    pytest.param("q.txt.gz", lambda: gzip.compress(b" " * (65 << 20)),
                 "more than 67,108,864 bytes decompressed: far too large", id="gzip-bomb"),
    pytest.param("q.txt", lambda: b"Who?\n\xff\n", "not UTF-8 text (byte 5)", id="not-utf-8"),
])
def test_a_questions_file_that_is_not_text_says_what_it_is(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content())
    with pytest.raises(QuestionsFileError) as error:
        load_questions(str(tmp_path / name))
    assert expected in str(error.value)


def test_documents_in_a_json_file_are_read_as_json_lines_and_a_squad_file_is_refused(tmp_path):
    # BigQuery's JSON export and Hugging Face's Dataset.to_json write JSON Lines, often under a .json name.
    from bertqa.io.inputs import FilePart, InputReader
    from bertqa.io.records import Document, Reject

    def read(name: str, documents: bool = True) -> list:
        return list(InputReader("auto", 100_000, documents=documents).read_part(FilePart(str(tmp_path / name))))

    write_jsonl(tmp_path / "export.json", [{"id": "d1", "context": "Anna lives in Ulm."},
                                           {"id": "d2", "context": "Bob lives in Bonn."}])
    assert [(d.id, d.context) for d in read("export.json")] == [("d1", "Anna lives in Ulm."),
                                                                ("d2", "Bob lives in Bonn.")]
    assert all(isinstance(d, Document) for d in read("export.json"))
    # Asked for questions of their own, the same lines are records without one, each named: not "no 'data' list".
    assert [(r.stage, r.reason) for r in read("export.json", documents=False)] == [
        ("validate", "missing 'question'")] * 2
    squad = {"version": "v2.0",
             "data": [{"paragraphs": [{"context": "Anna.", "qas": [{"id": "s1", "question": "Who?"}]}]}]}
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    (letter,) = read("dev.json")
    assert isinstance(letter, Reject) and letter.reason.startswith("a SQuAD file holds questions of its own")


def documents(count: int) -> list[dict]:
    """`count` documents of distinct passages."""
    found, seen = [], set()
    for record in data.generate(seed=12, passages=count * 2):
        if record["context"] not in seen and len(found) < count:
            seen.add(record["context"])
            found.append({"id": f"contract-{len(found)}", "context": record["context"]})
    return found


def run(tmp_path, name, *args) -> dict:
    from apache_beam.metrics.metric import MetricsFilter

    from bertqa.job import pipeline
    from bertqa.dataflow.arguments import split_args

    output = tmp_path / name
    params, beam_args = split_args([f"--output={output}", *JOB, *args])
    result = pipeline.run(params, beam_args, wait=True)
    tokenized = result.metrics().query(MetricsFilter().with_name("passages_tokenized"))["counters"]
    return {"summary": json.loads((output / "summary.json").read_text()),
            "predictions": json.loads((output / "predictions.json").read_text()),
            "rows": [json.loads(line) for path in sorted(output.glob("predictions-*.jsonl")) for line in open(path)],
            "passages_tokenized": sum(counter.committed for counter in tokenized)}


def test_a_thousand_documents_asked_five_questions_answer_as_the_cross_product(tmp_path, saved_model, vocab_path):
    docs = documents(1000)
    write_jsonl(tmp_path / "docs.jsonl", docs)
    (tmp_path / "questions.txt").write_text("\n".join(QUESTIONS) + "\n")
    model = [f"--model_path={saved_model()}", f"--vocab_path={vocab_path}"]
    asked = run(tmp_path, "asked", f"--input={tmp_path}/docs.jsonl", f"--questions_file={tmp_path}/questions.txt",
                *model)
    pairs = [{"id": f"{d['id']}{PAIR_SEPARATOR}q{n + 1}", "question": q, "context": d["context"]}
             for d in docs for n, q in enumerate(QUESTIONS)]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    crossed = run(tmp_path, "crossed", f"--input={tmp_path}/pairs.jsonl", *model)
    assert asked["predictions"] == crossed["predictions"] and len(asked["predictions"]) == 5000
    assert asked["passages_tokenized"] == 1000  # each document once, for all five of its questions
    summary = asked["summary"]
    assert (summary["records_read"], summary["questions_asked"], summary["pairs"], summary["predicted"],
            summary["dead_lettered"]) == (1000, 5, 5000, 5000, 0)
    # Each question, in the file's order, with the documents it got a prediction and an answer from.
    answered = collections.Counter(split_pair_id(pair)[1] for pair, answer in asked["predictions"].items() if answer)
    assert summary["by_question"] == [{"question_id": f"q{n + 1}", "predicted": 1000, "answered": answered[f"q{n + 1}"],
                                       "dead_lettered": 0} for n in range(len(QUESTIONS))]
    assert sum(answered.values()) == summary["answered"]
    row = next(row for row in asked["rows"] if row["id"] == f"contract-7{PAIR_SEPARATOR}q3")
    assert (row["document_id"], row["question_id"]) == ("contract-7", "q3")
    assert split_pair_id(row["id"]) == ("contract-7", "q3")


def test_documents_from_a_table_and_bad_documents_each_one_dead_letter(tmp_path, saved_model, vocab_path):
    import pyarrow
    import pyarrow.parquet

    docs = documents(3)
    rows = [{"doc": d["id"], "text": d["context"]} for d in docs] + [
        {"doc": f"bad{PAIR_SEPARATOR}id", "text": "Anna."}, {"doc": "empty", "text": None},
        {"doc": docs[0]["id"], "text": "A second document under the first one's id."}]
    (tmp_path / "in").mkdir()
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "in" / "docs.parquet")
    (tmp_path / "questions.jsonl").write_text('{"question_id": "who", "question": "Who founded the town?"}\n'
                                              '{"question_id": "river", "question": "Which river is it?"}\n')
    squad = {"data": [{"paragraphs": [{"context": "Anna.", "qas": [{"id": "s1", "question": "Who?"}]}]}]}
    (tmp_path / "in" / "dev.json").write_text(json.dumps(squad))  # holds questions of its own: not documents
    assert run_command([f"--input={tmp_path}/in/*", f"--output={tmp_path}/out", f"--model_path={saved_model()}",
                        f"--vocab_path={vocab_path}", f"--questions_file={tmp_path}/questions.jsonl",
                        "--id_column=doc", "--context_column=text", "--max_dead_letter_fraction=1", *JOB]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["records_read"], summary["pairs"], summary["predicted"], summary["dead_lettered"]) == (7, 8, 6, 5)
    # Per question: the duplicate document's pair a dead letter; the documents refused before they were asked
    # anything counted for no question.
    by_question = [(entry["question_id"], entry["predicted"], entry["dead_lettered"])
                   for entry in summary["by_question"]]
    assert by_question == [("who", 3, 1), ("river", 3, 1)]
    letters = [json.loads(line) for path in (tmp_path / "out" / "dead_letter").glob("*.jsonl") for line in open(path)]
    letters = sorted(letters, key=lambda row: (row["reason"], row.get("question_id") or ""))
    assert [row["reason"].split(":")[0] for row in letters] == [
        "'doc' holds U+001F, the separator of a pair's document and question ids",
        "a SQuAD file holds questions of its own", "duplicate id 'contract-0\\x1friver'",
        "duplicate id 'contract-0\\x1fwho'", "missing 'text'"]
    # Each dead letter names its document, and a pair's its question too.
    assert [(row.get("document_id"), row.get("question_id")) for row in letters] == [
        (None, None), (None, None), ("contract-0", "river"), ("contract-0", "who"), ("empty", None)]
    predicted = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(predicted) == sorted(f"{d['id']}{PAIR_SEPARATOR}{q}" for d in docs for q in ("who", "river"))


def test_a_questions_file_that_cannot_be_used_stops_the_job_before_it_starts(tmp_path, saved_model, vocab_path,
                                                                             capsys):
    write_jsonl(tmp_path / "docs.jsonl", documents(2))
    (tmp_path / "questions.jsonl").write_text('{"question_id": "a", "question": "Who?"}\n{"question_id": "a"}\n')
    args = [f"--input={tmp_path}/docs.jsonl", f"--output={tmp_path}/out", f"--model_path={saved_model()}",
            f"--vocab_path={vocab_path}", *JOB]
    assert run_command([*args, f"--questions_file={tmp_path}/questions.jsonl"]) == 2
    assert (f"--questions_file={tmp_path}/questions.jsonl: line 2: 'question_id' 'a' is on line 1 too"
            in capsys.readouterr().err)
    assert run_command([*args, f"--questions_file={tmp_path}/none.txt"]) == 2
    assert f"--questions_file={tmp_path}/none.txt: not found" in capsys.readouterr().err
    assert run_command([*args, f"--questions_file={tmp_path}/questions.jsonl", "--input_format=squad"]) == 2
    assert "a SQuAD file holds questions of its own (input_format=squad)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_questions_file_is_read_once_and_the_job_asks_the_questions_that_were_checked(
        tmp_path, saved_model, vocab_path, monkeypatch, capsys):
    from bertqa.io import documents as documents_module

    docs = documents(2)
    write_jsonl(tmp_path / "docs.jsonl", docs)
    questions = tmp_path / "questions.txt"
    # The second question is longer than --max_query_length=16 tokens: named before the job, counted in it.
    questions.write_text("Who founded the town?\nWhich river flows through the town" + " and" * 20 + "?\n")
    reads = []
    open_input = documents_module.open_input

    def open_then_spoil(path):
        if path != str(questions):
            return open_input(path)
        reads.append(path)
        with open_input(path) as handle:
            data = handle.read()
        questions.write_text('{"question_id": "q1"}\n')  # replaced once read: a second read finds a file refused
        return io.BytesIO(data)

    monkeypatch.setattr(documents_module, "open_input", open_then_spoil)
    assert run_command([f"--input={tmp_path}/docs.jsonl", f"--output={tmp_path}/out", f"--model_path={saved_model()}",
                        f"--vocab_path={vocab_path}", f"--questions_file={questions}", *JOB]) == 0
    assert reads == [str(questions)]  # the checks', handed on to the progress count and the job
    predicted = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(predicted) == sorted(f"{d['id']}{PAIR_SEPARATOR}q{n}" for d in docs for n in (1, 2))
    assert re.search(rf"warning: --questions_file={re.escape(str(questions))}: 1 of 2 questions have more than "
                     r"--max_query_length=16 tokens and are cut to it in every window \(q2: \d+ tokens\): the model "
                     "sees only their start", capsys.readouterr().err)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["questions_truncated"] == 2 and summary["warnings"][0].startswith("2 of 4 questions (50.0%)")
