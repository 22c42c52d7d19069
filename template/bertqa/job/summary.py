"""Summarize: the job's summary.json (counts, SQuAD metrics where questions are labelled, the most common
dead-letter reasons, tokens, timing and the outputs written), one box in the graph, written once every other
output is complete; it fails the job where more records went to the dead letters than allowed."""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re
import time
from typing import Any, Callable, Iterable

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from bertqa.io.documents import AskedQuestions, split_pair_id
from bertqa.io.files import read_bytes
from bertqa.io.outputs import SUMMARY, write_json
from bertqa.params import TemplateParams
from bertqa.qa.metrics import MetricTotals, QuestionScore

UNKNOWN_TOKEN_WARNING = 0.05  # more of the passages' tokens than this unknown: say so
TRUNCATED_QUESTION_WARNING = 0.01  # more of the questions than this cut to max_query_length: say so


@dataclasses.dataclass
class SummaryTotals:
    """Everything the summary counts, as one accumulator: each PCollection adds its elements to one of these
    where it is made, and the few partial totals are merged."""

    # records_read, predicted, answered, dead_lettered, pairs; model_windows, model_seconds (summed over every
    # model call); passage_tokens, unknown_passage_tokens, questions_truncated
    sums: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    metrics: MetricTotals = dataclasses.field(default_factory=MetricTotals)
    reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # reason_kind: count
    # Documents mode: (question id, "predicted", "answered" or "dead_lettered") -> pairs
    by_question: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def merge(self, other: "SummaryTotals") -> "SummaryTotals":
        self.sums.update(other.sums)
        self.metrics.merge(other.metrics)
        self.reasons.update(other.reasons)
        self.by_question.update(other.by_question)
        return self

    def most_common_reasons(self, count: int = 3) -> list[tuple[int, str]]:
        """(count, reason) of the `count` most common reasons; equal counts by reason, the later first."""
        return sorted(((times, reason) for reason, times in self.reasons.items()), reverse=True)[:count]


def count_record(totals: SummaryTotals, _) -> None:
    totals.sums["records_read"] += 1


def count_pair(totals: SummaryTotals, _) -> None:
    totals.sums["pairs"] += 1


def count_prediction(totals: SummaryTotals, prediction) -> None:
    totals.sums["predicted"] += 1
    totals.sums["answered"] += prediction.answer.text != ""


def count_pair_prediction(totals: SummaryTotals, prediction) -> None:
    """A pair's prediction (documents mode), counted for its question too."""
    count_prediction(totals, prediction)
    _, question_id = split_pair_id(prediction.question.id)
    totals.by_question[question_id, "predicted"] += 1
    totals.by_question[question_id, "answered"] += prediction.answer.text != ""


def count_dead_letter(totals: SummaryTotals, row: str) -> None:
    _count_letter(totals, json.loads(row))


def count_pair_dead_letter(totals: SummaryTotals, row: str) -> None:
    """A dead letter in documents mode, counted for its question too where it is a pair's (named by name_pair; a
    document refused before it was asked anything has no question)."""
    letter = json.loads(row)
    _count_letter(totals, letter)
    if letter.get("question_id") is not None:
        totals.by_question[letter["question_id"], "dead_lettered"] += 1


def _count_letter(totals: SummaryTotals, letter: dict) -> None:
    """A dead-letter row, parsed once: counted, and its reason with those like it."""
    totals.sums["dead_lettered"] += 1
    totals.reasons[reason_kind(letter)] += 1


def add_score(totals: SummaryTotals, score: QuestionScore) -> None:
    totals.metrics.add(score)


def add_model_time(totals: SummaryTotals, result) -> None:
    """A list of questions' ListResult: its windows and model seconds."""
    totals.sums.update(model_windows=result.windows, model_seconds=sum(result.model_seconds))


def add_tokens(totals: SummaryTotals, counts: tuple[int, int, int]) -> None:
    """outcomes.TOKENS' (passage tokens, unknown passage tokens, questions cut to max_query_length)."""
    totals.sums.update(passage_tokens=counts[0], unknown_passage_tokens=counts[1], questions_truncated=counts[2])


class CountWhereMade(beam.DoFn):
    """Elements -> one SummaryTotals per bundle that had any, made by `add` (one of the functions above): counted in
    the stage that makes the elements, with no grouping of its own (a CombineGlobally per PCollection would be a
    shuffle and a stage more each). The job is batch, in the global window."""

    def __init__(self, add: Callable[[SummaryTotals, Any], None]):
        self._add = add
        self._totals: SummaryTotals | None = None

    def start_bundle(self):
        self._totals = None

    def process(self, element):
        if self._totals is None:
            self._totals = SummaryTotals()
        self._add(self._totals, element)

    def finish_bundle(self):
        if self._totals is not None:
            yield GlobalWindows.windowed_value_at_end_of_window(self._totals)


class MergeTotals(beam.CombineFn):
    """The partial SummaryTotals -> their sum (an empty one where there are none)."""

    def create_accumulator(self):
        return SummaryTotals()

    def add_input(self, totals, partial):
        return totals.merge(partial)

    def merge_accumulators(self, accumulators):
        merged = SummaryTotals()
        for totals in accumulators:
            merged.merge(totals)
        return merged

    def extract_output(self, totals):
        return totals


