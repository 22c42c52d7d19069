"""AnswerQuestions: featurized questions -> lists of questions of similar length -> RunInference (windows sorted
into model calls, logits per question) -> each question's answer, or its dead letter."""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Iterable

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from bertqa.backends.base import ListResult, QAModelHandler, batch_questions, short_error
from bertqa.io.documents import split_pair_id
from bertqa.io.records import Question
from bertqa.job.counters import ANSWERED, NO_ANSWER
from bertqa.job.featurize import each_or_its_error
from bertqa.job.outcomes import REJECTS, SCORES, question_rejected
from bertqa.params import TemplateParams
from bertqa.qa.decoding import Answer, DecodeSettings, decode_answers
from bertqa.qa.metrics import score_question


class Answered(typing.NamedTuple):
    predictions: beam.PCollection  # Predictions
    rejects: beam.PCollection  # dead-letter rows
    scores: beam.PCollection  # labelled questions' scores
    results: beam.PCollection  # the model's ListResults (for its timing)


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

    def row(self, documents: bool = False, candidates: bool = False) -> dict:
        """The prediction's row; in documents mode with its document's and question's ids beside the pair's; with
        `candidates` (--top_k), the answer's candidate spans."""
        pair = dict(zip(("document_id", "question_id"), split_pair_id(self.question.id))) if documents else {}
        spans = {"candidates": [
            {"answer": candidate.text, "score": candidate.score, "probability": candidate.probability,
             "start_char": candidate.start_char, "end_char": candidate.end_char}
            for candidate in self.answer.candidates]} if candidates else {}
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
            **spans,
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
            (ANSWERED if answer.text else NO_ANSWER).inc()
            if question.gold_answers is not None:
                yield beam.pvalue.TaggedOutput(SCORES, score_question(question.gold_answers, answer.text,
                                                                      answer.best_span_text, answer.null_score_diff))
            yield Prediction(question, answer)

    def _answers(self, result: ListResult, positions: list[int]) -> list[Answer]:
        questions = [result.questions[position] for position in positions]
        return decode_answers(result.packed_windows(positions), [question.question.context for question in questions],
                              [question.passage.offsets for question in questions], self._settings)


def on_dataflow(options: PipelineOptions) -> bool:
    return "Dataflow" in (options.view_as(StandardOptions).runner or "")


def threads_per_process(params: TemplateParams, options: PipelineOptions) -> int:
    """ONNX Runtime's intra-op threads in each process that holds a model; 0 = its default, one per core.

    Dataflow runs one SDK process per vCPU, and with the default each of them would start a thread per vCPU:
    n x n threads for n cores (two processes on this 2-core machine, BERT-base: 10.7-13.1 s with one thread
    each against 12.5-15.3 s with the default). A model shared by all processes (GPU jobs) is alone in its
    process and keeps the default, as does a local run in one process.
    """
    if params.share_model_across_processes:
        return 0
    if on_dataflow(options):
        return 1
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode != "multi_processing":
        return 0
    processes = direct.direct_num_workers or os.cpu_count() or 1  # 0: one per core, as Beam counts
    return max(1, (os.cpu_count() or 1) // processes) if processes > 1 else 0


class AnswerQuestions(beam.PTransform):
    """FeaturizedQuestions -> Answered, through the model `params` name. `require_gpu`: a worker whose model cannot
    use a GPU fails at load."""

    def __init__(self, params: TemplateParams, require_gpu: bool = False):
        super().__init__()
        self._params = params
        self._require_gpu = require_gpu

    def expand(self, questions) -> Answered:
        params = self._params
        spec = params.model_spec(threads_per_process(params, questions.pipeline.options))
        inference = RunInference(QAModelHandler(spec, params.max_seq_length, params.max_batch_size, self._require_gpu,
                                                params.share_model_across_processes))
        # Only Dataflow attaches a GPU for the hint; a local runner would start a second pool of worker processes
        # for the hint's environment, each process holding a copy of the job's code and none of them a GPU.
        if (hint := params.inference_step_accelerator) and on_dataflow(questions.pipeline.options):
            inference = inference.with_resource_hints(accelerator=hint)
        results, dead = (
            questions
            | "BatchBySimilarLength" >> batch_questions(params.max_batch_size, params.max_seq_length)
            | "RunInference" >> inference.with_exception_handling()
        )
        failed = dead.failed_inferences | "FailedQuestions" >> beam.FlatMap(failed_questions).with_outputs(
            REJECTS, SCORES)
        decoded = results | "DecodeAnswers" >> beam.ParDo(DecodeAnswers(params.decode_settings)).with_outputs(
            REJECTS, SCORES, main="predictions")
        return Answered(decoded.predictions,
                        (failed[REJECTS], decoded[REJECTS]) | "Rejects" >> beam.Flatten(),
                        (failed[SCORES], decoded[SCORES]) | "Scores" >> beam.Flatten(),
                        results)
