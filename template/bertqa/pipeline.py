"""The Beam pipeline: question files in; answers, dead letters and a summary out.

read -> validate -> group by passage, de-duplicating ids -> tokenize (each passage once) -> lists of
questions of similar length -> RunInference (windows made, sorted into model calls, logits per
question) -> decode answer -> write. Every record read ends either as a prediction or as a dead-letter
row with its stage and reason. A question travels as one element with all its windows, so nothing has
to gather windows back together after the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import re
import time
from typing import Callable, Iterable

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from bertqa import bigquery, progress
from bertqa.backends import model_spec, threads_per_process
from bertqa.backends.base import ListResult, QAModelHandler, batch_questions, short_error
from bertqa.decoding import Answer, DecodeSettings, decode_answers
from bertqa.gpu import inference_step_accelerator
from bertqa.documents import AskedQuestions, load_questions, name_pair, split_pair_id
from bertqa.inputs import DOCUMENTS, ParseFile, ParseRows, file_parts
from bertqa.metrics import MetricTotals, QuestionScore, score_question
from bertqa.outputs import (DEAD_LETTER_ROWS, PREDICTION_ROWS, PREDICTIONS_JSON, REJECTS, SUMMARY, dead_letter,
                            json_line, write_json, write_predictions_json)
from bertqa.params import OutputFormat, TemplateParams
from bertqa.records import Question, Reject
from bertqa.tokenization import TokenizerSpec
from bertqa.windows import Featurizer, WindowSettings

SCORES = "scores"  # the tag of each labelled question's score, where the question ends
TOKENS = "tokens"  # the tag of each passage's (tokens, unknown tokens): a wrong vocabulary shows as unknown ones
UNKNOWN_TOKEN_WARNING = 0.05  # more of the passages' tokens than this unknown: say so


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
        self._passages_tokenized = beam.metrics.Metrics.counter("bertqa", "passages_tokenized")

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
            kept = []
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
                        self._passages_tokenized.inc()
                        unknown = self._featurizer.unknown_id
                        yield beam.pvalue.TaggedOutput(TOKENS, (len(passage.token_ids), 0 if unknown is None else
                                                                int(np.count_nonzero(passage.token_ids == unknown))))
                    if isinstance(query, Exception):
                        raise query
                    featurized = self._featurizer.featurize(question, query, passage)
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
                progress.distribution("windows_per_question", len(featurized.spans))
                yield featurized

    def _query_ids(self, chunk: list[Question]) -> list:
        """Token ids of each question, or the exception its tokenization raised."""
        return each_or_its_error(chunk, lambda questions: self._featurizer.questions_ids(
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


def failed_questions(failure) -> Iterable:
    """RunInference's (failed lists of questions, exception) -> a dead letter per question."""
    batch, error = failure
    for questions in batch:
        for featurized in questions:
            question = featurized.question
            yield from question_rejected("inference", f"inference failed: {short_error(error)}", question)


@dataclasses.dataclass
class Prediction:
    question: Question
    answer: Answer

    def row(self, documents: bool = False) -> dict:
        """The prediction's row; in documents mode with its document's and question's ids beside the pair's."""
        pair = dict(zip(("document_id", "question_id"), split_pair_id(self.question.id))) if documents else {}
        return {
            "id": self.question.id,
            **pair,
            "answer": self.answer.text,
            "score": self.answer.score,
            "probability": self.answer.probability,
            "start_char": self.answer.start_char,
            "end_char": self.answer.end_char,
            "null_score_diff": self.answer.null_score_diff,
            # The model's own span where align_to_words widened it to whole words (else the same).
            "raw_start_char": self.answer.raw_start_char,
            "raw_end_char": self.answer.raw_end_char,
        }


