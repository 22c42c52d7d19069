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
