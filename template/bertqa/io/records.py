"""Input records: JSONL lines and SQuAD v1.1/v2.0 JSON files, validated into questions or rejects.

Nothing is dropped: every line or question that cannot be used becomes a `Reject` with its reason.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import itertools
import json
from typing import Any, Iterable, Iterator

from bertqa.io.jsonstream import (DuplicateName, JsonCursor, JsonStreamError, Oversized, Unreadable, load_record,
                                  unreadable_number)
from bertqa.io.outputs import json_line

# JSON's own whitespace: a line holding only these (or nothing) is blank. Any other line is a record
# or a dead letter, including lines of Unicode spaces or separators.
JSON_WHITESPACE = " \t\r\n"
# What a dead letter keeps of a line too long to be read (the start of it; the source names the rest).
LONG_LINE_KEPT_BYTES = 1024


def max_record_size(max_context_chars: int) -> int:
    """The most JSON text a record whose context passes max_context_chars can take, in bytes (a JSONL line)
    or characters (a SQuAD value): 12 per character of context (a JSON-escaped surrogate pair, \\ud83d\\ude00,
    is 12 for one character) and 1 Mi for the other fields. Anything longer is skipped, never held whole."""
    return 12 * max_context_chars + (1 << 20)


def long_line_reject(source: str, length: int, kept: bytes, max_context_chars: int) -> Reject:
    """The dead letter of a JSONL line over max_record_size: its length and its first bytes, not the line."""
    # Decoded as the start of a stream: a character cut at the end is left out, not made a lone surrogate.
    start = codecs.getincrementaldecoder("utf-8")("surrogateescape").decode(kept, final=False)
    return Reject("parse", f"line of {length:,} bytes, longer than any record with a 'context' within "
                  f"max_context_chars={max_context_chars} can be ({max_record_size(max_context_chars):,} bytes); "
                  f"not read: raw holds its first {len(start.encode('utf-8', 'surrogateescape')):,} bytes",
                  source, start)


@dataclasses.dataclass(frozen=True)
class Question:
    id: str
    question: str
    context: str | None  # None only while it crosses the passage shuffle (the text travels apart)
    source: str  # "path:line" (JSONL) or "path#index" (SQuAD JSON): where the record came from
    order: tuple  # sort key of the source position: the first of duplicate ids wins
    gold_answers: tuple[str, ...] | None = None  # None = unlabelled; () = labelled unanswerable

    def __reduce__(self):
        # Pickled as its constructor's arguments: smaller and faster across stage boundaries.
        return Question, (self.id, self.question, self.context, self.source, self.order, self.gold_answers)

    def with_context(self, context: str | None) -> "Question":
        """The question with this passage text (None: without it, to cross a shuffle that carries it once)."""
        return Question(self.id, self.question, context, self.source, self.order, self.gold_answers)


# Joins a document's id and a question's in the id of their pair (documents.py): neither may hold it.
PAIR_SEPARATOR = "\x1f"


@dataclasses.dataclass(frozen=True)
class Document:
    """A record read as a document (--questions_file): a passage that is asked a list of questions."""

    id: str
    context: str
    source: str
    order: tuple


@dataclasses.dataclass(frozen=True)
class Reject:
    stage: str
    reason: str
    source: str
    raw: Any  # the line (without its line ending) or record as read
    id: str | None = None

    def to_json(self) -> str:
        """The dead-letter row: always one line of strict JSON, whatever `raw` holds."""
        row = {"stage": self.stage, "reason": self.reason, "source": self.source, "raw": self.raw, "id": self.id}
        try:
            return json_line(row)
        except (ValueError, RecursionError):
            pass
        try:  # JSON has no NaN or Infinity (SQuAD files may hold them): write them as strings
            raw = json.loads(json.dumps(self.raw), parse_constant=str)
            return json_line({**row, "raw": raw, "reason": self.reason + "; in raw, NaN and Infinity are strings"})
        except RecursionError:
            return json_line({**row, "raw": None, "reason": self.reason + "; raw not kept: nested too deeply "
                              "to write (read it at source)"})


def lone_surrogate(text: str) -> str | None:
    """Where `text` holds a lone surrogate (not Unicode text, cannot be written as UTF-8), else None.

    JSON escapes such as \\ud800 make them, and so do bytes that are not UTF-8 when read with
    surrogateescape (U+DC80..U+DCFF stand for the bytes 0x80..0xFF).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        where = f"lone surrogate U+{code:04X} at character {error.start}"
        if 0xDC80 <= code <= 0xDCFF:  # what a CSV file saved in Windows-1252 or Latin-1 (as Excel does) reads as
            where += (f" (the byte 0x{code - 0xDC00:02X}, which is not UTF-8, or a \\u{code:04x} escape: a file in "
                      "another encoding, such as Windows-1252, must be saved as UTF-8)")
        return where
    return None


