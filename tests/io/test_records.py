import io
import json

import pytest

from bertqa.io.jsonstream import JsonCursor
from bertqa.io.records import Question, Reject, parse_jsonl_line, parse_squad_file

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


def test_hugging_face_squad_v2_rows_are_read_with_their_labels():
    """A row of Hugging Face's squad_v2 (what `Dataset.to_json` writes) keeps its answers as one object of
    lists; an empty list there labels the question unanswerable."""
    row = {"id": "56ddde6b9a695914005b9628", "title": "Normans", "context": "The Normans were in France.",
           "question": "In what country is Normandy located?", "answers": {"text": ["France", "France"],
                                                                           "answer_start": [19, 19]}}
    assert parse(row).gold_answers == ("France", "France")
    assert parse({**row, "answers": {"text": [], "answer_start": []}}).gold_answers == ()
    for broken in ({"answer_start": [19]}, {"text": "France"}, {"text": ["France", 5]}):
        result = parse({**row, "answers": broken})
        assert isinstance(result, Reject) and "needs 'text': a list of strings" in result.reason


@pytest.mark.parametrize(
    "record, reason",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"question": "Who?", "context": "x"}, "missing 'id'"),
        ({"id": 5, "question": "Who?", "context": "x"}, "'id' must be a non-empty string"),
        ({"id": "a", "context": "x"}, "missing 'question'"),
        ({"id": "a", "Question": "Who?", "context": "x"}, "missing 'question' (the record has 'Question'; the name "
                                                          "must be 'question' exactly)"),
        ({"id": "a", "question": "Who?", "contxt": "x"}, "missing 'context' (the record has 'contxt'"),
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


def test_a_missing_field_names_no_other_unless_one_is_near():
    assert parse({"id": "a", "question": "Who?", "text": "x"}).reason == "missing 'context'"


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
    (squad,) = read_squad('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", "x.json")
    assert isinstance(squad, Reject) and "nested too deeply" in squad.reason


def read_squad(text: str, path: str, chunk_bytes: int = 1 << 20, max_value_chars: int = 1 << 20) -> list:
    cursor = JsonCursor(io.BytesIO(text.encode("utf-8", "surrogateescape")), max_value_chars,
                        lambda offset, error: error, chunk_bytes=chunk_bytes)
    return list(parse_squad_file(cursor, path, LIMIT))


def test_squad_files_yield_every_question_with_its_paragraph():
    document = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [
        {"context": "Anna lives in Ulm.", "qas": [
            {"id": "q1", "question": "Where?", "answers": [{"text": "Ulm", "answer_start": 14}], "is_impossible": False},
            {"id": "q2", "question": "Why?", "answers": [], "is_impossible": True},
            {"id": 3, "question": "When?", "answers": []},
        ]},
        {"context": "Second.", "qas": "broken"},
    ]}]}
    results = read_squad(json.dumps(document), "dev.json")
    assert [type(r).__name__ for r in results] == ["Question", "Question", "Reject", "Reject"]
    assert results[0].context == "Anna lives in Ulm." and results[0].gold_answers == ("Ulm",)
    assert results[1].gold_answers == ()
    assert "'id'" in results[2].reason and "no 'qas'" in results[3].reason


def test_a_file_that_is_not_squad_is_one_reject():
    (result,) = read_squad("{}", "x.json")
    assert isinstance(result, Reject) and "not a SQuAD JSON file" in result.reason


def squad_document() -> dict:
    """Every shape the walk must handle: qas before and after their passage, multi-byte text, NaN,
    numbers, nested answers, a paragraph without qas, an article without paragraphs, extra fields."""
    return {"version": "v2.0", "extra": [1, {"x": [2.5e3, None, True]}], "data": [
        {"title": "Zoë", "paragraphs": [
            {"qas": [{"id": "q1", "question": "Wo liegt Ulm? 😀", "answers": [{"text": "Ulm", "answer_start": 0}],
                      "is_impossible": False},
                     {"id": "q2", "question": "Why?", "answers": [], "score": 12345678901234567890}],
             "context": "Ulm liegt an der Donau. — Ünïcödé ✓"},
            {"context": "Second passage\u2028with a line separator.", "qas": [
                {"id": "q3", "question": "What?", "answers": [{"text": "Second", "answer_start": 0}]},
                {"id": 4, "question": "Bad id"}]},
            {"context": "no questions here", "qas": "not a list"},
            [1, 2, 3]]},
        {"title": "no paragraphs"},
        "not an article",
        {"paragraphs": [], "title": "empty"},
        {"title": "last", "paragraphs": [{"context": "Last.", "qas": [{"id": "q5", "question": "Last?"}]}]}]}


