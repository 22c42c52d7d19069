"""The bundled demo model really answers its sample questions through the whole pipeline."""

import json
from pathlib import Path

from bertqa.cli import run_command
from bertqa.demo import data
from bertqa.demo.train import DEMO_ARGS, SAMPLE_SEED

DEMO = Path(__file__).resolve().parents[1] / "demo"


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


def test_training_labels_point_at_the_answer_tokens(vocab, sample_records):
    from bertqa.demo.train import training_arrays
    from bertqa.windows import Featurizer, WindowSettings

    featurizer = Featurizer(vocab, True, WindowSettings(max_seq_length=64, doc_stride=24, max_query_length=16))
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
