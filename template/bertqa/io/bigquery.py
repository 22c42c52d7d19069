"""BigQuery's tables as the job writes them: their schemas, declared in BigQuery's own JSON form (the `schema` of
tables.insert) so that a table is created with them when missing and every row loaded fits them, and the rows.
The job reads and writes through Beam's own connectors (bertqa.job.read, bertqa.job.write).
"""

from __future__ import annotations

import enum
import json

from bertqa.io.outputs import json_line


class BigQueryReadMethod(enum.StrEnum):
    export = "export"
    direct_read = "direct_read"


class WriteDisposition(enum.StrEnum):
    empty = "empty"
    append = "append"
    truncate = "truncate"


def _column(name: str, kind: str, mode: str, description: str) -> dict:
    return {"name": name, "type": kind, "mode": mode, "description": description}


_PAIR_COLUMNS = (
    _column("document_id", "STRING", "NULLABLE", "With --questions_file: the document's id."),
    _column("question_id", "STRING", "NULLABLE", "With --questions_file: the question's id."),
)
_PREDICTION_COLUMNS = (
    _column("id", "STRING", "REQUIRED", "The record's id (documents mode: document_id U+001F question_id)."),
    *_PAIR_COLUMNS,
    _column("answer", "STRING", "REQUIRED", "The answer's text; empty for no answer."),
    _column("score", "FLOAT64", "REQUIRED", "Start plus end logit of the chosen span (or the null score)."),
    _column("probability", "FLOAT64", "REQUIRED", "Softmax over the n-best candidates, no answer included."),
    _column("start_char", "INT64", "NULLABLE", "The answer's first character in the context; NULL: no answer."),
    _column("end_char", "INT64", "NULLABLE", "One past the answer's last character; NULL: no answer."),
    _column("null_score_diff", "FLOAT64", "NULLABLE", "Null score minus the best span's score."),
    _column("raw_start_char", "INT64", "NULLABLE", "The model's own span, before align_to_words widened it."),
    _column("raw_end_char", "INT64", "NULLABLE", "The model's own span's end, before align_to_words."),
)
_CANDIDATES_COLUMN = {**_column("candidates", "RECORD", "REPEATED", "With --top_k: the question's best spans of "
                                "distinct texts, best first, whatever the no-answer decision."), "fields": [
    _column("answer", "STRING", "REQUIRED", "The span's text, as an answer would be cut."),
    _column("score", "FLOAT64", "REQUIRED", "Start plus end logit of the span."),
    _column("probability", "FLOAT64", "REQUIRED", "Its share of the softmax the answer's probability is from."),
    _column("start_char", "INT64", "REQUIRED", "The span's first character in the context."),
    _column("end_char", "INT64", "REQUIRED", "One past the span's last character."),
]}


def prediction_schema(candidates: bool) -> dict:
    """The prediction rows' schema; with the candidates column where the job keeps candidates (--top_k)."""
    return {"fields": [*_PREDICTION_COLUMNS, *([_CANDIDATES_COLUMN] if candidates else [])]}


DEAD_LETTER_SCHEMA = {"fields": [
    _column("stage", "STRING", "REQUIRED", "Where the record was refused: read, parse, validate, ..."),
    _column("reason", "STRING", "REQUIRED", "Why, naming the field or column."),
    _column("source", "STRING", "NULLABLE", "Where the record came from: file:line, file#row, or the table."),
    _column("id", "STRING", "NULLABLE", "The record's id, where it had a readable one."),
    *_PAIR_COLUMNS,
    _column("raw_json", "STRING", "NULLABLE", "The record as read, as JSON text (a line as a JSON string)."),
]}


def arrow_schema(schema: dict, documents: bool):
    """A BigQuery schema as a pyarrow schema (for Parquet files of the same rows); the document and question
    columns only in documents mode."""
    import pyarrow

    def field(column: dict):
        kind = (pyarrow.struct([field(inner) for inner in column["fields"]]) if column["type"] == "RECORD" else
                {"STRING": pyarrow.string(), "FLOAT64": pyarrow.float64(), "INT64": pyarrow.int64()}[column["type"]])
        if column["mode"] == "REPEATED":  # a list, never NULL (BigQuery's REPEATED: an empty list instead)
            return pyarrow.field(column["name"], pyarrow.list_(pyarrow.field("element", kind, False)), False)
        return pyarrow.field(column["name"], kind, column["mode"] != "REQUIRED")

    pair_names = {column["name"] for column in _PAIR_COLUMNS}
    return pyarrow.schema([field(column) for column in schema["fields"]
                           if documents or column["name"] not in pair_names])


def _text(value):
    # BigQuery holds valid UTF-8 only: a lone surrogate (from a \ud800 escape in the input) is kept as its escape.
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


def dead_letter_row(line: str) -> dict:
    """A dead-letter file's row (a JSON line) as DEAD_LETTER_SCHEMA's row."""
    letter = json.loads(line)
    row = {name: _text(letter.get(name)) for name in ("stage", "reason", "source", "id", "document_id",
                                                       "question_id")}
    return {**row, "raw_json": None if letter.get("raw") is None else json_line(letter["raw"])}
