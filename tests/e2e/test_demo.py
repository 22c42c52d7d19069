"""The bundled demo model really answers its sample questions through the whole pipeline."""

import json
from pathlib import Path

import pytest

from bertqa.cli import run_command
from bertqa.demo import data
from bertqa.demo.train import DEMO_ARGS, SAMPLE_SEED

DEMO = Path(__file__).resolve().parents[2] / "demo"


def test_make_demo_uses_the_settings_the_model_was_trained_for():
    makefile = (DEMO.parent / "Makefile").read_text()
    assert f"DEMO_ARGS := {' '.join(DEMO_ARGS)}\n" in makefile


def test_sample_questions_are_the_generators_output():
    committed = [json.loads(line) for line in (DEMO / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert committed == list(data.generate(SAMPLE_SEED, 20))
    assert len(committed) >= 50
    assert sum(1 for r in committed if not r["answers"]) >= 10


def test_demo_model_scores_em_90_on_its_sample_questions(tmp_path, capsys):
    code = run_command([
        f"--input={DEMO / 'questions.jsonl'}", f"--output={tmp_path}", f"--model_path={DEMO / 'model'}",
        f"--vocab_path={DEMO / 'vocab.txt'}", *DEMO_ARGS,
    ])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metrics"]["exact"] >= 90, summary
    assert summary["metrics"]["HasAns_exact"] >= 85 and summary["metrics"]["NoAns_exact"] >= 85
    assert '"records_read": 80' in capsys.readouterr().out
    # The best no-answer threshold it reports, applied, gives the F1 it reports for it.
    best = summary["metrics"]["best_f1"]
    assert best >= summary["metrics"]["f1"]
    assert run_command([
        f"--input={DEMO / 'questions.jsonl'}", f"--output={tmp_path / 'tuned'}", f"--model_path={DEMO / 'model'}",
        f"--vocab_path={DEMO / 'vocab.txt'}", *DEMO_ARGS,
        f"--null_score_diff_threshold={summary['metrics']['best_f1_thresh']!r}"]) == 0
    tuned = json.loads((tmp_path / "tuned" / "summary.json").read_text())["metrics"]
    assert tuned["f1"] == pytest.approx(best) and tuned["best_f1"] == pytest.approx(best)
    # What `make demo` prints after the job: the threshold as the flag that gives it.
    from bertqa.demo import show

    capsys.readouterr()
    show.main(str(tmp_path), str(DEMO / "questions.jsonl"))
    assert (f"F1 {best:.1f} with --null_score_diff_threshold={summary['metrics']['best_f1_thresh']!r}"
            in capsys.readouterr().out)


def test_training_labels_point_at_the_answer_tokens(vocab, sample_records):
    from bertqa.demo.train import training_arrays
    from bertqa.qa.windows import Featurizer, WindowSettings
    from bertqa.qa.tokenization import wordpiece

    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(max_seq_length=64, doc_stride=24, max_query_length=16))
    for record in sample_records[:12]:
        arrays = training_arrays([record], featurizer, keep_misses=1.0)
        windows = featurizer.windows(record["id"], record["question"], featurizer.tokenize_passage(record["context"]))
        assert len(arrays["ids"]) == len(windows)
        passage = featurizer.tokenize_passage(record["context"])
        labelled = 0
        for row, window in enumerate(windows):
            start, end = arrays["start"][row], arrays["end"][row]
            assert arrays["mask"][row].sum() == window.length
            if start == 0:
                assert end == 0
                continue
            labelled += 1
            first = window.doc_offset + start - window.context_start
            last = window.doc_offset + end - window.context_start
            text = record["context"][passage.offsets[first][0]:passage.offsets[last][1]]
            assert text == record["answers"][0]["text"]
        assert (labelled > 0) == bool(record["answers"])


def test_whole_word_answers_raise_exact_match_on_held_out_questions(tmp_path):
    """align_to_words on the demo model and questions it was not trained on: answers the model cut inside a
    word ("José Torñ" for "José Torñri") are widened, which must raise EM; the raw span stays in the rows."""
    from bertqa.qa.decoding import whole_words

    questions = tmp_path / "held_out.jsonl"
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data.generate(11, 150)),
                         encoding="utf-8")
    summaries, rows = {}, {}
    for align in ("false", "true"):
        output = tmp_path / align
        assert run_command([f"--input={questions}", f"--output={output}", f"--model_path={DEMO / 'model'}",
                            f"--vocab_path={DEMO / 'vocab.txt'}", *DEMO_ARGS, f"--align_to_words={align}"]) == 0
        summaries[align] = json.loads((output / "summary.json").read_text())["metrics"]
        rows[align] = {row["id"]: row for shard in sorted(output.glob("predictions-*.jsonl"))
                       for row in map(json.loads, shard.read_text(encoding="utf-8").splitlines())}
    contexts = {r["id"]: r["context"] for r in data.generate(11, 150)}
    widened = 0
    for question_id, raw in rows["false"].items():
        aligned = rows["true"][question_id]
        assert (aligned["raw_start_char"], aligned["raw_end_char"]) == (raw["start_char"], raw["end_char"])
        if raw["answer"] and aligned["answer"] != raw["answer"]:
            widened += 1
            assert raw["answer"] in aligned["answer"]
            start, end = whole_words(contexts[question_id], aligned["start_char"], aligned["end_char"])
            assert (start, end) == (aligned["start_char"], aligned["end_char"])  # already whole words
    print(f"\nheld-out demo questions (seed 11, 150 passages): {widened} answers widened, EM "
          f"{summaries['false']['exact']:.2f} -> {summaries['true']['exact']:.2f}, F1 "
          f"{summaries['false']['f1']:.2f} -> {summaries['true']['f1']:.2f}")
    assert widened >= 5
    assert summaries["true"]["exact"] > summaries["false"]["exact"]
    assert summaries["true"]["f1"] > summaries["false"]["f1"]
