"""The input formats a question file can be in (the input_format parameter's values)."""

from __future__ import annotations

import enum


class InputFormat(str, enum.Enum):
    auto = "auto"
    jsonl = "jsonl"
    squad = "squad"
    parquet = "parquet"
    avro = "avro"
    csv = "csv"


# Formats whose files are tables of rows, their columns mapped to the record's fields (--*_column).
TABLE_FORMATS = (InputFormat.parquet.value, InputFormat.avro.value, InputFormat.csv.value)
