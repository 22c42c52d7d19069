"""Reading question files: every line or question becomes a Question or a dead letter, and a file that
cannot be read to its end yields what it holds up to the damage plus one dead letter that says where.

`.gz` and `.bz2` files are decompressed with Python's own readers, which (unlike a bare zlib stream)
notice a file cut short; other files are read as they are. A large uncompressed JSONL file is parsed in
parts by many workers at once; every record keeps its line number.
"""

from __future__ import annotations

import bz2
import codecs
import dataclasses
import gzip
import contextlib
import re
from typing import BinaryIO, Callable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from bertqa.io.formats import InputFormat
from bertqa.io.jsonstream import JsonCursor, NotJsonText, require_json_text
from bertqa.io.records import (JSON_WHITESPACE, LONG_LINE_KEPT_BYTES, Document, JsonLinesNotSquad, Question, Reject,
                               long_line_reject, max_record_size, parse_jsonl_line, parse_squad_file, validate)
from bertqa.io.tables import (AmbiguousHeader, Columns, RowError, avro_rows, csv_rows, json_safe, parquet_rows,
                              record_of)

# Each compressed file's reader over the file's bytes (BZ2File takes the file object as its first argument).
DECOMPRESSORS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"), ".bz2": lambda raw: bz2.BZ2File(raw, mode="rb")}
# A large JSONL file is cut into about PARTS_PER_FILE parts of whole lines, each of at least MIN_PART_BYTES
# (on Cloud Storage each part costs a request of its own, worth it only for a megabyte or more of lines).
PARTS_PER_FILE = 64
MIN_PART_BYTES = 1 << 20
_BLOCK_BYTES = 1 << 22
_SKIP_BYTES = 1 << 20  # the pieces a line too long to read is skipped in
JSON_WHITESPACE_BYTES = JSON_WHITESPACE.encode()
_HEAD_BYTES = 1 << 16  # what file_parts reads of a file's start to tell its encoding and format
# The first line of a SQuAD document: "{" alone (written with indentation) or its first key "version" or
# "data". A JSON Lines record is a whole object on its line and has neither key.
_SQUAD_FIRST_LINE = re.compile(rb'[ \t\r]*\{[ \t\r]*(?:$|"(?:version|data)"[ \t\r]*:)')


@dataclasses.dataclass(frozen=True)
class FilePart:
    """What one worker parses: a whole file, or the lines of a JSONL file that start in bytes [start, end),
    the first of them line number `first_line`; `format` as detect_format told it (None: when it is read)."""

    path: str
    start: int = 0
    end: int | None = None  # None: to the end of the file
    first_line: int = 1
    format: str | None = None


# File names that say a table, and its format: CSV with or without compression, TSV as CSV with tabs.
_TABLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".avro": "avro", ".csv": "csv", ".tsv": "tsv"}


TABLE_KINDS = ("parquet", "avro", "csv", "tsv")


def detect_format(path: str, input_format: str, head: Callable[[], bytes]) -> str:
    """The one format the file at `path` is read in: jsonl, squad, or a table's (parquet, avro, csv, tsv). Given
    formats stand (csv: tsv for a .tsv file); with auto, in this order: a table by its name (.parquet, .pq,
    .avro, .csv, .tsv, compressed too), a Parquet or Avro file by its first bytes whatever its name, SQuAD JSON by
    the name .json or by a first line that opens a SQuAD document, else JSON Lines. `head()` gives the file's
    first bytes (decompressed), read only where the name does not decide. One rule needs the parser and stays
    with it: a file read as SQuAD with auto whose first object is a record (a question or a document) is JSON
    Lines after all (JsonLinesNotSquad)."""
    name = path.lower().removesuffix(".gz").removesuffix(".bz2")
    by_name = next((kind for suffix, kind in _TABLE_SUFFIXES.items() if name.endswith(suffix)), None)
    given = InputFormat(input_format)
    if given is InputFormat.csv:
        return "tsv" if by_name == "tsv" else "csv"
    if given is not InputFormat.auto:
        return given.value
    if by_name:
        return by_name
    start = head()
    try:
        require_json_text(start)
    except NotJsonText as error:  # not text: its reader says what the file is instead, unless it is a table
        if error.table_format:
            return error.table_format
    return "squad" if name.endswith(".json") or looks_like_squad(first_nonblank_line(start)) else "jsonl"


def read_head(path: str) -> bytes:
    """The file's first bytes (decompressed), as many as can be read: telling its format must not fail where
    reading the file would say what is wrong and keep what comes before the damage."""
    with OpenOnce(path) as once:
        return once.head()


