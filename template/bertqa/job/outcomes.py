"""How a record leaves a step other than as its main output: the tags of the steps' other outputs, and dead
letters (a Reject as its JSON line: plain text crosses every shuffle and file sink as it is)."""

from __future__ import annotations

from typing import Iterable

import apache_beam as beam

from bertqa.io.documents import name_pair
from bertqa.io.records import Question, Reject
from bertqa.job.counters import DEAD_LETTERED
from bertqa.qa.metrics import score_question

REJECTS = "rejects"  # every step's dead letters
SCORES = "scores"  # each labelled question's score, where the question ends
DOCUMENTS = "documents"  # each document read (documents mode), to be counted
# (passage tokens, unknown passage tokens, questions cut to max_query_length): each passage's tokens (a wrong
# vocabulary shows as unknown ones), and each chunk of questions' count of those cut.
TOKENS = "tokens"


def dead_letter(reject: Reject) -> beam.pvalue.TaggedOutput:
    return beam.pvalue.TaggedOutput(REJECTS, reject.to_json())


def _raw(question: Question) -> dict:
    raw = {"id": question.id, "question": question.question, "context": question.context}
    if question.gold_answers is not None:
        raw["answers"] = [{"text": text} for text in question.gold_answers]
    return raw


def question_dead_letter(stage: str, reason: str, question: Question) -> beam.pvalue.TaggedOutput:
    return dead_letter(Reject(stage, reason, question.source, _raw(question), question.id))


def question_rejected(stage: str, reason: str, question: Question) -> Iterable:
    """A question that gets no prediction: its dead letter and, when it is labelled, its score as missing."""
    yield question_dead_letter(stage, reason, question)
    if question.gold_answers is not None:
        yield beam.pvalue.TaggedOutput(SCORES, score_question(question.gold_answers, None))


class CollectDeadLetters(beam.PTransform):
    """Every step's dead letters -> one PCollection of them, each counted here, once (DEAD_LETTERED); in documents
    mode each named by its document and question (`name_pair`)."""

    def __init__(self, documents: bool = False):
        super().__init__()
        self._documents = documents

    def expand(self, rejects: tuple) -> beam.PCollection:
        collected = rejects | "AllRejects" >> beam.Flatten() | "Counted" >> beam.Map(_counted)
        return collected | "NamePairs" >> beam.Map(name_pair) if self._documents else collected


def _counted(row: str) -> str:
    DEAD_LETTERED.inc()
    return row
