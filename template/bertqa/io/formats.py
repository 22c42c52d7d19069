"""The input formats a question file can be in (the input_format parameter's values)."""

from __future__ import annotations

import enum


class InputFormat(enum.StrEnum):
    auto = "auto"
    jsonl = "jsonl"
    squad = "squad"
    parquet = "parquet"
    avro = "avro"
    csv = "csv"

