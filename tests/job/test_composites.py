"""Each stage of the job on its own: a composite applied to beam.Create inputs in a TestPipeline, its tagged
outputs checked with assert_that."""

import json

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # (not a pytest class)
from apache_beam.testing.util import assert_that, equal_to

from bertqa.io.records import Question, Reject
from bertqa.job.answer import AnswerQuestions
from bertqa.job.featurize import FeaturizeByPassage
from bertqa.job.outcomes import CollectDeadLetters
from bertqa.job.read import ReadQuestions
from bertqa.job.summary import DeadLetterBudgetExceeded, Summarize, write_summary
from bertqa.job.write import WriteOutputs
from bertqa.params import build_params

from conftest import write_jsonl

PASSAGE = "Ulm is a city on the river Danube. Its mayor is Anna Berg, elected in 2020."


def question(record_id: str, text: str, line: int, context: str = PASSAGE, answers=None) -> Question:
    return Question(record_id, text, context, f"q.jsonl:{line}", ("q.jsonl", line), answers)


def params_for(tmp_path, model_path="", vocab_path="", **values):
    return build_params({"input": str(tmp_path / "*.jsonl"), "output": str(tmp_path / "out"),
                         "model_path": model_path or str(tmp_path / "model.onnx"), "vocab_path": vocab_path,
                         "backend": "onnxruntime", "max_seq_length": "64", "doc_stride": "24",
                         "max_query_length": "16", "max_batch_size": "4", **values})


def stages(rows):
    return sorted(json.loads(row)["stage"] for row in rows)


def ids(items):
    return sorted(item.id if isinstance(item, Question) else item.question.question.id for item in items)


def test_read_questions_gives_questions_and_dead_letters_by_tag(tmp_path, vocab_path):
    write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "question": "Who?", "context": PASSAGE},
                                       "{not json", {"id": "b", "question": "", "context": PASSAGE},
                                       {"id": "c", "question": "Where?", "context": PASSAGE}])
    with BeamTestPipeline() as pipeline:
        read = pipeline | ReadQuestions(params_for(tmp_path, vocab_path=vocab_path))
        assert_that(read.questions | beam.Map(lambda q: (q.id, q.source.rsplit(":", 1)[1])),
                    equal_to([("a", "1"), ("c", "4")]), label="questions")
        assert_that(read.rejects | beam.Map(lambda row: json.loads(row)["stage"]), equal_to(["parse", "validate"]),
                    label="rejects")
        assert_that(read.documents, equal_to([]), label="documents")


def test_featurize_by_passage_tokenizes_dedupes_and_dead_letters_where_the_records_meet(vocab_path):
    from bertqa.io.tokenizer_files import TokenizerSpec
    from bertqa.qa.windows import WindowSettings

    records = [question("a", "Who is the mayor?", 1, answers=("Anna Berg",)), question("b", "Where is Ulm?", 2),
               question("a", "Who is the mayor again?", 3), question("z", "\u200b\u200b", 4, answers=())]
    with BeamTestPipeline() as pipeline:
        featurized = (pipeline | beam.Create(records)
                      | FeaturizeByPassage(TokenizerSpec(vocab_path), WindowSettings(64, 24, 16)))
        assert_that(featurized.questions | beam.Map(lambda f: (f.question.id, len(f.spans))),
                    equal_to([("a", 1), ("b", 1)]), label="questions")
        assert_that(featurized.rejects | beam.Map(lambda row: (json.loads(row)["id"], json.loads(row)["stage"])),
                    equal_to([("a", "deduplicate"), ("z", "tokenize")]), label="rejects")
        # The labelled question that ends here is scored as missing; one passage, tokenized once.
        assert_that(featurized.scores | beam.Map(lambda score: score.has_answer), equal_to([False]), label="scores")
        assert_that(featurized.tokens | beam.Map(lambda tokens: tokens[0] > 0), equal_to([True]), label="tokens")


def test_answer_questions_answers_every_question_through_the_model(tmp_path, onnx_model, vocab_path):
    from bertqa.io.tokenizer_files import TokenizerSpec
    from bertqa.qa.windows import Featurizer, WindowSettings

    featurizer = Featurizer(TokenizerSpec(vocab_path).load(), WindowSettings(64, 24, 16))
    passage = featurizer.tokenize_passage(PASSAGE)
    featurized = [featurizer.featurize(q, featurizer.question_ids(q.question), passage)
                  for q in (question("a", "Who is the mayor?", 1, answers=("Anna Berg",)),
                            question("b", "Where is Ulm?", 2))]
    with BeamTestPipeline() as pipeline:
        answered = (pipeline | beam.Create(featurized)
                    | AnswerQuestions(params_for(tmp_path, onnx_model(), vocab_path)))
        assert_that(answered.predictions | beam.Map(lambda p: p.question.id), equal_to(["a", "b"]), label="answers")
        assert_that(answered.rejects, equal_to([]), label="rejects")
        assert_that(answered.scores | beam.Map(lambda score: score.has_answer), equal_to([True]), label="scores")
        assert_that(answered.results | beam.Map(lambda result: result.windows),
                    equal_to([sum(len(f.spans) for f in featurized)]), label="results")


