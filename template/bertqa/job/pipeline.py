"""The Beam pipeline: question files (or BigQuery rows) in; answers, dead letters and a summary out.

ReadQuestions -> FeaturizeByPassage (grouped by passage, ids de-duplicated, each passage tokenized once) ->
AnswerQuestions (lists of questions of similar length -> RunInference -> decoded answers) -> WriteOutputs, and
Summarize. Every record read ends either as a prediction or as a dead-letter row with its stage and reason. A
question travels as one element with all its windows, so nothing has to gather windows back together after the
model.
"""

from __future__ import annotations

import time
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from bertqa.io.documents import AskedQuestions, load_questions
from bertqa.job.answer import AnswerQuestions
from bertqa.job.featurize import FeaturizeByPassage
from bertqa.job.outcomes import CollectDeadLetters
from bertqa.job.read import ReadQuestions
from bertqa.job.summary import Summarize
from bertqa.job.write import WriteOutputs
from bertqa.params import TemplateParams


def build(pipeline: beam.Pipeline, params: TemplateParams, started: float, require_gpu: bool = False,
          questions: AskedQuestions | None = None) -> None:
    """Adds the whole job to `pipeline`. `require_gpu`: a worker whose model cannot use a GPU fails at load.
    `questions`: documents mode's questions file as the checks read it (read here where not given)."""
    if questions is None and params.questions_file:
        questions = load_questions(params.questions_file)
    read = pipeline | "ReadQuestions" >> ReadQuestions(params, questions)
    featurized = read.questions | "FeaturizeByPassage" >> FeaturizeByPassage(params.tokenizer, params.window_settings)
    answered = featurized.questions | "AnswerQuestions" >> AnswerQuestions(params, require_gpu)
    rejects = ((read.rejects, featurized.rejects, answered.rejects)
               | "DeadLetters" >> CollectDeadLetters(documents=questions is not None))
    written = {"predictions": answered.predictions, "rejects": rejects} | "WriteOutputs" >> WriteOutputs(params)
    _ = {"questions": read.questions, "documents": read.documents, "read_rejects": read.rejects,
         "predictions": answered.predictions, "rejects": rejects, "featurize_scores": featurized.scores,
         "answer_scores": answered.scores, "results": answered.results, "tokens": featurized.tokens,
         "written": written} | "Summarize" >> Summarize(params, questions, started, uuid.uuid4().hex)


def run(params: TemplateParams, beam_args: list[str], wait: bool | None = None, require_gpu: bool = False,
        questions: AskedQuestions | None = None):
    """Builds and starts the job; waits for it when it runs locally. Returns the PipelineResult."""
    options = PipelineOptions(beam_args)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, params, time.time(), require_gpu, questions)
    result = pipeline.run()
    if wait:
        result.wait_until_finish()
    return result
