"""Tables in: Parquet, Avro and CSV files written by their own libraries, their columns mapped to the record's
fields; every row predicted or dead-lettered (naming the column), answers equal to the same records as JSONL, and
damaged files keeping the rows before the damage."""

from __future__ import annotations

import csv
import datetime
import gzip
import json

import pytest

from bertqa.cli import run_command
from bertqa.demo import data
from bertqa.io.inputs import FilePart, InputReader
from bertqa.io.tables import Columns

from conftest import write_jsonl
from test_inputs import read_file

JOB = ["--max_seq_length=64", "--doc_stride=24", "--max_query_length=16", "--max_batch_size=16",
       "--max_dead_letter_fraction=1"]
COLUMNS = ["--id_column=qid", "--question_column=ask", "--context_column=passage", "--answers_column=gold"]


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(data.generate(seed=8, passages=25))  # 100 questions, labelled, a quarter unanswerable


def table_rows(records: list[dict]) -> list[dict]:
    return [{"qid": r["id"], "ask": r["question"], "passage": r["context"],
             "gold": [a["text"] for a in r["answers"]]} for r in records]


def write_parquet(path, rows: list[dict], **options) -> str:
    import pyarrow
    import pyarrow.parquet

    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), str(path), **options)
    return str(path)


def write_avro(path, rows: list[dict], codec: str = "null") -> str:
    """Rows of (nullable) strings, the last column a list of strings; its blocks compressed with `codec`."""
    import fastavro

    *texts, labels = list(rows[0])
    schema = {"type": "record", "name": "Question", "fields": [
        *({"name": name, "type": ["null", "string"]} for name in texts),
        {"name": labels, "type": ["null", {"type": "array", "items": "string"}]}]}
    with open(path, "wb") as handle:
        # Many blocks: a cut file keeps whole ones.
        fastavro.writer(handle, schema, rows, codec=codec, sync_interval=2000)
    return str(path)


def write_csv(path, rows: list[dict], delimiter: str = ",") -> str:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(["qid", "ask", "passage", "gold"])
        for row in rows:
            gold = row["gold"]
            writer.writerow([row["qid"], row["ask"], row["passage"], json.dumps(gold) if gold is not None else ""])
    return str(path)


def job(tmp_path, name: str, input_path: str, saved_model, vocab_path, *extra) -> dict:
    output = tmp_path / name
    assert run_command([f"--input={input_path}", f"--output={output}", f"--model_path={saved_model()}",
                        f"--vocab_path={vocab_path}", *JOB, *extra]) == 0
    rows = [json.loads(line) for path in sorted(output.glob("dead_letter/*.jsonl")) for line in open(path)]
    return {"summary": json.loads((output / "summary.json").read_text()),
            "predictions": json.loads((output / "predictions.json").read_text()), "dead": rows}


@pytest.mark.parametrize("kind", ["parquet", "avro", "csv", "tsv.gz"])
def test_a_table_answers_as_the_same_records_in_json_lines(kind, records, tmp_path, saved_model, vocab_path):
    rows = table_rows(records)
    path = tmp_path / f"questions.{kind}"
    if kind == "parquet":
        write_parquet(path, rows, row_group_size=30)
    elif kind == "avro":
        write_avro(path, rows)
    elif kind == "csv":
        write_csv(path, rows)
    else:  # tab-separated, compressed
        write_csv(tmp_path / "plain.tsv", rows, delimiter="\t")
        path.write_bytes(gzip.compress((tmp_path / "plain.tsv").read_bytes()))
    table = job(tmp_path, "table", str(path), saved_model, vocab_path, *COLUMNS)
    lines = job(tmp_path, "jsonl", write_jsonl(tmp_path / "q.jsonl", records), saved_model, vocab_path)
    assert table["predictions"] == lines["predictions"] and len(table["predictions"]) == len(records)
    # The labels were read too: the same scores as the JSON Lines records' own answers give.
    assert table["summary"]["metrics"] == lines["summary"]["metrics"] and table["summary"]["metrics"]["total"] == 100
    assert table["summary"]["dead_lettered"] == 0


