"""ReadQuestions: the input's records (files, a BigQuery table or query) as Questions, dead letters and, in
documents mode, one element per document read."""

from __future__ import annotations

import hashlib
import typing
import uuid
from typing import Iterable

import apache_beam as beam
from apache_beam.io import fileio

from bertqa.io.bigquery import BigQueryReadMethod
from bertqa.io.documents import AskedQuestions
from bertqa.io.formats import InputFormat
from bertqa.io.inputs import FilePart, InputReader, file_parts
from bertqa.io.records import Document, Question, Reject
from bertqa.io.tables import Columns, json_safe
from bertqa.job.counters import QUESTIONS_READ, REJECTED_ON_READ
from bertqa.job.outcomes import DOCUMENTS, REJECTS, dead_letter
from bertqa.params import TemplateParams

READ_METHODS = {BigQueryReadMethod.export: beam.io.ReadFromBigQuery.Method.EXPORT,
                BigQueryReadMethod.direct_read: beam.io.ReadFromBigQuery.Method.DIRECT_READ}


class Read(typing.NamedTuple):
    questions: beam.PCollection  # Questions (documents mode: each document's pair with each question)
    rejects: beam.PCollection  # dead-letter rows
    documents: beam.PCollection  # documents mode: a 1 per document read


def _routed(results: Iterable[Question | Document | Reject], questions: AskedQuestions | None) -> Iterable:
    """A Reject to the dead letters; a Question as it is; a Document as its pair with each question (and once on
    DOCUMENTS, to be counted)."""
    for result in results:
        if isinstance(result, Reject):
            REJECTED_ON_READ.inc()
            yield dead_letter(result)
        elif isinstance(result, Document):
            yield beam.pvalue.TaggedOutput(DOCUMENTS, 1)
            for question in questions.ask(result):
                QUESTIONS_READ.inc()
                yield question
        else:
            QUESTIONS_READ.inc()
            yield result


class ParseFile(beam.DoFn):
    """A FilePart (from `file_parts`) -> Questions, and dead letters on the REJECTS output."""

    def __init__(self, input_format: str, max_context_chars: int, columns: Columns = Columns(),
                 questions: AskedQuestions | None = None):
        self._reader = InputReader(input_format, max_context_chars, columns, documents=questions is not None)
        self._questions = questions  # documents mode: each record is a document, asked these questions

    def process(self, part: FilePart):
        yield from _routed(self._reader.read_part(part), self._questions)


class ParseRows(beam.DoFn):
    """BigQuery's rows (dicts, as ReadFromBigQuery gives them) -> Questions, and dead letters on REJECTS: the same
    column mapping and checks as a table file's rows. A table has no order: a row's order is its content's hash
    (then a bundle's own count), so of rows that share an id the one kept does not depend on how they were read."""

    def __init__(self, source: str, max_context_chars: int, columns: Columns = Columns(),
                 questions: AskedQuestions | None = None):
        self._reader = InputReader(InputFormat.auto.value, max_context_chars, columns, documents=questions is not None)
        self._questions = questions
        self._source = source

    def start_bundle(self):
        self._bundle, self._count = uuid.uuid4().hex, 0

    def process(self, row):
        self._count += 1
        digest = hashlib.sha256(repr(sorted(json_safe(row).items()) if isinstance(row, dict) else row).encode(
            "utf-8", "backslashreplace")).hexdigest()
        order = (self._source, digest, self._bundle, self._count)
        yield from _routed(self._reader.read_row(row, self._source, order), self._questions)


def input_source(params: TemplateParams) -> str:
    """The `source` of a BigQuery row's dead letter: the table, or the query."""
    return f"bigquery:{params.input_table}" if params.input_table else "bigquery:input_query"


def read_rows(params: TemplateParams) -> beam.PTransform:
    """The input table's rows, or the query's (GoogleSQL), as dicts."""
    where = {"table": params.input_table} if params.input_table else {"query": params.input_query,
                                                                       "use_standard_sql": True}
    return beam.io.ReadFromBigQuery(method=READ_METHODS[params.bigquery_read_method], **where)


class ReadQuestions(beam.PTransform):
    """The pipeline's root -> Read. In documents mode (`questions`: the questions every document is asked) each
    record read is a document, and each of its pairs with a question a Question."""

    def __init__(self, params: TemplateParams, questions: AskedQuestions | None = None):
        super().__init__()
        self._params = params
        self._questions = questions

    def expand(self, root) -> Read:
        params = self._params
        if params.input:
            parse = ParseFile(params.input_format, params.max_context_chars, params.columns, self._questions)
            parsed = (
                root
                | "MatchInput" >> fileio.MatchFiles(params.input,
                                                    empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW)
                | "OpenFiles" >> fileio.ReadMatches()
                | "SplitFiles" >> beam.FlatMap(file_parts, params.input_format)
                | "SpreadParts" >> beam.Reshuffle()  # so that workers parse the parts of a large file at once
                | "Parse" >> beam.ParDo(parse).with_outputs(REJECTS, DOCUMENTS, main="questions")
            )
        else:
            parse = ParseRows(input_source(params), params.max_context_chars, params.columns, self._questions)
            parsed = (root
                      | "ReadBigQuery" >> read_rows(params)
                      | "ParseRows" >> beam.ParDo(parse).with_outputs(REJECTS, DOCUMENTS, main="questions"))
        return Read(parsed.questions, parsed[REJECTS], parsed[DOCUMENTS])
