"""A hostile corpus through the whole job: every record read is predicted or dead-lettered, once.

Reconciles the outputs line by line against the corpus ledger (tests/fuzz_corpus.py), on one process
and on two worker processes, and reads every output line as strict JSON.
"""

import collections
import glob
import json

import pytest

from bertqa.cli import run_command
from bertqa.demo import data

from fuzz_corpus import write_corpus

JOB_ARGS = ["--max_seq_length=64", "--doc_stride=24", "--max_query_length=16", "--max_batch_size=32"]


def strict_rows(pattern: str) -> list[dict]:
    """Rows of JSONL files, each line strict JSON (no NaN/Infinity) and no extra line breaks inside."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    rows = []
    for path in sorted(glob.glob(pattern)):
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")  # raises on anything that is not UTF-8
        assert len(text.splitlines()) == text.count("\n"), f"{path}: a row holds a raw line break"
        rows += [json.loads(line, parse_constant=refuse) for line in text.splitlines()]
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile")
    records = list(data.generate(seed=21, passages=300))
    return directory, write_corpus(str(directory), records)


@pytest.mark.parametrize("processes", [1, 2])
def test_every_record_of_a_hostile_corpus_ends_predicted_or_dead_lettered_once(
        processes, corpus, tmp_path, onnx_model, vocab_path):
    directory, ledger = corpus
    assert ledger.records + ledger.behind_damage >= 1000
    workers = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"] if processes == 2 else []
    output = tmp_path / "out"
    assert run_command([f"--input={directory}/*", f"--output={output}", f"--model_path={onnx_model()}", "--backend=onnxruntime",
                        f"--vocab_path={vocab_path}", *JOB_ARGS, *workers]) == 0

    predictions = strict_rows(str(output / "predictions-*.jsonl"))
    dead = strict_rows(str(output / "dead_letter" / "*.jsonl"))
    predicted = collections.Counter(row["id"] for row in predictions)
    dead_sources = collections.Counter(row["source"] for row in dead)
    expected_answers = collections.Counter(ledger.answers)

    lost = [i for i in expected_answers if not predicted[i]] + [s for s in ledger.dead if not dead_sources[s]]
    duplicated = [i for i, n in predicted.items() if n > 1] + [s for s, n in dead_sources.items() if n > 1]
    misrouted = [i for i in predicted if i not in expected_answers] + [
        (row["source"], row["stage"], row["reason"]) for row in dead if ledger.dead.get(row["source"]) != row["stage"]]
    assert (lost, duplicated, misrouted) == ([], [], [])

    # Every dead letter says why, in one line, with the line as read (no line ending) where there was one.
    for row in dead:
        assert set(row) == {"stage", "reason", "source", "raw", "id"} and row["reason"] and "\n" not in row["reason"]
        if row["stage"] in ("parse", "validate") and ":" in row["source"].rsplit("/", 1)[-1] and row["raw"]:
            assert isinstance(row["raw"], str) and not row["raw"].endswith(("\n", "\r"))
    damage = {row["source"]: row["reason"] for row in dead if row["stage"] == "read"}
    assert all("could not be read to its end" in reason and "bytes read" in reason for reason in damage.values())
    answers = json.loads((output / "predictions.json").read_text(encoding="utf-8"))
    assert set(answers) == set(predicted)

    summary = json.loads((output / "summary.json").read_text(encoding="utf-8"))
    assert summary["predicted"] == len(predictions) == len(expected_answers)
    assert summary["dead_lettered"] == len(dead) == len(ledger.dead)
    assert summary["records_read"] == summary["predicted"] + summary["dead_lettered"] == ledger.records