class DecodeAnswers(beam.DoFn):
    """A list of questions' model results -> a Prediction or Reject per question; the answers of a list are
    searched for together (decoding.decode_answers)."""

    def __init__(self, settings: DecodeSettings):
        self._settings = settings

    def process(self, result: ListResult):
        decodable = []
        for position, (featurized, failure) in enumerate(zip(result.questions, result.failures)):
            if failure:
                yield from question_rejected("inference", failure, featurized.question)
            else:
                decodable.append(position)
        answers = each_or_its_error(decodable, lambda positions: self._answers(result, positions)) if decodable else []
        for position, answer in zip(decodable, answers):
            question = result.questions[position].question
            if isinstance(answer, Exception):  # one bad question must not fail the job
                yield from question_rejected("decode", f"decoding failed: {short_error(answer)}", question)
                continue
            progress.count("answered" if answer.text else "no_answer")
            if question.gold_answers is not None:
                yield beam.pvalue.TaggedOutput(SCORES, score_question(question.gold_answers, answer.text))
            yield Prediction(question, answer)

    def _answers(self, result: ListResult, positions: list[int]) -> list[Answer]:
        questions = [result.questions[position] for position in positions]
        return decode_answers(result.packed_windows(positions), [question.question.context for question in questions],
                              [question.passage.offsets for question in questions], self._settings)


class MetricTotalsFn(beam.CombineFn):
    """QuestionScores -> their MetricTotals."""

    def create_accumulator(self):
        return MetricTotals()

    def add_input(self, totals, score: QuestionScore):
        return totals.add(score)

    def merge_accumulators(self, accumulators):
        merged = MetricTotals()
        for totals in accumulators:
            merged.merge(totals)
        return merged

    def extract_output(self, totals):
        return totals


class MetricsFn(MetricTotalsFn):
    """The MetricTotals of several PCollections -> the summary's metrics."""

    def add_input(self, totals, other: MetricTotals):
        return totals.merge(other)

    def extract_output(self, totals):
        if not totals.labelled:
            return {}
        return {
            "metrics": totals.summary(),
            "metrics_all_labelled": totals.summary(count_missing=True),
            "labelled_without_prediction": totals.without_prediction,
        }


def combine_each(name: str, pcolls: Iterable, combine_fn: beam.CombineFn, merge) -> beam.PCollection:
    """combine_fn over several PCollections: each combined where it is made, then the results merged by `merge`
    (a CombineFn or callable). Not Flatten first: a local runner would copy every element through one more
    stage just to combine it."""
    partial = [pcoll | f"{name}{index}" >> beam.CombineGlobally(combine_fn) for index, pcoll in enumerate(pcolls)]
    return partial | f"All{name}" >> beam.Flatten() | f"Merge{name}" >> beam.CombineGlobally(merge)


class SumPairsFn(beam.CombineFn):
    """Pairs of numbers -> [sum of the firsts, sum of the seconds]."""

    def create_accumulator(self):
        return [0, 0]

    def add_input(self, total, pair):
        return [total[0] + pair[0], total[1] + pair[1]]

    def merge_accumulators(self, totals):
        return [sum(total[0] for total in totals), sum(total[1] for total in totals)]

    def extract_output(self, total):
        return total


class ModelTimeFn(SumPairsFn):
    """The ListResult of every list of questions -> [windows, summed model seconds]."""

    def add_input(self, total, item):
        return super().add_input(total, (item.windows, sum(item.model_seconds)))


def unknown_tokens(tokens: list[int], tokenizer: str) -> dict:
    """The summary's count of the passages' tokens and of those the vocabulary did not know, with a warning
    (logged too) where they are more than UNKNOWN_TOKEN_WARNING of them: a vocabulary that is not the model's
    gives every passage mostly unknown tokens, and answers without any error."""
    total, unknown = tokens
    found = {"passage_tokens": total, "unknown_passage_tokens": unknown}
    if total and unknown / total > UNKNOWN_TOKEN_WARNING:
        found["warnings"] = [f"{unknown:,} of the passages' {total:,} tokens ({unknown / total:.1%}) are the "
                             f"tokenizer's unknown token: is {tokenizer} this model's vocabulary?"]
        logging.warning(found["warnings"][0])
    return found


def timing(predicted: int, started: float, model_time: list) -> dict:
    """How long the job took, and how fast its model step ran, each named for what it measures."""
    elapsed = time.time() - started
    windows, model_seconds = model_time
    per_model_second = (lambda n: round(n / model_seconds, 3) if model_seconds > 0 else None)
    return {
        # From the submission of the job to this summary: on Dataflow this includes starting workers.
        "seconds_since_submission": round(elapsed, 3),
        "questions_per_second_since_submission": round(predicted / elapsed, 3) if elapsed > 0 else None,
        # The model calls alone, summed over every thread and worker: one model copy's rate.
        "model_windows": windows,
        "model_seconds": round(model_seconds, 6),
        "windows_per_model_second": per_model_second(windows),
        "questions_per_model_second": per_model_second(predicted),
    }


