"""Summarize: the job's summary.json (counts, SQuAD metrics where questions are labelled, the most common
dead-letter reasons, tokens, timing and the outputs written), one box in the graph, written once every other
output is complete; it fails the job where more records went to the dead letters than allowed."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Iterable

import apache_beam as beam

from bertqa.io.documents import AskedQuestions
from bertqa.io.files import read_bytes
from bertqa.io.outputs import SUMMARY, write_json
from bertqa.params import TemplateParams
from bertqa.qa.metrics import MetricTotals, QuestionScore

UNKNOWN_TOKEN_WARNING = 0.05  # more of the passages' tokens than this unknown: say so


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
                  limit: float, run_id: str) -> None:
    """Writes the summary, then fails the job where too many records went to the dead letters (after the summary:
    a failed job still has every output). Idempotent: Dataflow retries a failed step (4 attempts in batch), and a
    retry finds the summary its first attempt wrote (the same run_id) and keeps it, so the summary is written
    once and every attempt gives the same verdict."""
    row = _first_attempt(path, run_id)
    if row is None:
        row = {**summary(counts, metrics, started, [*written, path], model_time, reasons, tokens),  # itself too
               "run_id": run_id}
        write_json(path, row)
    check_dead_letter_budget(row, limit)


def _first_attempt(path: str, run_id: str) -> dict | None:
    """The summary at `path` where an earlier attempt of this run wrote it, else None."""
    try:
        row = json.loads(read_bytes(path))
    except Exception:  # none yet (the usual case), or unreadable: this attempt writes it
        return None
    return row if isinstance(row, dict) and row.get("run_id") == run_id else None


class Summarize(beam.PTransform):
    """The job's PCollections -> summary.json, written last: it waits for the names of every other output, so its
    presence marks a done run. Takes a dict: "questions", "documents" and "read_rejects" (as read), "predictions",
    "rejects" (every dead letter), "featurize_scores" and "answer_scores", "results" (the model's ListResults),
    "tokens" (each passage's tokens and unknown ones) and "written" (the outputs' names)."""

    def __init__(self, params: TemplateParams, questions: AskedQuestions | None, started: float, run_id: str):
        super().__init__()
        self._params = params
        self._questions = questions  # documents mode: the questions each document was asked
        self._started = started
        self._run_id = run_id

    def expand(self, parts: dict) -> beam.PCollection:
        params, questions = self._params, self._questions

        def count(name: str, *pcolls):
            return combine_each(f"Count{name}", pcolls, beam.combiners.CountCombineFn(), sum)

        answered = parts["predictions"] | "Answered" >> beam.Filter(lambda prediction: prediction.answer.text != "")
        # Documents mode: the records read are documents, each asked every question as a pair.
        read_records = (parts["documents"] if questions else parts["questions"], parts["read_rejects"])
        pairs = ([count("Pairs", parts["questions"]) | "AsPairs" >> beam.Map(lambda n: ("pairs", n))]
                 if questions else [])
        asked = {"questions_asked": len(questions.questions)} if questions else {}
        counts = (
            (count("Read", *read_records) | "AsRead" >> beam.Map(lambda n: ("records_read", n)),
             count("Predicted", parts["predictions"]) | "AsPredicted" >> beam.Map(lambda n: ("predicted", n)),
             count("Answered", answered) | "AsAnswered" >> beam.Map(lambda n: ("answered", n)),
             count("DeadLettered", parts["rejects"]) | "AsDeadLettered" >> beam.Map(lambda n: ("dead_lettered", n)),
             *pairs)
            | "AllCounts" >> beam.Flatten()
            | "CountMap" >> beam.combiners.ToDict()
            | "NoAnswer" >> beam.Map(lambda c: {**c, **asked, "no_answer": c["predicted"] - c["answered"]})
        )
        # Every labelled question is scored where it ends: with its answer, or as missing where it was dead-lettered.
        metrics = combine_each("Metrics", (parts["featurize_scores"], parts["answer_scores"]), MetricTotalsFn(),
                               MetricsFn())
        reasons = (
            parts["rejects"]
            | "DeadLetterReasons" >> beam.Map(reason_kind)
            | "CountReasons" >> beam.combiners.Count.PerElement()
            | "MostCommonReasons" >> beam.combiners.Top.Of(3, key=lambda item: (item[1], item[0]))
            | "AsCountReason" >> beam.Map(lambda top: [(count, reason) for reason, count in top])
        )
        model_time = parts["results"] | "ModelTime" >> beam.CombineGlobally(ModelTimeFn())
        name = params.tokenizer_parameter
        tokenizer = (f"{params.tokenizer.file} (--model_path's)" if name == "model_path"
                     else f"--{name}={getattr(params, name)}")
        tokens = (parts["tokens"] | "PassageTokens" >> beam.CombineGlobally(SumPairsFn())
                  | "UnknownTokens" >> beam.Map(unknown_tokens, tokenizer))
        return counts | "WriteSummary" >> beam.Map(
            write_summary, metrics=beam.pvalue.AsSingleton(metrics), written=beam.pvalue.AsList(parts["written"]),
            model_time=beam.pvalue.AsSingleton(model_time), reasons=beam.pvalue.AsSingleton(reasons),
            tokens=beam.pvalue.AsSingleton(tokens), path=f"{params.output.rstrip('/')}/{SUMMARY}",
            started=self._started, limit=params.max_dead_letter_fraction, run_id=self._run_id)