def _labels(record: dict, answers_name: str = "answers") -> tuple[str, ...] | None:
    """The gold answer texts of a labelled record; raises ValueError on malformed labels (`answers_name`: what
    the messages call the answers, a table's column name).

    As in evaluate-v2.0.py, the answers decide: `is_impossible` only labels a record that has no
    'answers' list as unanswerable. A list of plain strings is a list of answer texts.
    """
    answers = record.get("answers")
    impossible = record.get("is_impossible")
    if impossible is not None and not isinstance(impossible, bool):
        raise ValueError("'is_impossible' must be true or false")
    if answers is None:
        return () if impossible else None
    if isinstance(answers, dict):  # Hugging Face's squad_v2 rows: {"text": [...], "answer_start": [...]}
        texts = answers.get("text")
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise ValueError(f"'{answers_name}' as an object (Hugging Face's form) needs 'text': a list of strings")
        return tuple(texts)
    if not isinstance(answers, list):
        raise ValueError(f"'{answers_name}' must be a list of {{text, answer_start}} or of strings, or an object "
                         "{text: [...], answer_start: [...]}")
    texts = []
    for answer in answers:
        text = answer if isinstance(answer, str) else answer.get("text") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"each of '{answers_name}' must be a string or an object with a string 'text'")
        texts.append(text)
    return tuple(texts)


def near_name(wanted: str, names: Iterable[object]) -> str | None:
    """The name among `names` that `wanted` was likely meant by: the same but for case (BigQuery's column names keep
    theirs), else a close spelling; None where none is near."""
    texts = [name for name in names if isinstance(name, str)]
    same = [name for name in texts if name.lower() == wanted.lower()]
    return (same or difflib.get_close_matches(wanted, texts, n=1, cutoff=0.8) or [None])[0]


def validate(record: Any, source: str, order: tuple, max_context_chars: int,
             names: dict[str, str] | None = None, document: bool = False,
             present: Iterable[object] | None = None) -> Question | Document | Reject:
    """A parsed record as a Question, or a Reject that says which field is wrong and why. `names`: what the
    messages call each field (a table's column names, where the table's columns are mapped to the fields). With
    `document`, the record is a Document (an id and a context; a question field is not read). `present`: the
    names the row has (a table's), which a missing field's message looks through for the name it was likely meant
    by (by default the record's own)."""
    names = names or {}

    def reject(reason: str, record_id: str | None = None) -> Reject:
        return Reject("validate", reason, source, record, record_id)

    def name(field: str) -> str:
        return names.get(field, field)

    def missing(field: str) -> str:
        wanted, has = name(field), list(record if present is None else present)
        near = None if wanted in has else near_name(wanted, has)
        if near is None:
            return f"missing '{wanted}'"
        if names:
            return f"missing '{wanted}' (the table has a column '{near}': --{field}_column={near} reads it)"
        return f"missing '{wanted}' (the record has '{near}'; the name must be '{wanted}' exactly)"

    if not isinstance(record, dict):
        return reject(f"record must be a JSON object, got {type(record).__name__}")
    record_id = record.get("id")
    if record_id is None:
        return reject(missing("id"))
    if not isinstance(record_id, str) or not record_id.strip():
        return reject(f"'{name('id')}' must be a non-empty string, got {type(record_id).__name__} {record_id!r:.100}")
    if where := lone_surrogate(record_id):
        return reject(f"'{name('id')}' is not valid Unicode text: {where}")
    if document and PAIR_SEPARATOR in record_id:
        return reject(f"'{name('id')}' holds U+001F, the separator of a pair's document and question ids")
    for field in ("context",) if document else ("question", "context"):
        value = record.get(field)
        if value is None:
            return reject(missing(field), record_id)
        if not isinstance(value, str):
            return reject(f"'{name(field)}' must be a string, got {type(value).__name__}", record_id)
        if not value.strip():
            return reject(f"'{name(field)}' is empty", record_id)
        if where := lone_surrogate(value):
            return reject(f"'{name(field)}' is not valid Unicode text: {where}", record_id)
    if len(record["context"]) > max_context_chars:
        return reject(
            f"'{name('context')}' has {len(record['context'])} characters, over the limit of "
            f"{max_context_chars} (max_context_chars)",
            record_id,
        )
    if document:
        return Document(record_id, record["context"], source, order)
    try:
        gold = _labels(record, name("answers"))
    except ValueError as error:
        return reject(f"bad labels: {error}", record_id)
    return Question(record_id, record["question"], record["context"], source, order, gold)