class DeadLetterBudgetExceeded(RuntimeError):
    """More records went to the dead letters than --max_dead_letter_fraction allows (every output is written)."""


# Quoted in reasons as what is wrong, not as a record's value: kept when reasons are counted together.
_FIELD_NAMES = frozenset({"id", "question", "context", "answers", "text", "answer_start", "is_impossible", "data",
                          "paragraphs", "qas", "version", "title"})


def reason_kind(row: str) -> str:
    """A dead-letter row's stage and reason with quoted values (but field names) and numbers blanked, so that
    rows failing for the same reason count together."""
    letter = json.loads(row)
    reason = re.sub(r"'([^']*)'|\"([^\"]*)\"", lambda quoted: quoted.group() if (
        quoted.group(1) or quoted.group(2)) in _FIELD_NAMES else "'...'", letter["reason"])
    reason = re.sub(r"U\+[0-9A-F]{4,6}|[0-9]+", lambda number: number.group() if number.group().startswith("U+")
                    else "N", reason)  # a character's code point (U+001F) says what is wrong: it stays
    return f"{letter['stage']}: {reason if len(reason) <= 120 else reason[:117] + '...'}"


def check_dead_letter_budget(summary_row: dict, limit: float) -> None:
    # Every record read ends once, predicted or dead-lettered (in documents mode every pair, and every document
    # refused before it was asked anything).
    dead = summary_row["dead_lettered"]
    read = summary_row["predicted"] + dead
    if read and dead / read > limit:
        common = "; ".join(f"{entry['count']} x {entry['reason']}" for entry in summary_row["dead_letter_reasons"])
        raise DeadLetterBudgetExceeded(
            f"{dead} of {read} records ({dead / read:.1%}) went to the dead letters, more than "
            f"--max_dead_letter_fraction={limit:g}; most common: {common}. Every output is written: see the dead "
            "letters for each record and its reason")


def summary(counts: dict[str, int], metrics: dict, started: float, written: Iterable[str],
            model_time: list, reasons: list, tokens: dict | None = None) -> dict:
    return {
        **counts,
        **(tokens or {}),
        "dead_letter_reasons": [{"reason": reason, "count": count} for count, reason in reasons],
        "timing": timing(counts["predicted"], started, model_time),
        "outputs": sorted(set(written)),  # a table once, however many load jobs filled it
        **metrics,
    }


def write_summary(counts, metrics, written, model_time, reasons, tokens, path: str, started: float,
                  limit: float) -> None:
    row = summary(counts, metrics, started, [*written, path], model_time, reasons, tokens)  # itself too
    write_json(path, row)
    check_dead_letter_budget(row, limit)  # after the summary: a failed job still has every output


def read_input(pipeline: beam.Pipeline, params: TemplateParams, questions: AskedQuestions | None):
    """The input's records: Questions (main output), dead letters (REJECTS), and in documents mode one
    element per document read (DOCUMENTS)."""
    if params.input:
        parts = (
            pipeline
            | "MatchInput" >> fileio.MatchFiles(params.input,
                                                empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW)
            | "OpenFiles" >> fileio.ReadMatches()
            | "SplitFiles" >> beam.FlatMap(file_parts, params.input_format)
            | "SpreadParts" >> beam.Reshuffle()  # so that workers parse the parts of a large file at once
        )
        parse = "Parse" >> beam.ParDo(ParseFile(params.input_format, params.max_context_chars, params.columns,
                                                questions)).with_outputs(REJECTS, DOCUMENTS, main="questions")
        return parts | parse
    rows = pipeline | "ReadBigQuery" >> bigquery.read_rows(params)
    return rows | "ParseRows" >> beam.ParDo(ParseRows(bigquery.input_source(params), params.max_context_chars,
                                                      params.columns, questions)).with_outputs(
        REJECTS, DOCUMENTS, main="questions")