# What BigQuery's export writes (JobConfigurationExtract.compression): Avro with DEFLATE or SNAPPY blocks, Parquet
# with SNAPPY (its default), GZIP or ZSTD pages, and uncompressed files of both.
EXPORT_CODECS = [("avro", "null"), ("avro", "deflate"), ("avro", "snappy"), ("parquet", "none"),
                 ("parquet", "snappy"), ("parquet", "gzip"), ("parquet", "zstd")]


@pytest.mark.parametrize("kind, codec", EXPORT_CODECS)
def test_every_compression_a_bigquery_export_writes_is_read(kind, codec, records, tmp_path):
    rows = default_rows(records[:40])
    path = tmp_path / f"export.{kind}"
    if kind == "avro":
        write_avro(path, rows, codec=codec)
    else:
        write_parquet(path, rows, compression=codec, row_group_size=15)
    assert read_file(path) == [(row["id"], tuple(row["answers"])) for row in rows]


def odd_rows(records: list[dict]) -> list[dict]:
    """Rows that each break one rule, after two good ones: (row, the reason its dead letter must give)."""
    good = table_rows(records[:2])
    return [*good,
            {**good[0], "qid": None},  # NULL id
            {**good[0], "qid": "n1", "ask": None},
            {**good[0], "qid": "n2", "passage": "x" * 2000},  # over --max_context_chars=1000
            {**good[0], "qid": "n3", "ask": "   "}]


ODD_REASONS = ["missing 'qid'", "missing 'ask'", "'passage' has 2000 characters, over the limit of 1000 "
               "(max_context_chars)", "'ask' is empty"]


@pytest.mark.parametrize("kind", ["parquet", "avro", "csv"])
def test_a_row_that_does_not_fit_is_a_dead_letter_naming_the_column_with_the_row_as_raw(kind, records, tmp_path,
                                                                                         saved_model, vocab_path):
    rows = odd_rows(records)
    path = {"parquet": write_parquet, "avro": write_avro, "csv": write_csv}[kind](tmp_path / f"t.{kind}", rows)
    result = job(tmp_path, "out", path, saved_model, vocab_path, *COLUMNS, "--max_context_chars=1000")
    assert len(result["predictions"]) == 2 and result["summary"]["records_read"] == len(rows)
    reasons = [row["reason"] for row in result["dead"]]
    # CSV has no NULL: an empty cell is an empty string.
    expected = ["'qid' must be a non-empty string, got str ''", "'ask' is empty", *ODD_REASONS[2:]] if (
        kind == "csv") else ODD_REASONS
    assert sorted(reasons) == sorted(expected)
    raw = next(row for row in result["dead"] if "over the limit" in row["reason"])
    assert raw["stage"] == "validate" and raw["raw"]["qid"] == "n2" and raw["raw"]["ask"] == rows[0]["ask"]
    assert raw["source"] == (f"{path}:6" if kind == "csv" else f"{path}#4")


def test_typed_columns_integer_ids_missing_columns_and_values_json_cannot_hold(tmp_path):
    import pyarrow

    table = pyarrow.table({
        "id": pyarrow.array([7, 8, 9], pyarrow.int64()),  # BigQuery's INT64 keys
        "question": ["Who?", "Who?", None], "context": ["Anna.", "Bob.", "Cy."],
        "when": pyarrow.array([datetime.datetime(2026, 12, 6, 23, 0)] * 3), "blob": [b"\x00\xff", b"", b"x"]})
    path = str(tmp_path / "typed.parquet")
    import pyarrow.parquet

    pyarrow.parquet.write_table(table, path)
    found = read_file(path)
    assert found[:2] == [("7", None), ("8", None)]
    assert found[2] == ("validate", "missing 'question'")
    # A table without the question column at all: each row says so.
    no_questions = str(tmp_path / "no_questions.parquet")
    pyarrow.parquet.write_table(table.drop(["question"]), no_questions)
    assert read_file(no_questions) == [("validate", "missing 'question'")] * 3
    # One whose question column is spelt otherwise (BigQuery keeps a column's case): each row names it and the flag.
    spelt = str(tmp_path / "spelt.parquet")
    pyarrow.parquet.write_table(table.rename_columns(["id", "Question", "context", "when", "blob"]), spelt)
    assert read_file(spelt) == [("validate", "missing 'question' (the table has a column 'Question': "
                                             "--question_column=Question reads it)")] * 3
    (tmp_path / "spelt.csv").write_text("ID,question,context\n7,Who?,Anna.\n")
    assert read_file(tmp_path / "spelt.csv") == [("validate", "missing 'id' (the table has a column 'ID': "
                                                              "--id_column=ID reads it)")]