def as_tuples(results):
    return [(type(r).__name__, r.source, getattr(r, "id", None), getattr(r, "context", None),
             getattr(r, "reason", None), getattr(r, "raw", None), getattr(r, "gold_answers", None))
            for r in results]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 64, 1 << 20])
def test_a_squad_file_read_in_any_chunk_size_gives_the_same_questions(chunk_bytes):
    text = json.dumps(squad_document(), ensure_ascii=False)
    results = read_squad(text, "dev.json", chunk_bytes=chunk_bytes)
    assert as_tuples(results) == as_tuples(read_squad(text, "dev.json", chunk_bytes=1 << 20))
    kinds = [(type(r).__name__, r.source) for r in results]
    assert kinds == [("Question", "dev.json#0"), ("Question", "dev.json#1"), ("Question", "dev.json#2"),
                     ("Reject", "dev.json#3"), ("Reject", "dev.json#data[0].paragraphs[2]"),
                     ("Reject", "dev.json#data[0].paragraphs[3]"), ("Reject", "dev.json#data[1]"),
                     ("Reject", "dev.json#data[2]"), ("Question", "dev.json#4")]
    assert results[0].context == "Ulm liegt an der Donau. — Ünïcödé ✓" and results[0].question.endswith("😀")
    assert results[2].context == "Second passage\u2028with a line separator."
    assert results[4].raw == {"context": "no questions here", "qas": "not a list"}
    assert results[6].raw == {"title": "no paragraphs"} and results[7].raw == "not an article"


def test_bytes_that_are_not_utf8_are_named_per_question_as_before():
    text = json.dumps({"data": [{"paragraphs": [{"context": "Ulm", "qas": [
        {"id": "ok", "question": "Where?"}, {"id": "bad", "question": "Wh\udcffere?"}]}]}]}, ensure_ascii=False)
    for chunk in (1, 1 << 20):
        ok, bad = read_squad(text, "x.json", chunk_bytes=chunk)
        assert isinstance(ok, Question) and isinstance(bad, Reject) and "U+DCFF" in bad.reason


@pytest.mark.parametrize("tail, where", [
    ('{"id": "q3", "question": "Cut', "not valid JSON: Unterminated string"),
    ('{"id": "q3", "question": "x"} ]}]}]} trailing', "text after the end of the document"),
    ('{"id": "q3", "question": "x"}, }]}]}', "not valid JSON: Expecting value"),
])
def test_a_squad_file_that_breaks_off_keeps_the_questions_before_and_says_where(tail, where):
    head = '{"data": [{"paragraphs": [{"context": "Ulm.", "qas": [{"id": "q1", "question": "A?"}, ' \
           '{"id": "q2", "question": "B?"}, '
    results = read_squad(head + tail, "cut.json", chunk_bytes=5)
    questions = [r for r in results if isinstance(r, Question)]
    assert [q.id for q in questions][:2] == ["q1", "q2"]
    (broken,) = [r for r in results if isinstance(r, Reject)]
    assert broken.stage == "parse" and broken.source == "cut.json" and where in broken.reason
    assert "at character" in broken.reason and "question(s) before are kept" in broken.reason
    assert len(broken.raw) > len(head) and (head + tail).startswith(broken.raw)  # the file as read