class OpenOnce:
    """One file opened once for telling its format and for the reading that follows: `head()` reads its first
    bytes, the first `open()` after it gets the same handle back at its start, any other opens the file anew
    (on Cloud Storage each open is a request: a small file whose name does not say its format was read twice)."""

    def __init__(self, path: str):
        self._path = path
        self._handle: BinaryIO | None = None

    def head(self) -> bytes:
        head = b""
        try:
            self._handle = open_input(self._path)
            while len(head) < _HEAD_BYTES and (block := self._handle.read(min(1 << 14, _HEAD_BYTES - len(head)))):
                head += block
            self._handle.seek(0)
        except Exception:  # the reading that follows opens the file again and says what is wrong
            self.close()
        return head

    def open(self) -> BinaryIO:
        handle, self._handle = self._handle, None
        return handle if handle is not None else open_input(self._path)

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
            self._handle = None

    def __enter__(self) -> "OpenOnce":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def looks_like_squad(first_line: bytes) -> bool:
    """Whether a file's first non-blank line (or its start) opens a SQuAD document, not a JSON Lines record."""
    return _SQUAD_FIRST_LINE.match(first_line) is not None


def first_nonblank_line(head: bytes) -> bytes:
    """The first non-blank line of a file's first bytes."""
    lines = head.removeprefix(codecs.BOM_UTF8).split(b"\n")
    return next((line for line in lines if line.strip(JSON_WHITESPACE_BYTES)), b"")


def line_head(line: bytes | LongLine) -> bytes | None:
    """What file_lines read of a line (a LongLine's first bytes), or None for a blank line."""
    if isinstance(line, LongLine):
        return line.kept
    return line if line.strip(JSON_WHITESPACE_BYTES) else None


def is_compressed(path: str) -> bool:
    return path.lower().endswith(tuple(DECOMPRESSORS))


def open_input(path: str) -> BinaryIO:
    """The file's bytes, decompressed by its extension."""
    handle = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    for extension, decompressor in DECOMPRESSORS.items():
        if path.lower().endswith(extension):
            return decompressor(handle)
    return handle


class FileDamage(Exception):
    """Reading stopped before the end of the file: what was read, where, and why."""

    def __init__(self, path: str, lines: int, offset: int, error: Exception):
        compressed = " decompressed" if is_compressed(path) else ""
        where = f"after line {lines}, " if lines else "after "
        super().__init__(
            f"file could not be read to its end: {type(error).__name__}: {error} ({where}"
            f"{offset}{compressed} bytes read; the records before are kept)")


class TableDamage(FileDamage):
    """A table file that could not be read to its end: its kind, how many rows were read, and why."""

    def __init__(self, path: str, kind: str, rows: int, error: Exception):
        label = {"parquet": "Parquet", "avro": "Avro"}.get(kind, "CSV")
        Exception.__init__(self, f"{label} file could not be read to its end: {type(error).__name__}: "
                                 f"{' '.join(str(error).split())[:500]} (after {rows} rows; the rows before are kept)")


@dataclasses.dataclass(frozen=True)
class LongLine:
    """A line longer than file_lines' max_line_bytes, skipped unread but for its first bytes."""

    kept: bytes  # its first LONG_LINE_KEPT_BYTES
    length: int  # bytes, without the line ending


def file_lines(path: str, start: int = 0, end: int | None = None, first_line: int = 1,
               max_line_bytes: int = 1 << 20, opener: Callable[[], BinaryIO] | None = None
               ) -> Iterator[bytes | LongLine]:
    """Each line without its line ending (\\n or \\r\\n) or the first line's UTF-8 byte-order mark; from byte
    `start` (where line `first_line` begins) up to the line that ends at or past byte `end`. A line of more
    than `max_line_bytes` (its ending included) is read on in pieces and given as a LongLine (as b"" when it
    holds only JSON whitespace): one huge line, or a small .gz of one, must not fill a worker's memory.

    Raises FileDamage when the file cannot be read that far, NotJsonText when it is not UTF-8 text at all.
    `opener` opens the file (default: open_input).
    """
    lines, offset = first_line - 1, start
    try:
        with (opener or (lambda: open_input(path)))() as handle:
            if start:
                handle.seek(start)
            while end is None or offset < end:
                raw = handle.readline(max_line_bytes)
                if not raw:
                    return
                lines += 1
                offset += len(raw)
                cut = len(raw) == max_line_bytes and raw[-1:] != b"\n"
                if lines == 1:
                    require_json_text(raw)  # the signs it looks for hold no b"\n" that would end the line
                    raw = raw.removeprefix(codecs.BOM_UTF8)
                rest = handle.readline(_SKIP_BYTES) if cut else b""
                if rest:
                    length, blank, kept = len(raw), not raw.strip(JSON_WHITESPACE_BYTES), raw[:LONG_LINE_KEPT_BYTES]
                    while rest:
                        offset += len(rest)
                        length += len(rest)
                        blank = blank and not rest.strip(JSON_WHITESPACE_BYTES)
                        if rest.endswith(b"\n"):
                            length -= 2 if rest.endswith(b"\r\n") else 1
                            break
                        rest = handle.readline(_SKIP_BYTES)
                    yield b"" if blank else LongLine(kept, length)
                    continue
                yield raw.removesuffix(b"\n").removesuffix(b"\r")
    except NotJsonText:
        raise
    except Exception as error:  # any reading error: keep what was read, say where it stopped
        raise FileDamage(path, lines, offset, error) from error