def test_text_in_binary_columns_is_read_as_utf8_and_bytes_that_are_not_are_named(tmp_path):
    """Impala, Hive and older Spark write text as Parquet binary without its UTF8 annotation; Avro has bytes."""
    import fastavro
    import pyarrow
    import pyarrow.parquet

    binary = pyarrow.binary()
    pyarrow.parquet.write_table(pyarrow.table({
        "id": pyarrow.array([b"q1", b"q2", b"q3"], binary),
        "question": pyarrow.array(["Who wrote it?".encode(), "Wo?".encode(), b"Who \xff?"], binary),
        "context": pyarrow.array(["Anna Zoë wrote it.".encode()] * 3, binary),
        "answers": pyarrow.array([["Anna Zoë".encode()], [], ["Anna".encode()]], pyarrow.list_(binary))}),
        tmp_path / "binary.parquet")
    assert read_file(tmp_path / "binary.parquet") == [
        ("q1", ("Anna Zoë",)), ("q2", ()),
        ("validate", "'question' is not valid Unicode text: lone surrogate U+DCFF at character 4 (the byte 0xFF, "
                     "which is not UTF-8, or a \\udcff escape: a file in another encoding, such as Windows-1252, "
                     "must be saved as UTF-8)")]
    schema = {"type": "record", "name": "Q", "fields": [
        {"name": name, "type": "bytes"} for name in ("id", "question", "context", "answers")]}
    with open(tmp_path / "binary.avro", "wb") as handle:
        fastavro.writer(handle, schema, [{"id": b"q1", "question": b"Who wrote it?", "context": b"Anna wrote it.",
                                          "answers": b"Anna"}])
    assert read_file(tmp_path / "binary.avro") == [("q1", ("Anna",))]


def test_a_dead_letters_raw_holds_any_column_type_as_json(tmp_path):
    import fastavro
    import pyarrow
    import pyarrow.parquet

    from bertqa.io.inputs import FilePart
    from bertqa.job.read import ParseFile

    def letters(path):
        return [json.loads(result.value) for result in ParseFile("auto", 1000).process(FilePart(str(path)))]

    # Avro rows come whole, every field: bytes, a timestamp and a decimal beside a question without an id.
    schema = {"type": "record", "name": "Q", "fields": [
        {"name": "question", "type": "string"}, {"name": "context", "type": "string"},
        {"name": "blob", "type": "bytes"}, {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}}]}
    import decimal

    with open(tmp_path / "t.avro", "wb") as handle:
        fastavro.writer(handle, schema, [{"question": "Who?", "context": "Anna.", "blob": b"\x00\xff",
                                          "at": datetime.datetime(2026, 12, 6, tzinfo=datetime.timezone.utc),
                                          "price": decimal.Decimal("1.25")}])
    (row,) = letters(tmp_path / "t.avro")
    assert row["reason"] == "missing 'id'" and row["raw"] == {
        "question": "Who?", "context": "Anna.", "blob": "AP8=", "at": "2026-12-06T00:00:00+00:00", "price": "1.25"}
    # Parquet is read in the columns a record needs only: a date where the id should be.
    pyarrow.parquet.write_table(pyarrow.table({"id": [datetime.date(2026, 12, 6)], "question": ["Who?"],
                                               "context": ["Anna."], "other": [b"unread"]}), tmp_path / "t.parquet")
    (row,) = letters(tmp_path / "t.parquet")
    assert row["reason"] == "'id' must be a non-empty string, got date datetime.date(2026, 12, 6)"
    assert row["raw"] == {"id": "2026-12-06", "question": "Who?", "context": "Anna."}