def write_dead_letters(rejects, params: TemplateParams) -> tuple:
    """The dead-letter rows into their files, or their table: what was written (names, once it is)."""
    if params.dead_letter_table:
        return _into_table(rejects | "DeadLetterRows" >> beam.Map(bigquery.dead_letter_row), "DeadLetter",
                           params.dead_letter_table, bigquery.DEAD_LETTER_SCHEMA, params.table_write_disposition)
    return (rejects | "WriteDeadLetter" >> beam.io.WriteToText(
        params.dead_letter_dir.rstrip("/") + "/" + DEAD_LETTER_ROWS, file_name_suffix=".jsonl"),)


def write_predictions(rows, params: TemplateParams) -> tuple:
    """The prediction rows into their files and predictions.json, or their table: what was written."""
    if params.output_table:
        return _into_table(rows, "Prediction", params.output_table, bigquery.PREDICTION_SCHEMA,
                           params.table_write_disposition)
    output = params.output.rstrip("/")
    if params.output_format == OutputFormat.parquet.value:
        schema = bigquery.arrow_schema(bigquery.PREDICTION_SCHEMA, documents=bool(params.questions_file))
        files = rows | "WritePredictionRows" >> beam.io.WriteToParquet(
            f"{output}/{PREDICTION_ROWS}", schema, file_name_suffix=".parquet")
    else:
        files = (rows
                 | "RowsAsJson" >> beam.Map(json_line)
                 | "WritePredictionRows" >> beam.io.WriteToText(f"{output}/{PREDICTION_ROWS}",
                                                                file_name_suffix=".jsonl"))
    # Streamed from the finished row shards: memory stays bounded however many questions the job has.
    predictions_json = (
        files
        | "PredictionShards" >> beam.combiners.ToList()
        | "WritePredictionsJson" >> beam.Map(write_predictions_json, f"{output}/{PREDICTIONS_JSON}")
    )
    return files, predictions_json


def _into_table(rows, name: str, table: str, schema: dict, disposition: str) -> tuple:
    # Load jobs are waited for before their ids come out: the summary, which waits for these, comes after them.
    result = rows | f"Write{name}Table" >> bigquery.write_rows(table, schema, disposition)
    return tuple(jobs | f"{name}Table{kind}" >> beam.Map(lambda _, table=table: f"bigquery:{table}")
                 for kind, jobs in (("Loaded", result.destination_load_jobid_pairs),
                                    ("Copied", result.destination_copy_jobid_pairs)))