def parse_jsonl_line(line: str, path: str, line_number: int, max_context_chars: int,
                     document: bool = False) -> Question | Document | Reject | None:
    """One JSONL line without its line ending; None for a blank line, which is not a record. With `document`, a
    record is a Document (validate)."""
    if not line.strip(JSON_WHITESPACE):
        return None
    source = f"{path}:{line_number}"
    try:
        record = load_record(line)
    except json.JSONDecodeError as error:
        return Reject("parse", f"not valid JSON: {error}", source, line)
    except DuplicateName as error:
        return Reject("parse", f"the record cannot be read: it holds {error}", source, line)
    except ValueError as error:  # well formed, but a number in it cannot be converted
        return Reject("parse", f"the record cannot be read: it holds {unreadable_number(error)}", source, line)
    except RecursionError:
        return Reject("parse", "not valid JSON here: nested too deeply", source, line)
    result = validate(record, source, (path, line_number), max_context_chars, document=document)
    # Dead letters keep the line exactly as read, so it can be fixed and replayed.
    return dataclasses.replace(result, raw=line) if isinstance(result, Reject) else result


class NotSquad(JsonStreamError):
    """Valid JSON so far, but not the data -> paragraphs -> qas structure."""


class JsonLinesNotSquad(ValueError):
    """The document is a record ('question' or 'context', no 'data'): a JSON Lines file (as Hugging Face's
    `Dataset.to_json` and BigQuery's JSON export write, whatever the file's name) rather than SQuAD JSON. Raised
    before any question."""

    def __init__(self):
        super().__init__("not a SQuAD JSON file (data -> paragraphs -> qas): it starts with a record (a question "
                         "or a document), as JSON Lines do (one record per line): pass --input_format=jsonl or auto")


def parse_squad_file(cursor: JsonCursor, path: str, max_context_chars: int) -> Iterator[Question | Reject]:
    """Every question of a SQuAD v1.1/v2.0 file (data -> paragraphs -> qas), read as a stream.

    One paragraph is held at a time (its questions may come before its passage). A passage or question too
    large to read is skipped, and its questions become dead letters. A file that breaks off (invalid JSON,
    text after the end) keeps the questions before the break and gives one `parse` dead letter that says
    where; a file that is not SQuAD at all gives only that one. Raises JsonLinesNotSquad for a JSON Lines file.
    """
    numbers = itertools.count()
    try:
        cursor.expect("{")
        found_data = found_record = False
        if cursor.first_item("}"):
            while True:
                name = cursor.key()
                if name != "data":
                    found_record = found_record or name in ("question", "context")  # a SQuAD document has neither
                    cursor.value()  # "version" and anything else beside the data
                elif cursor.peek() == "[":
                    found_data = True
                    yield from _articles(cursor, path, max_context_chars, numbers)
                else:
                    raise NotSquad("'data' is not a list", cursor.position)
                if not cursor.next_item("}"):
                    break
        if found_record and not found_data:
            raise JsonLinesNotSquad()
        if cursor.peek():
            raise JsonStreamError("text after the end of the document", cursor.position)
        if not found_data:
            raise NotSquad("no 'data' list", cursor.position)
    except JsonStreamError as error:
        read = next(numbers)
        kept = f"; the {read} question(s) before are kept" if read else ""
        yield Reject("parse", f"not a SQuAD JSON file (data -> paragraphs -> qas): {error}{kept}", path,
                     cursor.head)


