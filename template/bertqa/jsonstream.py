"""Walking a large JSON document without holding it: a cursor over its text, read in chunks.

The caller walks the document's outer structure with `peek`/`expect`/`key`, and parses each value it
wants whole (one SQuAD question, one passage) with the standard library's decoder. Memory is bounded by
the largest single value, and a value larger than `max_value_chars` stops the walk with `JsonStreamError`
instead of reading the rest of the file into memory. Bytes that are not UTF-8 become lone surrogates
(`surrogateescape`), so validation can name them where they are, as for JSONL lines.
"""

from __future__ import annotations

import codecs
import json
from typing import Any, BinaryIO, Callable

WHITESPACE = " \t\r\n"


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
            data = self._handle.read(self._chunk_bytes)
        except Exception as error:  # a damaged compressed file: the caller says where reading stopped
            raise self._on_read_error(self._bytes_read, error) from error
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
        """The next JSON value, parsed whole."""
        self.peek()
        while True:
            try:
                value, end = json.JSONDecoder().raw_decode(self._text, self._pos)
            except json.JSONDecodeError as error:
                # Perhaps only cut by the chunk boundary: read on, up to the size limit of one value.
                if len(self._text) - self._pos > self._max_value_chars:
                    raise JsonStreamError(f"a value of over {self._max_value_chars} characters (or broken JSON "
                                          f"within it: {error.msg})", self.position) from None
                if not self._read_more():
                    raise JsonStreamError(f"not valid JSON: {error.msg}",
                                          self._dropped + error.pos) from None
                continue
            except RecursionError:
                raise JsonStreamError("nested too deeply", self.position) from None
            # A number or literal cut by the chunk boundary ("12" of "1234") parses: make sure it ended.
            if end == len(self._text) and not self._eof and self._read_more():
                continue
            self._pos = end
            return value

    def key(self) -> str:
        """The next object key and its colon."""
        if self.peek() != '"':
            raise JsonStreamError(f"expected a key, found {self.peek()!r}", self.position)
        name = self.value()
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