def build(pipeline: beam.Pipeline, params: TemplateParams, started: float, require_gpu: bool = False) -> None:
    """Adds the whole job to `pipeline`. `require_gpu`: a worker whose model cannot use a GPU fails at load."""
    output = params.output.rstrip("/")
    questions = load_questions(params.questions_file) if params.questions_file else None  # documents mode
    window_settings = WindowSettings(params.max_seq_length, params.doc_stride, params.max_query_length)
    decode_settings = DecodeSettings(params.n_best_size, params.max_answer_length,
                                     params.null_score_diff_threshold, params.version_2_with_negative,
                                     params.align_to_words)

    read = read_input(pipeline, params, questions)
    # Ids are de-duplicated through a shuffle of small tuples; the questions themselves cross one shuffle,
    # by passage, where the records of an id seen before meet their passage and are dead-lettered.
    by_passage = read.questions | "KeyByPassage" >> beam.ParDo(KeyByPassage()).with_outputs(IDS, main="questions")
    later = by_passage[IDS] | "GroupById" >> beam.GroupByKey() | "LaterRecords" >> beam.FlatMap(later_records)
    featurized = (
        (by_passage.questions, later)
        | "QuestionsAndLater" >> beam.Flatten()
        | "GroupByPassage" >> beam.GroupByKey()
        | "MakeWindows" >> beam.ParDo(
            MakeWindows(params.tokenizer, window_settings)).with_outputs(
            REJECTS, SCORES, TOKENS, main="questions")
    )
    spec = model_spec(params, threads_per_process(params, pipeline.options))
    inference = RunInference(QAModelHandler(spec, params.max_seq_length, params.max_batch_size, require_gpu,
                                            params.share_model_across_processes))
    hint = inference_step_accelerator(params)
    if hint:
        inference = inference.with_resource_hints(accelerator=hint)
    inferred, dead_inference = (
        featurized.questions
        | "BatchBySimilarLength" >> batch_questions(params.max_batch_size, params.max_seq_length)
        | "RunInference" >> inference.with_exception_handling()
    )
    model_time = inferred | "ModelTime" >> beam.CombineGlobally(ModelTimeFn())
    name = params.tokenizer_parameter
    tokenizer = (f"{params.tokenizer.file} (--model_path's)" if name == "model_path"
                 else f"--{name}={getattr(params, name)}")
    tokens = (featurized[TOKENS] | "PassageTokens" >> beam.CombineGlobally(SumPairsFn())
              | "UnknownTokens" >> beam.Map(unknown_tokens, tokenizer))
    failed = dead_inference.failed_inferences | "FailedQuestions" >> beam.FlatMap(failed_questions).with_outputs(
        REJECTS, SCORES)
    decoded = inferred | "DecodeAnswers" >> beam.ParDo(DecodeAnswers(decode_settings)).with_outputs(
        REJECTS, SCORES, main="predictions")
    predictions = decoded.predictions

    rejects = (
        (read[REJECTS], featurized[REJECTS], failed[REJECTS], decoded[REJECTS]) | "AllRejects" >> beam.Flatten()
    )
    if questions:
        rejects = rejects | "NamePairs" >> beam.Map(name_pair)
    rows = predictions | "PredictionRows" >> beam.Map(Prediction.row, documents=questions is not None)
    written = ((*write_dead_letters(rejects, params), *write_predictions(rows, params))
               | "AllWritten" >> beam.Flatten())

    def count(name: str, *pcolls):
        return combine_each(f"Count{name}", pcolls, beam.combiners.CountCombineFn(), sum)

    answered = rows | "Answered" >> beam.Filter(lambda row: row["answer"] != "")
    # Documents mode: the records read are documents, each asked every question as a pair.
    read_records = (read[DOCUMENTS], read[REJECTS]) if questions else (read.questions, read[REJECTS])
    pairs = [count("Pairs", read.questions) | "AsPairs" >> beam.Map(lambda n: ("pairs", n))] if questions else []
    asked = {"questions_asked": len(questions.questions)} if questions else {}
    counts = (
        (count("Read", *read_records) | "AsRead" >> beam.Map(lambda n: ("records_read", n)),
         count("Predicted", predictions) | "AsPredicted" >> beam.Map(lambda n: ("predicted", n)),
         count("Answered", answered) | "AsAnswered" >> beam.Map(lambda n: ("answered", n)),
         count("DeadLettered", rejects) | "AsDeadLettered" >> beam.Map(lambda n: ("dead_lettered", n)), *pairs)
        | "AllCounts" >> beam.Flatten()
        | "CountMap" >> beam.combiners.ToDict()
        | "NoAnswer" >> beam.Map(lambda c: {**c, **asked, "no_answer": c["predicted"] - c["answered"]})
    )
    # Every labelled question is scored where it ends: with its answer, or as missing where it was dead-lettered.
    metrics = combine_each("Metrics", (featurized[SCORES], failed[SCORES], decoded[SCORES]), MetricTotalsFn(),
                           MetricsFn())
    reasons = (
        rejects
        | "DeadLetterReasons" >> beam.Map(reason_kind)
        | "CountReasons" >> beam.combiners.Count.PerElement()
        | "MostCommonReasons" >> beam.combiners.Top.Of(3, key=lambda item: (item[1], item[0]))
        | "AsCountReason" >> beam.Map(lambda top: [(count, reason) for reason, count in top])
    )
    # Written last, once every other file is complete (it waits for their names): its presence marks a done run.
    _ = (
        counts
        | "WriteSummary" >> beam.Map(
            write_summary, metrics=beam.pvalue.AsSingleton(metrics), written=beam.pvalue.AsList(written),
            model_time=beam.pvalue.AsSingleton(model_time), reasons=beam.pvalue.AsSingleton(reasons),
            tokens=beam.pvalue.AsSingleton(tokens),
            path=f"{output}/{SUMMARY}", started=started, limit=params.max_dead_letter_fraction)
    )


def run(params: TemplateParams, beam_args: list[str], wait: bool | None = None, require_gpu: bool = False):
    """Builds and starts the job; waits for it when it runs locally. Returns the PipelineResult."""
    options = PipelineOptions(beam_args)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, params, time.time(), require_gpu)
    result = pipeline.run()
    if wait:
        result.wait_until_finish()
    return result
