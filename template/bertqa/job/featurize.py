"""FeaturizeByPassage: Questions -> each question with its windows' features, every passage tokenized once for all
its questions; the records of an id seen before go to the dead letters where they meet their passage."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import typing
from typing import Callable, Iterable

import apache_beam as beam
import numpy as np

from bertqa.backends.base import short_error
from bertqa.io.records import Question
from bertqa.io.tokenizer_files import TokenizerSpec
from bertqa.job.counters import PASSAGES_TOKENIZED, WINDOWS_PER_QUESTION
from bertqa.job.outcomes import REJECTS, SCORES, TOKENS, question_dead_letter, question_rejected
from bertqa.qa.windows import Featurizer, WindowSettings


class Featurized(typing.NamedTuple):
    questions: beam.PCollection  # FeaturizedQuestions
    rejects: beam.PCollection  # dead-letter rows
    scores: beam.PCollection  # labelled questions' scores as missing (dead-lettered here)
    tokens: beam.PCollection  # (passage tokens, unknown ones, questions cut): outcomes.TOKENS


@dataclasses.dataclass(frozen=True)
class LaterRecord:
    """A record whose id an earlier record (by file and position) already has: it meets its passage's
    questions and goes to the dead letters there."""

    order: tuple  # the record's Question.order
    first_source: str  # where the first record of its id is


IDS = "ids"  # the tag of what de-duplicating ids needs of each question


@dataclasses.dataclass(frozen=True)
class PassageText:
    """A passage's text on its way to its passage group, apart from its questions."""

    context: str


class KeyByPassage(beam.DoFn):
    """Question -> (passage key, the question without its passage), and the passage's text once per bundle
    (SQuAD asks about five questions per passage: the shuffle carries each passage about once, not once per
    question); on IDS all that de-duplicating ids needs of it: its id, position, source and passage key."""

    REMEMBERED = 10_000  # passage keys a bundle remembers having sent, so that this memory stays bounded

    def start_bundle(self):
        self._sent: set[bytes] = set()

    def process(self, question: Question) -> Iterable:
        key = passage_key(question)
        yield beam.pvalue.TaggedOutput(IDS, (question.id, (question.order, question.source, key)))
        if key not in self._sent:
            if len(self._sent) >= self.REMEMBERED:
                self._sent.clear()
            self._sent.add(key)
            yield key, PassageText(question.context)
        yield key, question.with_context(None)


def later_records(item: tuple[str, Iterable[tuple]]) -> Iterable[tuple[bytes, LaterRecord]]:
    """(id, places of its records) -> (passage key, LaterRecord) for each record of the id but the first.
    Two passes over the places (a grouped iterable may be read twice), none of them held: one id on millions of
    records (a column of ids that is constant by mistake) must not fill a worker's memory."""
    _, places = item
    first_order, first_source, _ = min(places, key=lambda place: place[0])
    for order, _, key in places:
        if order != first_order:
            yield key, LaterRecord(order, first_source)


