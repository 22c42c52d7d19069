"""A local run's progress line, fed by every worker process, and the counters the README names."""

import io
import itertools
import re
import threading
from pathlib import Path

from bertqa.cli import run_command
from bertqa.demo import data
from bertqa.io import inputs
from bertqa.local.progress import count_records, progress_line, watch
from bertqa.job.counters import COUNTERS, DISTRIBUTIONS

from conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def test_progress_line_gives_counts_rate_and_time_left_with_a_bar_when_the_total_is_known():
    counts = {"questions_read": 990, "rejected_on_read": 10, "answered": 300, "no_answer": 90, "dead_lettered": 10}
    line = progress_line(counts, 1000, elapsed=65, rate=100.0, bar_width=10)
    assert line == ("[####......]  40% read 1,000, done 400 of 1,000, dead-lettered 10, 100 records/s, "
                    "0:01:05 elapsed, ~0:00:06 left")
    assert progress_line(counts, None, elapsed=3725, rate=None) == (
        "read 1,000, done 400, dead-lettered 10, starting, 1:02:05 elapsed")


def test_documents_mode_counts_pairs_and_a_document_rejected_on_read_as_all_its_pairs():
    # 200 documents asked 5 questions: 1,000 pairs. Read so far: 98 documents (490 pairs) and 2 rejected documents.
    counts = {"questions_read": 490, "rejected_on_read": 2, "answered": 300, "no_answer": 90, "dead_lettered": 12}
    line = progress_line(counts, 1000, elapsed=10, rate=50.0, asked=5)
    # done: 390 answered or not, 10 pairs dead-lettered after reading, the 2 documents' 10 pairs
    assert line == "read 500, done 410 of 1,000, dead-lettered 12, 50 pairs/s, 0:00:10 elapsed, ~0:00:11 left"


def test_a_documents_run_reports_progress_in_pairs_of_all_the_pairs_asked(tmp_path, onnx_model, vocab_path, capsys,
                                                                          monkeypatch):
    documents = [{"id": f"doc-{n}", "context": record["context"]}
                 for n, record in enumerate(data.generate(seed=5, passages=60)) if n % 2 == 0]
    write_jsonl(tmp_path / "docs.jsonl", documents + ["not json"])
    (tmp_path / "questions.txt").write_text("Who founded the town?\nWhich river flows through it?\n")
    monkeypatch.setenv("BERTQA_PROGRESS_INTERVAL", "0.2")
    total = 2 * (len(documents) + 1)  # the line that is not JSON is a document rejected on read: its two pairs
    for run in ("first", "second"):  # the second job in this process counts from zero, not from the first's end
        assert run_command([f"--input={tmp_path}/docs.jsonl", f"--questions_file={tmp_path}/questions.txt",
                            f"--output={tmp_path}/{run}", f"--model_path={onnx_model()}", "--backend=onnxruntime",
                            f"--vocab_path={vocab_path}", "--max_seq_length=64", "--doc_stride=24",
                            "--max_query_length=16"]) == 0
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("progress: ")]
        assert lines, "no progress line"
        found = [[int(number.replace(",", "")) for number in re.search(
            r"read ([\d,]*\d), done ([\d,]*\d) of ([\d,]*\d)", line).groups()] for line in lines]
        assert {of for *_, of in found} == {total}
        assert all(read <= total and done <= total for read, done, _ in found), (run, lines)


def test_records_are_counted_up_front_only_for_local_json_lines(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": str(n)} for n in range(7)])
    (tmp_path / "b.jsonl").write_text('{"id": "x"}\n\n  \n{"id": "y"}\n')
    assert count_records(str(tmp_path / "*.jsonl")) == 9  # blank lines are not records
    (tmp_path / "squad.json").write_text('{"data": []}')
    assert count_records(str(tmp_path / "*")) is None  # SQuAD JSON: only the job's own parse knows
    assert count_records("gs://bucket/q-*.jsonl") is None


def test_counting_the_records_stops_when_the_job_ends(tmp_path, monkeypatch):
    # A file whose count never ends: the progress thread must still end with the job, not keep counting.
    (tmp_path / "q.jsonl").write_text('{"id": "x"}\n')
    monkeypatch.setattr(inputs, "file_lines", lambda path: itertools.repeat(b'{"id": "x"}'))
    stop = threading.Event()
    stop.set()
    assert count_records(str(tmp_path / "q.jsonl"), stop) is None
    with watch(str(tmp_path / "q.jsonl"), stream=io.StringIO(), interval=0.05):
        pass
    assert not [thread for thread in threading.enumerate() if thread.name == "bertqa-progress"]


def test_a_local_run_prints_progress_counted_in_its_worker_processes(tmp_path, onnx_model, vocab_path, capsys,
                                                                     monkeypatch):
    records = list(data.generate(seed=5, passages=150))
    write_jsonl(tmp_path / "q.jsonl", records + ["not json"])
    monkeypatch.setenv("BERTQA_PROGRESS_INTERVAL", "0.3")
    code = run_command([f"--input={tmp_path}/q.jsonl", f"--output={tmp_path}/out", f"--model_path={onnx_model()}", "--backend=onnxruntime",
                        f"--vocab_path={vocab_path}", "--max_seq_length=64", "--doc_stride=24",
                        "--max_query_length=16", "--direct_num_workers=2",
                        "--direct_running_mode=multi_processing"])
    assert code == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("progress: ")]
    assert lines, "no progress line"
    total = len(records) + 1
    done = [int(re.search(r"done ([\d,]+) of ([\d,]+)", line).group(1).replace(",", "")) for line in lines]
    assert all(f"of {total:,}," in line for line in lines)
    assert done == sorted(done) and max(done) > 0 and max(done) <= total  # counted in the worker processes


def test_the_readme_names_every_counter():
    readme = (ROOT / "README.md").read_text()
    for name in [*COUNTERS, *DISTRIBUTIONS]:
        assert f"`{name}`" in readme, name