HUGE = 'x\\"[{' + "y" * 3000 + '\\\\}]'  # JSON string text of over 3000 characters with escapes and brackets
HUGE_QUESTION = '{"id": "q5", "question": "' + HUGE + '", "x": [[{}]]}'


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 100, 1 << 20])
def test_a_passage_or_question_too_large_to_read_is_skipped_and_the_walk_goes_on(chunk_bytes):
    text = ('{"data": [{"title": "' + HUGE + '", "paragraphs": ['
            '{"context": "Ulm.", "qas": [{"id": "q1", "question": "A?"}]}, '
            '{"context": "' + HUGE + '", "qas": [{"id": "q2", "question": "B?"}, {"id": "q3", "question": "C?"}]}, '
            '{"qas": [{"id": "q4", "question": "D?"}, ' + HUGE_QUESTION + ', '
            '{"id": "q6", "question": "F?"}], "context": "Bonn."}, '
            '{"qas": [{"id": "q7", "question": "G?"}], "context": "K\u00f6ln."}]}]}')
    json.loads(text)  # the document itself is valid JSON
    results = read_squad(text, "big.json", chunk_bytes=chunk_bytes, max_value_chars=1000)
    assert [(type(r).__name__, r.source, r.id) for r in results] == [
        ("Question", "big.json#0", "q1"), ("Reject", "big.json#1", "q2"), ("Reject", "big.json#2", "q3"),
        ("Question", "big.json#3", "q4"), ("Reject", "big.json#4", None), ("Question", "big.json#5", "q6"),
        ("Question", "big.json#6", "q7")]
    assert (results[3].context, results[5].context, results[6].context) == ("Bonn.", "Bonn.", "Köln.")
    passage = results[1]
    assert passage.stage == "validate" and passage.raw == {"id": "q2", "question": "B?"}
    assert passage.reason == (f"'context' has {len(HUGE) + 2:,} characters of JSON, over the limit of {LIMIT} "
                              "(max_context_chars); not read")
    question = results[4]
    assert question.stage == "parse" and question.raw is None
    assert question.reason == (f"a question record of {len(HUGE_QUESTION):,} characters of JSON, too large to read "
                               f"(at character {text.index(HUGE_QUESTION)})")


def test_a_value_too_large_to_read_is_skipped_in_bounded_memory():
    import tracemalloc

    text = ('{"data": [{"paragraphs": [{"context": "' + "\u00e9" * (8 << 20) + '", "qas": [{"id": "q1", '
            '"question": "A?"}]}, {"context": "Ulm.", "qas": [{"id": "q2", "question": "B?"}]}]}]}')  # 48 MiB
    tracemalloc.start()
    rejected, kept = read_squad(text, "big.json", max_value_chars=1 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (rejected.stage, rejected.id, kept.id) == ("validate", "q1", "q2")
    assert peak - len(text) < 24 << 20, f"{(peak - len(text)) / 2**20:.1f} MiB held beside the document's bytes"


def test_a_value_too_large_that_never_ends_stops_the_file_and_says_where():
    text = '{"data": [{"paragraphs": [{"context": "Ulm.", "qas": [{"id": "q1", "question": "A?"}]}, {"context": "' + \
        "x" * 5000
    question, broken = read_squad(text, "big.json", chunk_bytes=100, max_value_chars=1000)
    assert question.id == "q1" and "a value of over 1000 characters without its end" in broken.reason


def test_not_squad_files_are_one_reject_each():
    for text, reason in (("[1, 2]", "expected '{'"), ('{"version": "1"}', "no 'data' list"),
                         ('{"data": {"a": 1}}', "'data' is not a list"), ("", "found the end of the file"),
                         ("\ufeff{\"data\": []}", None)):
        results = read_squad(text, "x.json", chunk_bytes=3)
        if reason is None:
            assert results == []  # a byte-order mark is skipped; no data, no questions
        else:
            (result,) = results
            assert isinstance(result, Reject) and reason in result.reason, (text, result.reason)


TOO_LONG = "9" * 5000  # more digits than Python converts to an int (sys.get_int_max_str_digits(), 4300)


def test_a_number_too_long_to_convert_is_its_records_dead_letter_and_the_rest_is_read():
    rejected = parse('{"id": "q1", "question": "Who?", "context": "Anna.", "answers": [{"text": "Anna", '
                     f'"answer_start": {TOO_LONG}}}]}}')
    assert isinstance(rejected, Reject) and rejected.stage == "parse"
    assert rejected.reason == "the record cannot be read: it holds an integer of more than 4,300 digits, more than can be read"


@pytest.mark.parametrize("chunk_bytes", [1, 7, 1000, 1 << 20])
def test_a_number_too_long_to_convert_in_a_squad_file_loses_only_its_question(chunk_bytes):
    text = ('{"version": ' + TOO_LONG + ', "data": [{"paragraphs": [{"context": "Anna lives in Ulm.", "qas": ['
            '{"id": "q1", "question": "Where?", "answers": [{"text": "Ulm", "answer_start": ' + TOO_LONG + '}]}, '
            '{"id": "q2", "question": "Who?"}], "note": -' + TOO_LONG + 'e5}]}]}')
    results = read_squad(text, "big.json", chunk_bytes=chunk_bytes)
    assert [(type(r).__name__, r.id) for r in results] == [("Reject", None), ("Question", "q2")]
    where = text.index('{"id": "q1"')
    assert results[0].stage == "parse" and results[0].reason == (
        "a question record that cannot be read: it holds an integer of more than 4,300 digits, more than can be read (at "
        f"character {where})")