def passage_key(question: Question) -> bytes:
    """Questions about the same passage meet in one group, so that it is tokenized once. 128 bits of BLAKE2b:
    two passages that met by a collision would share one text, about as likely as n^2 / 2^129 for n passages."""
    return hashlib.blake2b(question.context.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class MakeWindows(beam.DoFn):
    """(passage key, its questions and LaterRecords) -> each question featurized (main output) or a dead letter.

    The passage is tokenized once for all its questions, the questions in one tokenizer call per chunk;
    the questions are streamed, so a passage with very many questions does not fill memory. A question whose
    id an earlier record has (a LaterRecord names it) goes to the dead letters instead.
    """

    CHUNK = 64

    def __init__(self, tokenizer: TokenizerSpec, settings: WindowSettings):
        self._tokenizer = tokenizer
        self._settings = settings
        self._featurizer = None

    def setup(self):
        # Dataflow runs a process per vCPU: the tokenizer's own thread pool would only oversubscribe them.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self._featurizer = Featurizer(self._tokenizer.load(), self._settings)

    def process(self, item):
        _, values = item
        # A first pass for the passage's text and the LaterRecords (normally none): a grouped iterable may be
        # read twice.
        first_seen, context = {}, None
        for value in values:
            if isinstance(value, PassageText):
                context = value.context
            elif isinstance(value, LaterRecord):
                first_seen[value.order] = value.first_source
        questions = (value.with_context(context) for value in values if isinstance(value, Question))
        passage = None  # the group's one passage, tokenized at its first question
        for chunk in _chunks(questions, self.CHUNK):
            kept, cut = [], 0
            for question in chunk:
                if question.order in first_seen:
                    yield question_dead_letter(
                        "deduplicate", f"duplicate id {question.id!r}: first seen at {first_seen[question.order]}",
                        question)
                else:
                    kept.append(question)
            for question, query in zip(kept, self._query_ids(kept)):
                try:
                    if passage is None:
                        passage = self._featurizer.tokenize_passage(context)
                        PASSAGES_TOKENIZED.inc()
                        unknown = self._featurizer.unknown_id
                        yield beam.pvalue.TaggedOutput(TOKENS, (len(passage.token_ids), 0 if unknown is None else
                                                                int(np.count_nonzero(passage.token_ids == unknown)),
                                                                0))
                    if isinstance(query, Exception):
                        raise query
                    query_ids, whole_length = query
                    featurized = self._featurizer.featurize(question, query_ids, passage)
                except Exception as error:  # a record that cannot be tokenized must not fail the job
                    yield from question_rejected("tokenize", f"tokenization failed: {short_error(error)}", question)
                    continue
                empty = ("context" if not len(featurized.passage.token_ids)
                         else "question" if not len(featurized.query_ids) else None)
                if empty:
                    yield from question_rejected(
                        "tokenize", f"'{empty}' has no tokens after normalization (it holds only characters the "
                        "tokenizer drops, such as zero-width, control or combining characters)", question)
                    continue
                WINDOWS_PER_QUESTION.update(len(featurized.spans))
                cut += whole_length > len(query_ids)
                yield featurized
            if cut:
                yield beam.pvalue.TaggedOutput(TOKENS, (0, 0, cut))

    def _query_ids(self, chunk: list[Question]) -> list:
        """(token ids cut to max_query_length, tokens whole) of each question, or the exception its tokenization
        raised."""
        return each_or_its_error(chunk, lambda questions: self._featurizer.questions_tokens(
            [question.question for question in questions]))


def each_or_its_error(items: list, work: Callable[[list], list]) -> list:
    """work(items) (a result per item) in one call; where that raises, work([item]) for each item alone, the
    exception in place of the result of an item that fails alone: one bad record must not fail the others."""
    try:
        return work(items)
    except Exception:
        found = []
        for item in items:
            try:
                found += work([item])
            except Exception as error:
                found.append(error)
        return found


def _chunks(items: Iterable, size: int) -> Iterable[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class FeaturizeByPassage(beam.PTransform):
    """Questions -> Featurized. Ids are de-duplicated through a shuffle of small tuples; the questions themselves
    cross one shuffle, by passage, where the records of an id seen before meet their passage and are
    dead-lettered."""

    def __init__(self, tokenizer: TokenizerSpec, settings: WindowSettings):
        super().__init__()
        self._tokenizer = tokenizer
        self._settings = settings

    def expand(self, questions) -> Featurized:
        by_passage = questions | "KeyByPassage" >> beam.ParDo(KeyByPassage()).with_outputs(IDS, main="questions")
        later = by_passage[IDS] | "GroupById" >> beam.GroupByKey() | "LaterRecords" >> beam.FlatMap(later_records)
        featurized = (
            (by_passage.questions, later)
            | "QuestionsAndLater" >> beam.Flatten()
            | "GroupByPassage" >> beam.GroupByKey()
            | "MakeWindows" >> beam.ParDo(MakeWindows(self._tokenizer, self._settings)).with_outputs(
                REJECTS, SCORES, TOKENS, main="questions")
        )
        return Featurized(featurized.questions, featurized[REJECTS], featurized[SCORES], featurized[TOKENS])
