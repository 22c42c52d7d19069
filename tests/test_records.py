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
    assert parse({"id": "d", "question": "Who?", "context": "x", "is_impossible": True}).gold_answers == ()
    assert parse({"id": "e", "question": "Who?", "context": "x", "is_impossible": False}).gold_answers is None
    # evaluate-v2.0.py scores the answers and never reads is_impossible: so do we.
    assert parse({"id": "f", "question": "Who?", "context": "x", "is_impossible": True,
                  "answers": [{"text": "x", "answer_start": 0}]}).gold_answers == ("x",)


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


def test_only_json_whitespace_makes_a_blank_line():
    for blank in ("", "   ", "\t", " \r"):
        assert parse(blank) is None
    for line in ("\u00a0", "\u3000", "\u2028", "\u0085", "\x0b", "\x0c", "\x1c"):
        result = parse(line)
        assert isinstance(result, Reject) and result.stage == "parse" and result.raw == line


@pytest.mark.parametrize("field, line", [
    ("id", '{"id": "\\ud800", "question": "q?", "context": "c c"}'),
    ("question", '{"id": "a", "question": "Who\\udfff?", "context": "c c"}'),
    ("context", '{"id": "a", "question": "Who?", "context": "c \\ud83d c"}'),
])
def test_lone_surrogates_are_named_and_the_row_is_strict_utf8_json(field, line):
    result = parse(line)
    assert isinstance(result, Reject) and f"'{field}' is not valid Unicode text: lone surrogate U+D" in result.reason
    row = result.to_json()
    row.encode("utf-8")  # writable as UTF-8
    assert json.loads(row)["raw"] == line


def test_a_dead_letter_row_is_strict_json_whatever_the_record_held():
    with_nan = Reject("validate", "bad labels", "dev.json#3", {"id": "x", "answers": float("nan"),
                                                                "score": float("-inf"), "q": "a\u2028b\udc80"})
    row = with_nan.to_json()
    assert "\\u2028" in row and "\\udc80" in row and "\n" not in row
    parsed = json.loads(row, parse_constant=lambda name: pytest.fail(f"{name} in a row"))
    assert parsed["raw"]["answers"] == "NaN" and parsed["raw"]["score"] == "-Infinity"
    assert parsed["raw"]["q"] == "a\u2028b\udc80" and "NaN and Infinity are strings" in parsed["reason"]
    deep = []
    for _ in range(100_000):
        deep = [deep]
    parsed = json.loads(Reject("validate", "bad", "dev.json#4", {"id": "y", "x": deep}).to_json())
    assert parsed["raw"] is None and "nested too deeply" in parsed["reason"] and parsed["source"] == "dev.json#4"


def test_deeply_nested_json_is_a_parse_reject_not_a_crash():
    result = parse('{"id": "d", "question": "q?", "context": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert isinstance(result, Reject) and result.stage == "parse" and "nested too deeply" in result.reason
    (squad,) = parse_squad_file('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", "x.json", LIMIT)
    assert isinstance(squad, Reject) and "nested too deeply" in squad.reason


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