def _held(value: Any) -> Any:
    """A value as its dead letter keeps it: an Oversized value (never read), or one in an object, as None."""
    if isinstance(value, dict):
        return {name: _held(item) for name, item in value.items()}
    return None if isinstance(value, Oversized) else value


def _items(cursor: JsonCursor, closing: str) -> Iterator[int]:
    """Indexes of the items of the array or object the cursor is at, after consuming its opening."""
    cursor.expect("[" if closing == "]" else "{")
    if not cursor.first_item(closing):
        return
    for index in itertools.count():
        yield index
        if not cursor.next_item(closing):
            return


def _articles(cursor: JsonCursor, path: str, max_context_chars: int, numbers) -> Iterator[Question | Reject]:
    for a in _items(cursor, "]"):
        source = f"{path}#data[{a}]"
        if cursor.peek() != "{":
            yield Reject("parse", "article has no 'paragraphs' list", source, _held(cursor.value()))
            continue
        fields, streamed = {}, False
        for _ in _items(cursor, "}"):
            name = cursor.key()
            if name == "paragraphs" and cursor.peek() == "[":
                streamed = True
                for p in _items(cursor, "]"):
                    yield from _paragraph(cursor, f"{source}.paragraphs[{p}]", path, max_context_chars, numbers)
            else:
                fields[name] = cursor.value()
        if not streamed:
            yield Reject("parse", "article has no 'paragraphs' list", source, _held(fields))


def _paragraph(cursor: JsonCursor, source: str, path: str, max_context_chars: int,
               numbers) -> Iterator[Question | Reject]:
    if cursor.peek() != "{":
        yield Reject("parse", "paragraph has no 'qas' list", source, _held(cursor.value()))
        return
    start = cursor.position
    fields, waiting, has_qas, skipped = {}, [], False, 0

    def question(qa):
        number = next(numbers)
        context, where = fields.get("context"), f"{path}#{number}"
        if isinstance(qa, Unreadable):
            return Reject("parse", f"a question record that cannot be read: it holds {qa.reason} (at character "
                          f"{qa.position})", where, None)
        if isinstance(qa, Oversized):
            return Reject("parse", f"a question record of {qa.chars:,} characters of JSON, too large to read "
                          f"(at character {qa.position})", where, None)
        if isinstance(context, Oversized):
            question_id = qa.get("id") if isinstance(qa, dict) and isinstance(qa.get("id"), str) else None
            return Reject("validate", f"'context' has {context.chars:,} characters of JSON, over the limit of "
                          f"{max_context_chars} (max_context_chars); not read", where, qa, question_id)
        record = dict(qa, context=context) if isinstance(qa, dict) else qa
        return validate(record, where, (path, number), max_context_chars)

    for _ in _items(cursor, "}"):
        name = cursor.key()
        if name in fields or (name == "qas" and has_qas):  # as a JSON Lines record naming a member twice
            raise JsonStreamError(f"a paragraph names '{name}' twice, so which is meant is unclear", cursor.position)
        if name == "qas" and cursor.peek() == "[":
            has_qas = True
            for _ in _items(cursor, "]"):
                qa = cursor.value()
                if "context" in fields:
                    yield question(qa)
                    continue
                waiting.append(qa)  # its passage comes later in the paragraph
                skipped += qa.chars if isinstance(qa, Oversized) else 0
                if cursor.position - start - skipped > max_record_size(max_context_chars):
                    raise JsonStreamError("a paragraph whose questions come before its passage is too large to "
                                          "hold", cursor.position)
        else:
            fields[name] = cursor.value()
    if not has_qas:
        yield Reject("parse", "paragraph has no 'qas' list", source, _held(fields))
    for qa in waiting:
        yield question(qa)
