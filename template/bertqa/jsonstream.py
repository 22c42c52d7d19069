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


# Byte-order marks of the encodings JSON text may not be exchanged in (RFC 8259: UTF-8); UTF-32 LE's
# starts with UTF-16 LE's, so it is tried first.
_OTHER_ENCODINGS = ((codecs.BOM_UTF32_LE, "UTF-32 LE"), (codecs.BOM_UTF32_BE, "UTF-32 BE"),
                    (codecs.BOM_UTF16_LE, "UTF-16 LE"), (codecs.BOM_UTF16_BE, "UTF-16 BE"))


class NotUtf8File(ValueError):
    """The file is UTF-16 or UTF-32 text: one dead letter for the whole file, not one per garbled line."""


def require_utf8(start: bytes) -> None:
    """Raises NotUtf8File when a file that starts with `start` (its first line, or at least 4 bytes) is
    UTF-16 or UTF-32 text (as Windows PowerShell's `>` writes): read as UTF-8, all of it would be garbage."""
    for mark, encoding in _OTHER_ENCODINGS:
        if start.startswith(mark):
            raise NotUtf8File(f"the file is {encoding} text (it starts with the byte-order mark {mark.hex(' ')}); "
                              f"question files must be UTF-8: convert it first, e.g. iconv -f "
                              f"{encoding.split()[0]} -t UTF-8")


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
            data = self._handle.read(self._chunk_bytes if self._bytes_read else max(4, self._chunk_bytes))
        except Exception as error:  # a damaged compressed file: the caller says where reading stopped
            raise self._on_read_error(self._bytes_read, error) from error
        if not self._bytes_read:
            require_utf8(data)
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
                value, end = json.JSONDecoder().raw_decode(self._text, self._pos)
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
            # A number or literal cut by the chunk boundary ("12" of "1234") parses: make sure it ended.
            if end == len(self._text) and not self._eof and self._read_more():
                continue
            start, self._pos = self.position, end
            # Oversized whether or not the read happened to hold all of it: the same file, the same questions.
            return Oversized(self.position - start, start) if self.position - start > self._max_value_chars else value

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
