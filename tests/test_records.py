import json

import pytest

from bertqa.records import Question, Reject, parse_jsonl_line, parse_squad_file

LIMIT = 1000


def parse(record):
    line = record if isinstance(record, str) else json.dumps(record)
    return parse_jsonl_line(line, "in.jsonl", 7, LIMIT)


def test_valid_records_with_and_without_labels():
    plain = parse({"id": "a", "question": "Who?", "context": "Anna."})
    assert isinstance(plain, Question) and plain.gold_answers is None and plain.source == "in.jsonl:7"
    labelled = parse({"id": "b", "question": "Who?", "context": "Anna.", "answers": [{"text": "Anna", "answer_start": 0}]})
    assert labelled.gold_answers == ("Anna",)
    assert parse({"id": "c", "question": "Who?", "context": "x", "answers": []}).gold_answers == ()
    assert parse({"id": "d", "question": "Who?", "context": "x", "is_impossible": True,
                  "answers": [{"text": "x", "answer_start": 0}]}).gold_answers == ()


@pytest.mark.parametrize(
    "record, reason",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"question": "Who?", "context": "x"}, "missing 'id'"),
        ({"id": 5, "question": "Who?", "context": "x"}, "'id' must be a non-empty string"),
        ({"id": "a", "context": "x"}, "missing 'question'"),
        ({"id": "a", "question": ["Who?"], "context": "x"}, "'question' must be a string, got list"),
        ({"id": "a", "question": "  ", "context": "x"}, "'question' is empty"),
        ({"id": "a", "question": "Who?", "context": ""}, "'context' is empty"),
        ({"id": "a", "question": "Who?", "context": "x" * (LIMIT + 1)}, "over the limit of 1000"),
        ({"id": "a", "question": "Who?", "context": "x", "answers": "x"}, "bad labels"),
        ({"id": "a", "question": "Who?", "context": "x", "is_impossible": "yes"}, "bad labels"),
    ],
)
def test_bad_records_are_rejects_that_say_why(record, reason):
    result = parse(record)
    assert isinstance(result, Reject)
    assert reason in result.reason
    assert result.source == "in.jsonl:7"
    row = json.loads(result.to_json())
    assert row["raw"] == (record if isinstance(record, str) else json.dumps(record)) and row["stage"] in ("parse", "validate")


def test_blank_lines_are_not_records():
    assert parse("   ") is None


def test_squad_files_yield_every_question_with_its_paragraph():
    document = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [
        {"context": "Anna lives in Ulm.", "qas": [
            {"id": "q1", "question": "Where?", "answers": [{"text": "Ulm", "answer_start": 14}], "is_impossible": False},
            {"id": "q2", "question": "Why?", "answers": [], "is_impossible": True},
            {"id": 3, "question": "When?", "answers": []},
        ]},
        {"context": "Second.", "qas": "broken"},
    ]}]}
    results = list(parse_squad_file(json.dumps(document), "dev.json", LIMIT))
    assert [type(r).__name__ for r in results] == ["Question", "Question", "Reject", "Reject"]
    assert results[0].context == "Anna lives in Ulm." and results[0].gold_answers == ("Ulm",)
    assert results[1].gold_answers == ()
    assert "'id'" in results[2].reason and "no 'qas'" in results[3].reason


def test_a_file_that_is_not_squad_is_one_reject():
    (result,) = parse_squad_file("{}", "x.json", LIMIT)
    assert isinstance(result, Reject) and "not a SQuAD JSON file" in result.reason