@pytest.mark.parametrize("cell, expected", [
    ('["Ulm", "Ulm an der Donau"]', ("Ulm", "Ulm an der Donau")),
    ('[{"text": "Ulm", "answer_start": 14}]', ("Ulm",)),
    ('{"text": ["Ulm"], "answer_start": [14]}', ("Ulm",)),
    ("[]", ()),
    ("Ulm", ("Ulm",)),  # one answer's text
    ("", None),  # unlabelled
])
def test_a_csv_answers_cell_is_json_one_answer_or_nothing(cell, expected, tmp_path):
    path = tmp_path / "t.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id", "question", "context", "answers"],
                                      ["q1", "Where?", "Anna lives in Ulm.", cell]])
    assert read_file(path) == [("q1", expected)]


def test_a_csv_answers_cell_that_starts_like_json_but_is_not_is_its_rows_dead_letter(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,question,context,answers\nq1,Where?,Anna lives in Ulm.,"[""Ulm"""\nq2,Who?,Anna.,\n')
    (letter, kept) = read_file(path)
    assert letter[0] == "validate" and letter[1].startswith("bad labels: column 'answers' starts like JSON but is not")
    assert kept == ("q2", None)


def test_a_table_naming_a_column_the_job_reads_twice_is_one_dead_letter_for_the_file(tmp_path):
    # A spreadsheet's header may repeat a name, and pyarrow writes such a schema: csv.DictReader, to_pylist and
    # fastavro would keep the last value, silently.
    import fastavro
    import pyarrow
    import pyarrow.parquet

    path = tmp_path / "t.csv"
    path.write_text("id,question,context,id\nq1,Where?,Anna lives in Ulm.,q9\n")
    assert read_file(path) == [("parse", "the CSV header names the column 'id' 2 times (columns 1 and 4), so which "
                                         "of a row's values is the field is unclear: rename the others")]
    cells = [pyarrow.array([text]) for text in ("q1", "Where?", "Anna lives in Ulm.", "Who?")]
    pyarrow.parquet.write_table(pyarrow.Table.from_arrays(cells, ["id", "question", "context", "question"]),
                                tmp_path / "t.parquet")
    assert read_file(tmp_path / "t.parquet") == [("parse", "the Parquet schema names the column 'question' 2 times "
                                                           "(columns 2 and 4), so which of a row's values is the "
                                                           "field is unclear: rename the others")]
    # Avro forbids it, but fastavro writes and reads such a schema.
    fields = [{"name": name, "type": "string"} for name in ("id", "question", "context", "id")]
    with open(tmp_path / "t.avro", "wb") as handle:
        fastavro.writer(handle, {"type": "record", "name": "Q", "fields": fields},
                        [{"id": "q1", "question": "Where?", "context": "Anna lives in Ulm."}])
    assert read_file(tmp_path / "t.avro") == [("parse", "the Avro schema names the column 'id' 2 times (columns 1 "
                                                        "and 4), so which of a row's values is the field is unclear: "
                                                        "rename the others")]
    path.write_text("id,question,context,note,note\nq1,Where?,Anna lives in Ulm.,a,b\n")  # a column not read
    assert read_file(path) == [("q1", None)]
    # Documents asked a questions file: a table's question column is not read.
    path.write_text("id,question,context,question\nd1,Where?,Anna lives in Ulm.,Who?\n")
    (document,) = InputReader("auto", 100_000, Columns(), documents=True).read_part(FilePart(str(path)))
    assert (document.id, document.context) == ("d1", "Anna lives in Ulm.")


def test_csv_cells_over_the_size_limit_and_bytes_that_are_not_utf8_lose_only_their_rows(tmp_path):
    path = tmp_path / "t.csv"
    huge = "y" * 200_000  # over the csv module's default field limit, under the job's record size
    path.write_bytes(b"id,question,context\n" + b"q1,Who?," + huge.encode() + b"\nq2,Wh\xffo?,Anna.\nq3,Who?,Cy.\n")
    found = read_file(path)
    assert found[0] == ("validate", "'context' has 200000 characters, over the limit of 100000 (max_context_chars)")
    assert found[1] == ("validate", "'question' is not valid Unicode text: lone surrogate U+DCFF at character 2 "
                                    "(the byte 0xFF, which is not UTF-8, or a \\udcff escape: a file in another "
                                    "encoding, such as Windows-1252, must be saved as UTF-8)")
    assert found[2] == ("q3", None)
    # A cell over the job's own record size limit: that row's parse dead letter, and the rows after are read.
    path.write_bytes(b"id,question,context\nq1,Who?," + b"z" * 3_000_000 + b"\nq3,Who?,Cy.\n")
    (letter, kept) = read_file(path)
    assert letter[0] == "parse" and letter[1].startswith("not a CSV row: field larger than field limit")
    assert kept == ("q3", None)


def default_rows(records: list[dict]) -> list[dict]:
    """The records as rows under the default column names (id, question, context, answers)."""
    return [{"id": r["id"], "question": r["question"], "context": r["context"],
             "answers": [a["text"] for a in r["answers"]]} for r in records]


def test_a_table_cut_short_keeps_the_rows_before_and_says_where_it_stopped(records, tmp_path):
    rows = default_rows(records)
    avro = write_avro(tmp_path / "whole.avro", rows)
    cut = tmp_path / "cut.avro"
    cut.write_bytes(open(avro, "rb").read()[: int(0.6 * len(open(avro, "rb").read()))])
    found = read_file(cut)
    kept, (stage, reason) = found[:-1], found[-1]
    assert 0 < len(kept) < len(rows) and [k[0] for k in kept] == [r["id"] for r in rows[:len(kept)]]
    assert stage == "read" and reason.startswith("Avro file could not be read to its end: ")
    assert reason.endswith(f"(after {len(kept)} rows; the rows before are kept)")

    parquet = write_parquet(tmp_path / "whole.parquet", rows)
    (tmp_path / "cut.parquet").write_bytes(open(parquet, "rb").read()[:-100])  # its footer, the schema, is gone
    ((stage, reason),) = read_file(tmp_path / "cut.parquet")
    assert stage == "read" and reason.startswith("Parquet file could not be read to its end: ")
    assert reason.endswith("(after 0 rows; the rows before are kept)")

    whole = write_csv(tmp_path / "whole.csv", table_rows(records))
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(open(whole, "rb").read())[:-30])
    found = read_file(tmp_path / "cut.csv.gz")
    assert found[-1][0] == "read" and found[-1][1].startswith("CSV file could not be read to its end: EOFError")
    assert len(found) > 50


def test_a_table_on_cloud_storage_is_read_as_a_local_one(bucket, records, tmp_path):
    rows = default_rows(records[:20])
    for kind in ("parquet", "avro", "csv"):
        local = tmp_path / f"q.{kind}"
        if kind == "csv":
            with open(local, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, ["id", "question", "context", "answers"])
                writer.writeheader()
                writer.writerows({**r, "answers": json.dumps(r["answers"])} for r in rows)
        else:
            (write_parquet if kind == "parquet" else write_avro)(local, rows)
        bucket.blob(f"tables/q.{kind}").upload_from_filename(str(local))
        found = read_file(str(local))
        assert read_file(f"gs://qa/tables/q.{kind}") == found and len(found) == 20
        assert found[0] == (rows[0]["id"], tuple(rows[0]["answers"]))
