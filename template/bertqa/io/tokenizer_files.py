"""A job's tokenizer files, where they are (a local path or `gs://`): read, checked and loaded as a QATokenizer."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from bertqa.io import files
from bertqa.qa.tokenization import (LARGEST_TOKENIZER_BYTES, LARGEST_VOCAB_BYTES, TOKENIZER_FILE, QATokenizer,
                                    TokenizerError, from_tokenizer_json, parse_vocab, wordpiece)


@dataclasses.dataclass(frozen=True)
class TokenizerSpec:
    """Where a job's tokenizer is, picklable for the workers: a WordPiece vocab.txt or a tokenizer.json (a file,
    or a directory holding one)."""

    path: str
    wordpiece: bool = True
    do_lower_case: bool = True  # WordPiece only: a tokenizer.json has its own normalizer

    @property
    def file(self) -> str:
        """The tokenizer.json itself where `path` is a directory; else `path`."""
        if self.wordpiece or self.path.rstrip("/").endswith(".json"):
            return self.path
        return f"{self.path.rstrip('/')}/{TOKENIZER_FILE}"

    def load(self) -> QATokenizer:
        if self.wordpiece:
            return wordpiece(parse_vocab(_read(self.path, LARGEST_VOCAB_BYTES, "a WordPiece vocab.txt")),
                             self.do_lower_case)
        if (files.is_local(self.path) and self.file != self.path and os.path.isdir(self.path)
                and not os.path.isfile(self.file)):
            raise TokenizerError(f"a directory without a {TOKENIZER_FILE}")
        return from_tokenizer_json(_read(self.file, LARGEST_TOKENIZER_BYTES, "a tokenizer.json"),
                                   self._beside())

    def _beside(self) -> dict[str, Any]:
        """tokenizer_config.json and config.json beside the tokenizer.json, where they are, as dicts."""
        directory = self.file.rsplit("/", 1)[0] if "/" in self.file else "."
        found = {}
        for name in ("tokenizer_config", "config"):
            try:
                data = files.read_bytes(f"{directory}/{name}.json", LARGEST_VOCAB_BYTES + 1)
                value = json.loads(data) if len(data) <= LARGEST_VOCAB_BYTES else None
            except Exception:  # absent or unreadable: the padding token is then looked for elsewhere
                continue
            if isinstance(value, dict):
                found[name] = value
        return found


def _read(path: str, largest: int, what: str) -> str:
    """The file's text; TokenizerError naming what is wrong with it."""
    from apache_beam.io.filesystems import FileSystems

    if files.is_local(path) and os.path.exists(path) and not os.path.isfile(path):
        raise TokenizerError("not a file")
    if not FileSystems.exists(path):
        raise TokenizerError(f"{path} not found" if path.endswith(f"/{TOKENIZER_FILE}") else "not found")
    data = files.read_bytes(path, largest + 1)
    if len(data) > largest:
        raise TokenizerError(f"more than {largest:,} bytes: far too large for {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TokenizerError(f"not UTF-8 text (byte {error.start}): not {what}") from None
