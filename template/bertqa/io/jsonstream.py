"""Walking a large JSON document without holding it: a cursor over its text, read in chunks.

The caller walks the document's outer structure with `peek`/`expect`/`key`, and parses each value it
wants whole (one SQuAD question, one passage) with the standard library's decoder. Memory is bounded by
`max_value_chars`: a larger string, object or array is skipped in chunks, unparsed, and stands as an
`Oversized` value, so the walk goes on after it. Bytes that are not UTF-8 become lone surrogates
(`surrogateescape`), so validation can name them where they are, as for JSONL lines.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import re
import sys
from typing import Any, BinaryIO, Callable

WHITESPACE = " \t\r\n"
_STRING_STOPS = re.compile(r'["\\]')  # the end of a string, or an escape in it
_STRUCTURE_STOPS = re.compile(r'["\[\]{}]')  # outside strings: what opens a string or opens or closes a level


@dataclasses.dataclass(frozen=True)
class Oversized:
    """A value over max_value_chars, skipped unread (a string, object or array, well formed as far as its
    brackets and quotes go)."""

    chars: int
    position: int  # of its first character


@dataclasses.dataclass(frozen=True)
class Unreadable(Oversized):
    """A value skipped because the decoder cannot convert something in it (`reason`): an integer of more digits
    than Python converts (sys.get_int_max_str_digits(), 4300 by default, a guard against slow conversions)."""

    reason: str = ""


_NUMBER_CHARACTERS = frozenset("0123456789+-.eE")


def unreadable_number(error: ValueError) -> str:
    """A decoder's error for a number it cannot convert, in the template's words (not Python's advice). The limit,
    not the number's own length, which a chunk boundary may have cut."""
    if "integer string conversion" in str(error):
        return f"an integer of more than {sys.get_int_max_str_digits():,} digits, more than can be read"
    return f"a value that cannot be converted ({error})"


_TO_UTF8 = "convert it to UTF-8 first, e.g. iconv -f {} -t UTF-8"
_UNPACK = "unpack it, or compress it with gzip (name.jsonl.gz) or bzip2 (name.jsonl.bz2), which the job reads"
_TABLE = "read it with --input_format={} (or auto, which tells it by its first bytes)"
# What a question file is instead of UTF-8 JSON text, told by its first bytes (which no JSON text begins
# with), and what to do about it. UTF-32 LE's mark begins with UTF-16 LE's, so it comes first.
_NOT_JSON_TEXT = [(re.compile(start), kind, advice) for start, kind, advice in (
    (re.escape(codecs.BOM_UTF32_LE), "UTF-32 LE text", _TO_UTF8.format("UTF-32")),
    (re.escape(codecs.BOM_UTF32_BE), "UTF-32 BE text", _TO_UTF8.format("UTF-32")),
    (re.escape(codecs.BOM_UTF16_LE), "UTF-16 LE text", _TO_UTF8.format("UTF-16")),
    (re.escape(codecs.BOM_UTF16_BE), "UTF-16 BE text", _TO_UTF8.format("UTF-16")),
    (rb"\x1f\x8b", "a gzip file", "end its name in .gz (name.jsonl.gz) and it is decompressed (on Cloud Storage, "
     "an object uploaded with `gcloud storage cp -Z` or `-z`, or gsutil's, is stored as gzip whatever its name, and "
     "the job reads objects as stored)"),
    (rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)", "a bzip2 file", "end its name in .bz2 (name.jsonl.bz2) and it is "
                                                      "decompressed"),
    (rb"PK\x03\x04", "a zip archive", _UNPACK),
    (rb"\xfd7zXZ\x00", "an xz file", _UNPACK),
    (rb"\x28\xb5\x2f\xfd", "a Zstandard file", _UNPACK),
    (rb"PAR1", "a Parquet file", _TABLE.format("parquet")),
    (rb"Obj\x01", "an Avro file", _TABLE.format("avro")),
)]
_TABLE_KINDS = {"a Parquet file": "parquet", "an Avro file": "avro"}


