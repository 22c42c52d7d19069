"""Documents asked a fixed list of questions (--questions_file): "for each of these contracts, what is the
termination date, who are the parties?".

Each input record is then a document ({id, context}, in any input format) and is asked every question of the
file: one question record per (document, question) pair, whose id is the document's id and the question's joined
by PAIR_SEPARATOR (U+001F, the ASCII unit separator, which neither may hold). The pairs of a document share its
text, so the job's grouping by passage tokenizes each document once for all its questions.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Iterator

from bertqa.io.inputs import is_compressed, open_input
from bertqa.io.jsonstream import DuplicateName, NotJsonText, load_record, require_json_text
from bertqa.io.outputs import json_line
from bertqa.io.records import PAIR_SEPARATOR, Document, Question, lone_surrogate

MAX_QUESTIONS = 10_000  # the pairs are documents x questions: a list longer than this is surely a mistake
MAX_QUESTION_CHARS = 10_000
LARGEST_QUESTIONS_FILE = 64 << 20


class QuestionsFileError(ValueError):
    """The questions file cannot be used; the message says which line and why."""


@dataclasses.dataclass(frozen=True)
class AskedQuestions:
    """The questions every document is asked, in the file's order: (question id, question) pairs."""

    questions: tuple[tuple[str, str], ...]

    def ask(self, document: Document) -> Iterator[Question]:
        """The document's pair with each question, in the file's order (the first of a duplicate id wins)."""
        for index, (question_id, text) in enumerate(self.questions):
            yield Question(pair_id(document.id, question_id), text, document.context, document.source,
                           (*document.order, index))


def pair_id(document_id: str, question_id: str) -> str:
    return f"{document_id}{PAIR_SEPARATOR}{question_id}"


def split_pair_id(pair: str) -> tuple[str, str]:
    """(document id, question id) of a pair's id."""
    document_id, question_id = pair.split(PAIR_SEPARATOR, 1)
    return document_id, question_id


def name_pair(dead_letter_row: str) -> str:
    """A dead-letter row (a JSON line) with the document_id and question_id of its pair beside its id; a
    document refused before it was asked anything gets its document_id only. Document ids never hold the
    separator, so an id with it is a pair's."""
    row = json.loads(dead_letter_row)
    record_id = row.get("id")
    if isinstance(record_id, str) and PAIR_SEPARATOR in record_id:
        row["document_id"], row["question_id"] = split_pair_id(record_id)
    elif isinstance(record_id, str):
        row["document_id"] = record_id
    return json_line(row)


def parse_questions(text: str) -> AskedQuestions:
    """A questions file's text: JSON Lines of {"question_id", "question"} (or {"id", "question"}), or one question
    per line, its id q1, q2, ... by its place among the non-blank lines. QuestionsFileError names what is wrong."""
    # Lines end at "\n" only: JSON strings may hold U+2028 or U+0085 as they are, which str.splitlines ends lines at.
    lines = [(number, line.strip()) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not lines:
        raise QuestionsFileError("holds no question")
    if len(lines) > MAX_QUESTIONS:
        raise QuestionsFileError(f"holds {len(lines):,} questions, more than {MAX_QUESTIONS:,}: every document is "
                                 "asked each of them")
    as_json = lines[0][1].startswith("{")
    questions, seen = [], {}
    for place, (number, line) in enumerate(lines, 1):
        question_id, question = _question(line, number) if as_json else (f"q{place}", line)
        problem = (f"'question_id' {question_id!r} is on line {seen[question_id]} too" if question_id in seen
                   else _text_problem("question_id", question_id) or _text_problem("question", question))
        if not problem and len(question) > MAX_QUESTION_CHARS:
            problem = f"the question has {len(question):,} characters, more than {MAX_QUESTION_CHARS:,}"
        if problem:
            raise QuestionsFileError(f"line {number}: {problem}")
        seen[question_id] = number
        questions.append((question_id, question))
    return AskedQuestions(tuple(questions))


def _question(line: str, number: int) -> tuple[object, object]:
    try:
        record = load_record(line)
    except DuplicateName as error:
        raise QuestionsFileError(f"line {number}: it holds {error}") from None
    except (ValueError, RecursionError) as error:
        raise QuestionsFileError(f"line {number}: not a JSON object ({error}); a file whose first line is JSON is "
                                 'read as JSON Lines of {"question_id": ..., "question": ...}') from None
    if not isinstance(record, dict):
        raise QuestionsFileError(f"line {number}: not a JSON object")
    return record.get("question_id", record.get("id")), record.get("question")


def _text_problem(field: str, value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"'{field}' must be a non-empty string, got {type(value).__name__} {value!r:.60}"
    if PAIR_SEPARATOR in value and field == "question_id":
        return f"'question_id' {value!r} holds U+001F, the separator of a pair's document and question ids"
    if where := lone_surrogate(value):
        return f"'{field}' is not valid Unicode text: {where}"
    return None


def load_questions(path: str) -> AskedQuestions:
    """The questions file at `path` (local or gs://; .gz and .bz2 decompressed, as the input files are);
    QuestionsFileError names what is wrong with it."""
    try:
        with open_input(path) as handle:
            data = handle.read(LARGEST_QUESTIONS_FILE + 1)  # no further: a small .gz may unpack to gigabytes
    except Exception as error:
        raise QuestionsFileError(f"cannot be read: {type(error).__name__}: {error}") from None
    if len(data) > LARGEST_QUESTIONS_FILE:
        unpacked = " decompressed" if is_compressed(path) else ""
        raise QuestionsFileError(f"more than {LARGEST_QUESTIONS_FILE:,} bytes{unpacked}: far too large for a list of "
                                 "questions")
    try:
        require_json_text(data[:64], expected="UTF-8 text")
        text = data.decode("utf-8-sig")
    except NotJsonText as error:
        raise QuestionsFileError(str(error)) from None
    except UnicodeDecodeError as error:
        raise QuestionsFileError(f"not UTF-8 text (byte {error.start})") from None
    return parse_questions(text)
