"""Question records from tables: Parquet, Avro and CSV files, as BigQuery, Spark and spreadsheets export them.

Each file is streamed row by row (Parquet a batch of rows of the columns it needs at a time, Avro a block at a
time, CSV a line at a time), and each row's columns are mapped to a record's fields by `Columns` (the
--id_column, --question_column, --context_column and --answers_column parameters): any table works without
renaming, and a row that does not fit is a dead letter naming the column, the row kept as `raw`. Read with the
libraries Beam's own connectors use (pyarrow, fastavro, csv), inside the job's file reader rather than through
ReadFromParquet / ReadFromAvro: those fail the whole job on one damaged file, where here the rows before the
damage are kept and the file gets one dead letter that says where reading stopped.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime
import io
import json
from typing import Any, BinaryIO, Iterator, Sequence

from bertqa.io.records import near_name

PARQUET_ROWS_PER_BATCH = 256  # rows of the needed columns in memory at a time


@dataclasses.dataclass(frozen=True)
class Columns:
    """Which column holds each of a record's fields."""

    id: str = "id"
    question: str = "question"
    context: str = "context"
    answers: str = "answers"

    def names(self) -> dict[str, str]:
        """field -> column, for messages that name the column a row lacks or holds wrongly."""
        return {"id": self.id, "question": self.question, "context": self.context, "answers": self.answers}


@dataclasses.dataclass(frozen=True)
class RowError:
    """A row that could not be read at all (a CSV line the csv module refuses), with its line number."""

    line: int
    reason: str


class AmbiguousHeader(ValueError):
    """A table whose header (CSV) or schema (Parquet, Avro) names a column the job reads more than once: which of a
    row's values is the field would be a guess."""


def check_unambiguous(names: Sequence[str], read_columns: Sequence[str], where: str) -> None:
    """AmbiguousHeader where `names` (a table's columns, in order) hold one of `read_columns` twice or more."""
    for name in read_columns:
        if names.count(name) > 1:
            places = " and ".join(str(place) for place, found in enumerate(names, 1) if found == name)
            raise AmbiguousHeader(f"{where} names the column '{name}' {names.count(name)} times (columns {places}), "
                                  "so which of a row's values is the field is unclear: rename the others")


def parquet_rows(handle: BinaryIO, read_columns: Sequence[str]) -> Iterator[dict]:
    """The rows of a Parquet file, only the columns a record needs read, a batch at a time; AmbiguousHeader where
    its schema names one of them twice."""
    import pyarrow.parquet

    table = pyarrow.parquet.ParquetFile(handle)
    schema = table.schema_arrow.names
    check_unambiguous(schema, read_columns, "the Parquet schema")
    wanted = [name for name in read_columns if name in schema]
    # A column absent but for its spelling ('Question'): read too, so that each row's dead letter can name it.
    wanted += [near for name in read_columns if name not in schema and (near := near_name(name, schema))]
    for batch in table.iter_batches(batch_size=PARQUET_ROWS_PER_BATCH, columns=wanted or None):
        yield from batch.to_pylist()


def avro_rows(handle: BinaryIO, read_columns: Sequence[str]) -> Iterator[Any]:
    """The records of an Avro object container file, a block at a time; AmbiguousHeader where its schema, a record's,
    names one of `read_columns` twice (the Avro specification forbids it, but fastavro reads such files)."""
    import fastavro

    reader = fastavro.reader(handle)
    schema = reader.writer_schema
    if isinstance(schema, dict) and isinstance(schema.get("fields"), list):
        check_unambiguous([field.get("name") for field in schema["fields"]], read_columns, "the Avro schema")
    yield from reader


def csv_rows(handle: BinaryIO, delimiter: str, field_limit: int, read_columns: Sequence[str]
             ) -> Iterator[tuple[int, dict | RowError]]:
    """(line number, row as {header: cell} or a RowError) of a CSV file with a header line. Bytes that are not
    UTF-8 become lone surrogates, named where they are by validation; a cell over `field_limit` characters is
    its row's RowError, and the file is read on. AmbiguousHeader where the header names one of `read_columns`
    twice."""
    csv.field_size_limit(max(csv.field_size_limit(), field_limit))  # process-wide: the largest any job needs
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.DictReader(text, delimiter=delimiter)
    check_unambiguous(reader.fieldnames or [], read_columns, "the CSV header")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield reader.line_num, RowError(reader.line_num, f"not a CSV row: {error}")
            continue
        yield reader.line_num, row


def _text(value: Any) -> Any:
    # Impala, Hive and older Spark write text as Parquet BYTE_ARRAY without the UTF8 annotation, which pyarrow reads
    # as bytes (Spark's spark.sql.parquet.binaryAsString reads them as text), as fastavro reads Avro's bytes (a
    # BigQuery BYTES column's type in an export).
    # Bytes that are not UTF-8 become lone surrogates, which validation names, as in a CSV file.
    return value.decode("utf-8", "surrogateescape") if isinstance(value, (bytes, bytearray)) else value


def record_of(row: Any, columns: Columns, text_cells: bool) -> Any:
    """A row as the record validation reads ({id, question, context[, answers]}); a non-mapping row as it is.
    An integer id (BigQuery's INT64 keys) is its decimal text; a binary cell (text written without its UTF8
    annotation) is its UTF-8 text. A text answers cell is one answer's text; with `text_cells` (CSV) it is JSON
    when it starts with '[' or '{' (ValueError where that JSON is broken), and an empty cell is unlabelled."""
    if not isinstance(row, dict):
        return row
    record = {field: _text(row.get(name)) for field, name in columns.names().items() if field != "answers"}
    if isinstance(record["id"], int) and not isinstance(record["id"], bool):
        record["id"] = str(record["id"])
    answers = _text(row.get(columns.answers))
    if isinstance(answers, list):
        answers = [_text(answer) for answer in answers]
    if text_cells and isinstance(answers, str):
        stripped = answers.strip()
        try:
            answers = None if not stripped else json.loads(stripped) if stripped[0] in "[{" else [answers]
        except ValueError as error:
            raise ValueError(f"column '{columns.answers}' starts like JSON but is not: {error}") from None
    elif isinstance(answers, str):
        answers = [answers]
    if answers is not None:
        record["answers"] = answers
    return record


def json_safe(value: Any) -> Any:
    """A row's value as JSON can hold it, for its dead letter: bytes as base64 text, dates and times in ISO 8601,
    any other type (decimals, UUIDs) as its text, nested values alike."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)