class DuplicateName(ValueError):
    """A JSON object names one member twice: json.loads would keep the last value without a word."""

    def __init__(self, name: str):
        super().__init__(f"a name twice in one object ('{name}'), so which value is meant is unclear")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict:
    members = dict(pairs)
    if len(members) < len(pairs):
        seen: set[str] = set()
        raise DuplicateName(next(name for name, _ in pairs if name in seen or seen.add(name)))
    return members


_RECORD_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members)


def load_record(text: str) -> Any:
    """A JSON record's value, as json.loads gives it, but DuplicateName where an object names a member twice."""
    return _RECORD_DECODER.decode(text)


class NotJsonText(ValueError):
    """The file is not UTF-8 JSON text at all (UTF-16, compressed under a plain name, an archive, Parquet):
    one dead letter for the whole file, not one per garbled line. `table_format`: the table format it is in
    (parquet, avro), which the job reads instead with --input_format=auto."""

    def __init__(self, message: str, table_format: str | None = None):
        super().__init__(message)
        self.table_format = table_format


def require_json_text(start: bytes, expected: str = "UTF-8 JSON text") -> None:
    """Raises NotJsonText when a file that starts with `start` (its first line, or its first kilobytes) is
    something else than UTF-8 text, such as UTF-16 (as Windows PowerShell's `>` writes) or a zip archive:
    read as lines of UTF-8 JSON (or `expected`), all of it would be garbage."""
    for pattern, kind, advice in _NOT_JSON_TEXT:
        if found := pattern.match(start):
            raise NotJsonText(f"the file is {kind} (it starts with the bytes "
                              f"{found.group().hex(' ')}), not {expected}: {advice}", _TABLE_KINDS.get(kind))


class JsonStreamError(ValueError):
    """The document is not valid JSON (or not the expected structure) at `position` (a character index)."""

    def __init__(self, message: str, position: int):
        super().__init__(f"{message} at character {position}")
        self.position = position