def line_starts(handle: BinaryIO, part_bytes: int) -> Iterator[tuple[int, int]]:
    """(byte offset, line number) of the first line that starts at least `part_bytes` after the previous
    one yielded (or the file start), through the file: where its parts begin. One read, counting lines."""
    offset, lines, target = 0, 0, part_bytes
    while block := handle.read(_BLOCK_BYTES):
        searched = 0
        while target - offset < len(block):
            newline = block.find(b"\n", max(target - offset, searched))
            if newline == -1:  # the line goes on into the next block
                break
            yield offset + newline + 1, lines + block.count(b"\n", 0, newline + 1) + 1
            target = offset + newline + 1 + part_bytes
            searched = newline + 1
        lines += block.count(b"\n")
        offset += len(block)


def file_parts(readable, input_format: str) -> Iterator[FilePart]:
    """The parts a matched file (a Beam ReadableFile) is parsed in. A large uncompressed JSONL file: pieces of whole
    lines, found by one read through it. Any other file (SQuAD JSON by name or content, a table, not UTF-8,
    compressed, small): whole. A large file's format, told from the head read here, goes with its parts."""
    path, size = readable.metadata.path, readable.metadata.size_in_bytes
    part_bytes = max(MIN_PART_BYTES, size // PARTS_PER_FILE)
    if size <= part_bytes or is_compressed(path):
        yield FilePart(path)
        return
    try:
        with open_input(path) as handle:
            head = handle.read(_HEAD_BYTES)
            kind = detect_format(path, input_format, lambda: head)
            if kind != "jsonl":
                yield FilePart(path, format=kind)
                return
            require_json_text(head)
            handle.seek(0)
            starts = [(0, 1), *((start, line) for start, line in line_starts(handle, part_bytes) if start < size)]
    except Exception:  # parsed whole instead, where the error becomes a dead letter that says what and where
        yield FilePart(path)
        return
    for (start, first_line), (end, _) in zip(starts, [*starts[1:], (None, None)]):
        yield FilePart(path, start, end, first_line, kind)


def squad_questions(path: str, max_context_chars: int,
                    opener: Callable[[], BinaryIO] | None = None) -> Iterator[Question | Reject]:
    """Every question of a SQuAD JSON file, read as a stream (`opener`: as file_lines'). Raises FileDamage when
    reading fails."""
    with (opener or (lambda: open_input(path)))() as handle:
        cursor = JsonCursor(handle, max_record_size(max_context_chars),
                            lambda offset, error: FileDamage(path, 0, offset, error))
        yield from parse_squad_file(cursor, path, max_context_chars)


def decode_line(raw: bytes, source: str) -> str | Reject:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Reject("parse", f"not UTF-8 text: byte 0x{raw[error.start]:02x} at byte {error.start} of the "
                      "line; in raw each such byte is a lone surrogate \\udcXX (Python: "
                      "raw.encode('utf-8', 'surrogateescape') gives the bytes back)",
                      source, raw.decode("utf-8", "surrogateescape"))


class InputReader:
    """Reads FileParts (from `file_parts`) and table rows (BigQuery's) into Questions, Documents (documents mode:
    records with no question of their own) and Rejects, in file order."""

    def __init__(self, input_format: str, max_context_chars: int, columns: Columns = Columns(),
                 documents: bool = False):
        self._format = input_format
        self._max_context_chars = max_context_chars
        self._columns = columns
        self._documents = documents

    def read_part(self, part: FilePart) -> Iterator[Question | Document | Reject]:
        path = part.path
        with OpenOnce(path) as once:
            try:
                kind = part.format or detect_format(path, self._format, once.head)
                if kind in TABLE_KINDS:
                    yield from self._table(path, kind, once.open)
                elif kind == "jsonl":
                    yield from self._jsonl(part, once.open)
                elif self._documents:
                    yield from self._documents_unless_squad(part, once.open)
                elif InputFormat(self._format) is InputFormat.auto:
                    yield from self._squad_unless_jsonl(part, once.open)
                else:
                    yield from squad_questions(path, self._max_context_chars, once.open)
            except FileDamage as damage:
                yield Reject("read", str(damage), path, None)
            except (NotJsonText, JsonLinesNotSquad) as error:
                yield Reject("parse", str(error), path, None)

    def read_row(self, row, source: str, order: tuple) -> Iterator[Question | Document | Reject]:
        """A BigQuery row (a dict) as a table file's row is read."""
        yield from self._row(row, source, order, self._columns.names())

    def _table(self, path: str, kind: str, opener: Callable[[], BinaryIO]):
        """Each row of a table file as a Question, or its dead letter naming the column; FileDamage where the file
        cannot be read to its end (the rows before are kept)."""
        names, index = self._columns.names(), -1
        try:
            with opener() as handle:
                for index, (number, row) in enumerate(self._rows(handle, kind)):
                    source = f"{path}:{number}" if kind in ("csv", "tsv") else f"{path}#{index}"
                    if isinstance(row, RowError):
                        yield Reject("parse", row.reason, source, None)
                    else:
                        yield from self._row(row, source, (path, index), names, text_cells=kind in ("csv", "tsv"))
        except AmbiguousHeader as error:  # before any row: one dead letter for the file, as for a file not text
            yield Reject("parse", str(error), path, None)
        except Exception as error:  # a damaged or cut file: what was read stays, one row says where it stopped
            raise TableDamage(path, kind, index + 1, error) from error

    def _row(self, row, source: str, order: tuple, names: dict[str, str], text_cells: bool = False):
        """A table's row (a file's, or BigQuery's) as a Question or Document, or its dead letter with the row."""
        try:
            record = record_of(row, self._columns, text_cells)
        except ValueError as error:
            yield Reject("validate", f"bad labels: {error}", source, json_safe(row))
            return
        result = validate(record, source, order, self._max_context_chars, names, document=self._documents,
                          present=row if isinstance(row, dict) else None)
        yield dataclasses.replace(result, raw=json_safe(row)) if isinstance(result, Reject) else result

    def _rows(self, handle: BinaryIO, kind: str) -> Iterator[tuple[int, object]]:
        """(number, row) of a table file: the line a CSV row ends on, else the row's index."""
        read = [name for field, name in self._columns.names().items() if field != "question" or not self._documents]
        if kind in ("csv", "tsv"):
            yield from csv_rows(handle, "\t" if kind == "tsv" else ",", max_record_size(self._max_context_chars), read)
        elif kind == "parquet":
            yield from enumerate(parquet_rows(handle, read))
        else:
            yield from enumerate(avro_rows(handle, read))

    def _squad_unless_jsonl(self, part: FilePart, opener: Callable[[], BinaryIO]):
        """As SQuAD JSON; as JSON Lines when its first object is a record (a question or a document: before any
        question)."""
        try:
            yield from squad_questions(part.path, self._max_context_chars, opener)
        except JsonLinesNotSquad:
            yield from self._jsonl(part, opener)  # opens the file again: its handle was read as SQuAD

    def _documents_unless_squad(self, part: FilePart, opener: Callable[[], BinaryIO]):
        """Documents mode: a file read as SQuAD with auto is JSON Lines when its first object is a record (a .json
        file of {id, context} lines); a SQuAD file is refused: its questions are its own."""
        if InputFormat(self._format) is InputFormat.auto:
            try:
                with contextlib.closing(squad_questions(part.path, self._max_context_chars, opener)) as questions:
                    next(questions, None)
            except JsonLinesNotSquad:
                yield from self._jsonl(part, opener)  # opens the file again: its handle was read as SQuAD
                return
        yield Reject("parse", "a SQuAD file holds questions of its own: with --questions_file the input is documents "
                     "({id, context} records or rows)", part.path, None)

    def _jsonl(self, part: FilePart, opener: Callable[[], BinaryIO]):
        path = part.path
        lines = file_lines(path, part.start, part.end, part.first_line, max_record_size(self._max_context_chars),
                           opener)
        for number, raw in enumerate(lines, start=part.first_line):
            if isinstance(raw, LongLine):
                yield long_line_reject(f"{path}:{number}", raw.length, raw.kept, self._max_context_chars)
                continue
            line = decode_line(raw, f"{path}:{number}")
            result = line if isinstance(line, Reject) else parse_jsonl_line(
                line, path, number, self._max_context_chars, document=self._documents)
            if result is not None:
                yield result