def metrics_of(totals: MetricTotals) -> dict:
    """The summary's metrics, where any question was labelled."""
    if not totals.labelled:
        return {}
    return {
        "metrics": totals.summary(),
        "metrics_all_labelled": totals.summary(count_missing=True),
        "labelled_without_prediction": totals.without_prediction,
    }


def token_counts(sums: collections.Counter, asked: int, tokenizer: str, max_query_length: int) -> dict:
    """The summary's counts of the passages' tokens, of those the vocabulary did not know, and of the questions
    (of `asked`) cut to max_query_length, each with a warning (logged too) where it is a larger share than its
    limit: a vocabulary that is not the model's gives every passage mostly unknown tokens, and a question cut
    short loses its end; either answers worse without any error."""
    total, unknown, cut = sums["passage_tokens"], sums["unknown_passage_tokens"], sums["questions_truncated"]
    found = {"passage_tokens": total, "unknown_passage_tokens": unknown, "questions_truncated": cut}
    warnings = []
    if total and unknown / total > UNKNOWN_TOKEN_WARNING:
        warnings.append(f"{unknown:,} of the passages' {total:,} tokens ({unknown / total:.1%}) are the "
                        f"tokenizer's unknown token: is {tokenizer} this model's vocabulary?")
    if asked and cut / asked > TRUNCATED_QUESTION_WARNING:
        warnings.append(f"{cut:,} of {asked:,} questions ({cut / asked:.1%}) have more than "
                        f"--max_query_length={max_query_length} tokens and were cut to it: the model saw only their "
                        "start; raise --max_query_length (each window then holds that much less of the passage)")
    for warning in warnings:
        logging.warning(warning)
    return {**found, "warnings": warnings} if warnings else found


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


def reason_kind(letter: dict) -> str:
    """A dead-letter row's (parsed) stage and reason with quoted values (but field names) and numbers blanked, so
    that rows failing for the same reason count together."""
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


def by_question(totals: SummaryTotals, asked: list[str]) -> list[dict]:
    """Documents mode: each question of the file (`asked`: their ids), in its order, with how many documents it got
    a prediction and an answer from (a question answered in few of them may be worded for another kind of
    document), and how many of its pairs went to the dead letters."""
    counts = totals.by_question
    return [{"question_id": question_id, **{kind: counts[question_id, kind]
                                            for kind in ("predicted", "answered", "dead_lettered")}}
            for question_id in asked]


def write_totals(totals: SummaryTotals, written, asked: list[str] | None, tokenizer: str, max_query_length: int,
                 path: str, started: float, limit: float, run_id: str) -> None:
    """write_summary of the job's SummaryTotals (`asked`: in documents mode, the ids of the questions each document
    was asked; only their ids: the questions' text is in the job's graph once already, and a graph has a size
    limit)."""
    sums = totals.sums
    counts = {name: sums[name] for name in ("records_read", "predicted", "answered", "dead_lettered")}
    if asked is not None:
        counts.update(pairs=sums["pairs"], questions_asked=len(asked), by_question=by_question(totals, asked))
    counts["no_answer"] = counts["predicted"] - counts["answered"]
    tokens = token_counts(sums, sums["pairs"] if asked is not None else sums["records_read"], tokenizer,
                          max_query_length)
    write_summary(counts, metrics_of(totals.metrics), written, [sums["model_windows"], sums["model_seconds"]],
                  totals.most_common_reasons(), tokens, path, started, limit, run_id)


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
        # Documents mode: the records read are documents, each asked every question as a pair.
        adds = [(parts["documents"] if questions else parts["questions"], count_record, "Read"),
                (parts["read_rejects"], count_record, "ReadRejects"),
                *([(parts["questions"], count_pair, "Pairs")] if questions else []),
                (parts["predictions"], count_pair_prediction if questions else count_prediction, "Predictions"),
                (parts["rejects"], count_pair_dead_letter if questions else count_dead_letter, "DeadLetters"),
                (parts["featurize_scores"], add_score, "FeaturizeScores"),
                (parts["answer_scores"], add_score, "AnswerScores"),
                (parts["results"], add_model_time, "ModelTime"),
                (parts["tokens"], add_tokens, "PassageTokens")]
        # Each PCollection counted where it is made, a partial total per bundle (not flattened first: a local runner
        # would copy every element through one more stage), then the partial totals merged into one.
        totals = ([pcoll | f"Count{name}" >> beam.ParDo(CountWhereMade(add)) for pcoll, add, name in adds]
                  | "AllTotals" >> beam.Flatten() | "MergeTotals" >> beam.CombineGlobally(MergeTotals()))
        name = params.tokenizer_parameter
        tokenizer = (f"{params.tokenizer.file} (--model_path's)" if name == "model_path"
                     else f"--{name}={getattr(params, name)}")
        return totals | "WriteSummary" >> beam.Map(
            write_totals, written=beam.pvalue.AsList(parts["written"]),
            asked=[question_id for question_id, _ in questions.questions] if questions else None, tokenizer=tokenizer,
            max_query_length=params.max_query_length, path=f"{params.output.rstrip('/')}/{SUMMARY}",
            started=self._started, limit=params.max_dead_letter_fraction, run_id=self._run_id)