class JsonCursor:
    def __init__(self, handle: BinaryIO, max_value_chars: int, on_read_error: Callable[[int, Exception], Exception],
                 chunk_bytes: int = 1 << 20):
        self._handle = handle
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._max_value_chars = max_value_chars
        self._on_read_error = on_read_error
        self._chunk_bytes = chunk_bytes
        self._text = ""
        self._pos = 0  # in _text
        self._dropped = 0  # characters before _text[0], already walked
        self._bytes_read = 0
        self._eof = False
        self._first = True
        self.head = ""  # the document's first characters, for a message about the whole file

    @property
    def position(self) -> int:
        return self._dropped + self._pos

    def _read_more(self) -> bool:
        if self._eof:
            return False
        try:
            data = self._handle.read(self._chunk_bytes if self._bytes_read else max(16, self._chunk_bytes))
        except Exception as error:  # a damaged compressed file: the caller says where reading stopped
            raise self._on_read_error(self._bytes_read, error) from error
        if not self._bytes_read:
            require_json_text(data)
        self._bytes_read += len(data)
        text = self._decoder.decode(data, final=not data)
        if self._first and text:
            text, self._first = text.removeprefix("\ufeff"), False
        if len(self.head) < 1000:
            self.head += text[:1000 - len(self.head)]
        self._eof = not data
        self._dropped += self._pos
        self._text = self._text[self._pos:] + text
        self._pos = 0
        return bool(data) or bool(text)

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end of the document)."""
        while True:
            while self._pos < len(self._text) and self._text[self._pos] in WHITESPACE:
                self._pos += 1
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._read_more():
                return ""

    def expect(self, characters: str) -> str:
        """Consumes the next character, which must be one of `characters`."""
        found = self.peek()
        if not found or found not in characters:
            wanted = " or ".join(repr(c) for c in characters)
            raise JsonStreamError(f"expected {wanted}, found {found!r}" if found else f"expected {wanted}, "
                                  "found the end of the file", self.position)
        self._pos += 1
        return found

    def value(self) -> Any:
        """The next JSON value, parsed whole; Oversized where it is over max_value_chars."""
        self.peek()
        while True:
            try:
                value, end = _RECORD_DECODER.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as error:
                # Perhaps only cut by the chunk boundary: read on, up to the size limit of one value.
                if len(self._text) - self._pos > self._max_value_chars:
                    if self._text[self._pos] in '"[{':
                        return self._skip_value()
                    raise JsonStreamError(f"a value of over {self._max_value_chars} characters (or broken JSON "
                                          f"within it: {error.msg})", self.position) from None
                if not self._read_more():
                    raise JsonStreamError(f"not valid JSON: {error.msg}",
                                          self._dropped + error.pos) from None
                continue
            except RecursionError:
                raise JsonStreamError("nested too deeply", self.position) from None
            except DuplicateName as error:
                return self._skip_unreadable(str(error))
            except ValueError as error:  # well formed, but a number in it cannot be converted
                return self._skip_unreadable(unreadable_number(error))
            # A number or literal cut by the chunk boundary ("12" of "1234") parses: make sure it ended.
            if end == len(self._text) and not self._eof and self._read_more():
                continue
            start, self._pos = self.position, end
            # Oversized whether or not the read happened to hold all of it: the same file, the same questions.
            return Oversized(self.position - start, start) if self.position - start > self._max_value_chars else value

    def _skip_unreadable(self, reason: str) -> Unreadable:
        """Moves past the value at the cursor (a string, object, array or number) and names why it was not read."""
        if self._text[self._pos] in '"[{':
            skipped = self._skip_value()
            return Unreadable(skipped.chars, skipped.position, reason)
        start, length = self.position, 0
        while True:  # a number's characters, which may go on in the next chunk
            while self._pos + length < len(self._text) and self._text[self._pos + length] in _NUMBER_CHARACTERS:
                length += 1
            if self._pos + length < len(self._text) or not self._read_more():
                break
        self._pos += max(length, 1)
        return Unreadable(self.position - start, start, reason)

    def _skip_value(self) -> Oversized:
        """Moves past the string, object or array at the cursor, holding a chunk of it at a time."""
        start, depth, in_string = self.position, 0, False
        at = self._pos
        while True:
            stop = (_STRING_STOPS if in_string else _STRUCTURE_STOPS).search(self._text, at)
            if stop is None or (stop.group() == "\\" and stop.end() == len(self._text)):
                # Read on from the escape, if any (its next character decides), else past everything.
                self._pos = stop.start() if stop else len(self._text)
                if not self._read_more():
                    raise JsonStreamError(f"a value of over {self._max_value_chars} characters without its end "
                                          "(the file ends inside it)", start)
                at = self._pos
                continue
            at = stop.end()
            character = stop.group()
            if character == "\\":
                at += 1  # the escaped character
            elif character == '"':
                in_string = not in_string
            elif character in "[{":
                depth += 1
            else:
                depth -= 1
            if depth == 0 and not in_string:
                self._pos = at
                return Oversized(self.position - start, start)

    def key(self) -> str:
        """The next object key and its colon."""
        if self.peek() != '"':
            raise JsonStreamError(f"expected a key, found {self.peek()!r}", self.position)
        name = self.value()
        if isinstance(name, Oversized):
            raise JsonStreamError(f"a key of {name.chars} characters", name.position)
        self.expect(":")
        return name

    def next_item(self, closing: str) -> bool:
        """After an item of an object or array: True when another follows (its comma consumed)."""
        return self.expect("," + closing) == ","

    def first_item(self, closing: str) -> bool:
        """Right after '{' or '[': True when the object or array has an item."""
        if self.peek() == closing:
            self._pos += 1
            return False
        return True