def test_dead_letters_are_counted_once_where_they_meet_and_named_by_pair_in_documents_mode():
    def letter(record_id, stage):
        return Reject(stage, "why", "f:1", None, record_id).to_json()

    pipeline = BeamTestPipeline()
    parts = [pipeline | f"Create{n}" >> beam.Create(rows) for n, rows in enumerate(
        ([letter("d1\x1fq1", "tokenize")], [letter("d2", "validate"), letter("d3\x1fq2", "decode")], []))]
    collected = tuple(parts) | CollectDeadLetters(documents=True)
    pairs = collected | beam.Map(lambda row: (json.loads(row).get("document_id"), json.loads(row).get("question_id")))
    assert_that(pairs, equal_to([("d1", "q1"), ("d2", None), ("d3", "q2")]))
    result = pipeline.run()
    result.wait_until_finish()
    counted = result.metrics().query(MetricsFilter().with_name("dead_lettered"))["counters"]
    assert sum(counter.committed for counter in counted) == 3


def test_write_outputs_writes_rows_and_dead_letters_and_names_them(tmp_path, vocab_path):
    from bertqa.job.answer import Prediction
    from bertqa.qa.decoding import Answer

    answer = Answer("Anna Berg", start_char=48, end_char=57, score=3.5, probability=0.9, null_score_diff=-1.0)
    params = params_for(tmp_path, vocab_path=vocab_path)
    with BeamTestPipeline() as pipeline:
        prediction = Prediction(question("a", "Who?", 1), answer)
        written = {"predictions": pipeline | "Predictions" >> beam.Create([prediction]),
                   "rejects": pipeline | "Rejects" >> beam.Create([Reject("parse", "bad", "q.jsonl:2", "x").to_json()])
                   } | WriteOutputs(params)
        assert_that(written | beam.Map(lambda name: name.rsplit("/", 1)[1].split("-")[0]),
                    equal_to(["dead_letter", "predictions", "predictions.json"]))
    assert json.loads((tmp_path / "out" / "predictions.json").read_text()) == {"a": "Anna Berg"}


def summarize(tmp_path, vocab_path, run_id, limit="0.5", rejects=()):
    params = params_for(tmp_path, vocab_path=vocab_path, max_dead_letter_fraction=limit)
    with BeamTestPipeline() as pipeline:
        def create(name, items):
            return pipeline | name >> beam.Create(list(items))

        from bertqa.job.answer import Prediction
        from bertqa.qa.decoding import Answer

        predictions = [Prediction(question(n, "Who?", line), Answer(text, start_char=None, end_char=None, score=1.0,
                                                                     probability=0.5, null_score_diff=0.0))
                       for line, (n, text) in enumerate((("a", "Anna"), ("b", "")))]
        _ = {"questions": create("Questions", [question("a", "Who?", 1), question("b", "Who?", 2)]),
             "documents": create("Documents", []), "read_rejects": create("ReadRejects", rejects),
             "predictions": create("Predictions", predictions), "rejects": create("Rejects", rejects),
             "featurize_scores": create("FeaturizeScores", []), "answer_scores": create("AnswerScores", []),
             "results": create("Results", []), "tokens": create("Tokens", [(100, 1, 0), (0, 0, 1)]),
             "written": create("Written", ["out/predictions.json"])} | Summarize(params, None, 0.0, run_id)
    return json.loads((tmp_path / "out" / "summary.json").read_text())


def test_summarize_counts_what_each_stage_gave(tmp_path, vocab_path):
    summary = summarize(tmp_path, vocab_path, "run-1")
    assert (summary["records_read"], summary["predicted"], summary["answered"], summary["no_answer"],
            summary["dead_lettered"], summary["passage_tokens"], summary["run_id"]) == (2, 2, 1, 1, 0, 100, "run-1")
    assert summary["questions_truncated"] == 1 and summary["warnings"] == [
        "1 of 2 questions (50.0%) have more than --max_query_length=16 tokens and were cut to it: the model saw only "
        "their start; raise --max_query_length (each window then holds that much less of the passage)"]
    assert summary["outputs"] == sorted(["out/predictions.json", str(tmp_path / "out" / "summary.json")])


def test_a_retried_summary_keeps_its_first_attempt_and_gives_the_same_verdict(tmp_path, vocab_path):
    # Dataflow retries a failed step: the retry must neither rewrite the summary nor change the verdict.
    path = str(tmp_path / "summary.json")
    counts = {"records_read": 4, "predicted": 1, "answered": 1, "dead_lettered": 3, "no_answer": 0}
    arguments = dict(metrics={}, written=[], model_time=[1, 0.5], reasons=[(3, "parse: bad")], tokens={}, path=path,
                     limit=0.5, run_id="run-7")
    verdicts = []
    for started in (100.0, 200.0):  # a later attempt would time the job differently
        with pytest.raises(DeadLetterBudgetExceeded) as failed:
            write_summary(counts, started=started, **arguments)
        verdicts.append(str(failed.value))
        if started == 100.0:
            first = (tmp_path / "summary.json").read_text()
    assert verdicts[0] == verdicts[1] and "3 of 4 records (75.0%)" in verdicts[0]
    assert (tmp_path / "summary.json").read_text() == first
    # Another run writing into the same place writes its own summary.
    with pytest.raises(DeadLetterBudgetExceeded):
        write_summary(counts, started=300.0, **{**arguments, "run_id": "run-8"})
    assert json.loads((tmp_path / "summary.json").read_text())["run_id"] == "run-8"
