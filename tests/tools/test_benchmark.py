"""`bertqa benchmark`: every CPU row on the demo model, answers equal to a plain run, the cost arithmetic."""

import json
import os
from pathlib import Path

import pytest

from bertqa.tools.benchmark import PRICES, WorkerShape, projection, worker_shape
from bertqa.cli import main as bertqa_main
from bertqa.demo.train import DEMO_ARGS

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
PRICE_TABLE = json.loads(PRICES.read_text())


def test_cost_of_a_million_questions_worked_by_hand():
    # n1-standard-4: 4 vCPUs x 0.056 + 15 GB x 0.003557 = 0.277355 USD an hour. At 100 questions/s one worker
    # needs 10,000 s = 2.7778 h: 0.77043 USD; four workers take a quarter of the time for the same cost.
    shape = worker_shape("n1-standard-4", None, PRICE_TABLE)
    assert shape == WorkerShape("n1-standard-4", 4, 15, None)
    assert shape.hourly_cost(PRICE_TABLE) == pytest.approx(0.277355)
    assert projection(100.0, shape, 1, PRICE_TABLE) == pytest.approx((2.777778, 0.770431), rel=1e-5)
    assert projection(100.0, shape, 4, PRICE_TABLE) == pytest.approx((0.694444, 0.770431), rel=1e-5)
    # g2-standard-8 with an L4: 8 x 0.056 + 32 x 0.003557 + 0.672 = 1.233824 an hour; at 400 questions/s,
    # 1M questions take 0.69444 h: 0.856822 USD.
    gpu = worker_shape("g2-standard-8", "nvidia-l4", PRICE_TABLE)
    assert gpu.hourly_cost(PRICE_TABLE) == pytest.approx(1.233824)
    assert projection(400.0, gpu, 1, PRICE_TABLE)[1] == pytest.approx(0.856822, rel=1e-5)


def test_the_shipped_prices_are_the_ones_beam_records_from_googles_pricing_page():
    from apache_beam.testing.load_tests import dataflow_cost_consts as beam

    assert PRICE_TABLE["region"] == "us-central1"
    assert PRICE_TABLE["vcpu_per_hour"] == beam.VCPU_PER_HR_BATCH
    assert PRICE_TABLE["memory_gb_per_hour"] == beam.MEM_PER_GB_HR_BATCH
    assert PRICE_TABLE["gpu_per_hour"] == {
        "nvidia-tesla-t4": beam.T4_PER_GPU_PER_HOUR, "nvidia-l4": beam.L4_PER_GPU_PER_HOUR,
        "nvidia-tesla-a100": beam.A100_40GB_PER_GPU_PER_HOUR, "nvidia-a100-80gb": beam.A100_80GB_PER_GPU_PER_HOUR}


def test_an_unpriced_gpu_or_unknown_machine_type_is_named():
    with pytest.raises(KeyError, match="no price for nvidia-h100-80gb"):
        worker_shape("a2-highgpu-1g", "nvidia-h100-80gb", PRICE_TABLE).hourly_cost(PRICE_TABLE)
    with pytest.raises(KeyError, match="does not know machine type n9-huge"):
        worker_shape("n9-huge", None, PRICE_TABLE)


def test_the_benchmark_on_the_demo_model_gives_every_cpu_row_and_the_plain_jobs_answers(tmp_path, capsys):
    output = tmp_path / "bench"
    code = bertqa_main(["benchmark", f"--saved_model={DEMO / 'model'}", f"--vocab_path={DEMO / 'vocab.txt'}",
                        f"--input={DEMO / 'questions.jsonl'}", f"--output={output}", "--questions=40", "--repeats=1",
                        *[arg for arg in DEMO_ARGS]])
    out = capsys.readouterr().out
    assert code == 0, out
    record = json.loads((output / "benchmark.json").read_text())
    rows = {(row["backend"], row["precision"], row["device"]): row for row in record["rows"]}
    assert set(rows) == {("tensorflow", "fp32", "cpu"), ("onnxruntime", "fp32", "cpu"), ("onnxruntime", "int8", "cpu")}
    for row in rows.values():
        assert row["error"] is None
        for figure in ("questions_per_second", "windows_per_second", "model_questions_per_second", "peak_host_mib",
                       "exact", "f1", "hours_per_million", "cost_per_million"):
            assert row[figure] > 0, (row, figure)
        assert row["windows_per_second"] >= row["questions_per_second"]  # a question has at least one window
    assert rows["onnxruntime", "fp32", "cpu"]["same_answers_as_reference"] == 1.0  # TensorFlow fp32 is the reference
    assert record["questions"] == {"small": 10, "large": 40}

    # The fp32 rows' answers are what a plain run of the job gives.
    assert bertqa_main(["run", f"--input={output / 'questions.jsonl'}", f"--output={tmp_path / 'plain'}",
                        f"--model_path={DEMO / 'model'}", f"--vocab_path={DEMO / 'vocab.txt'}", *DEMO_ARGS]) == 0
    plain = json.loads((tmp_path / "plain" / "predictions.json").read_text())
    for name in ("tensorflow-fp32-cpu", "onnxruntime-fp32-cpu"):
        assert json.loads((output / "runs" / f"{name}-40" / "predictions.json").read_text()) == plain

    table = (output / "benchmark.md").read_text()
    assert table.startswith("| backend | precision | device | questions/s | windows/s | model alone, questions/s |")
    assert "Assumptions:" in table and "the jobs' own times (pipeline start to summary)" in table
    assert "One pair of runs per row (--repeats=1): no spread is known" in table
    # Rates from each run's own summary, not its process's wall time (imports and the checks' probes).
    tf = rows["tensorflow", "fp32", "cpu"]
    timings = {n: json.loads((output / "runs" / f"tensorflow-fp32-cpu-{n}" / "summary.json").read_text())["timing"]
               for n in (10, 40)}
    small, large = (timings[n]["seconds_since_submission"] for n in (10, 40))
    assert tf["questions_per_second"] == pytest.approx(30 / (large - small) if large > small else 40 / large)
    assert tf["model_questions_per_second"] == timings[40]["questions_per_model_second"]
    assert "only a projection" in table and "us-central1" in table
    png = (output / "benchmark.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from matplotlib import image

    assert image.imread(str(output / "benchmark.png")).shape[2] in (3, 4)


def test_the_gpu_job_benchmark_runs_end_to_end(tmp_path):
    """benchmarks/gpu_job.py is run by whichever session gets a GPU, in one command with no second try: here, on the
    CPU with a tiny model in fp32, it must get through every step and write every figure."""
    import subprocess
    import sys

    pytest.importorskip("torch", reason="the hf extra (torch, transformers) is not installed")
    report = tmp_path / "gpu_job.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_job.py"), "--models=tiny",
                           "--precision=fp32", "--questions=24", "--max_batch_size=8", f"--json={report}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(report.read_text())["models"]["tiny"]
    assert [job["predicted"] for job in row["jobs"].values()] == [24, 96]
    assert row["model_alone"]["windows"] == row["jobs"]["96"]["windows"] >= 96  # SQuAD-length: a window or two
    # Start-up dominates jobs this small, so the marginal rate may be missing (None), never negative.
    assert row["ratio_to_model_alone"] is None or row["ratio_to_model_alone"] > 0
    assert "ratio" in done.stdout and row["model_alone"]["windows_per_second"] > 0


def test_the_feed_benchmark_finds_the_jobs_model_step_and_measures_it():
    """benchmarks/feed.py reads the job's graph for the coders around its model step: a renamed or moved step
    must fail here, not in the next session that measures."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "feed.py"), "--questions=200", "--repeats=1",
                           "--skip_job"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tokenize only (one thread):" in done.stdout and "RunInference stage fed, per process:" in done.stdout


def test_the_benchmark_refuses_to_measure_fewer_questions_than_asked(tmp_path, capsys):
    code = bertqa_main(["benchmark", f"--saved_model={DEMO / 'model'}", f"--vocab_path={DEMO / 'vocab.txt'}",
                        f"--input={DEMO / 'questions.jsonl'}", f"--output={tmp_path}", "--questions=2000",
                        *DEMO_ARGS])
    assert code == 2
    assert ("holds 80 records, fewer than --questions=2000: pass --questions=80, or an input with more questions"
            in capsys.readouterr().err)


def test_the_readmes_benchmark_table_is_the_one_the_command_wrote():
    """docs/benchmarks/demo-cpu.json is a run's own record: the table rendered from it is the committed
    benchmark.md, and the README shows that table as it is."""
    import dataclasses

    from bertqa.tools.benchmark import Result, Row, markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"
    record = json.loads((docs / "demo-cpu.json").read_text())
    row_fields = {field.name for field in dataclasses.fields(Row)}
    results = [Result(Row(**{k: v for k, v in row.items() if k in row_fields}),
                      **{k: v for k, v in row.items() if k not in row_fields}) for row in record["rows"]]
    written = markdown(results, record["environment"], record["assumptions"], record["reference"])
    assert written == (docs / "demo-cpu.md").read_text()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = readme[readme.index("<!-- benchmark:start -->\n") + 25:readme.index("\n<!-- benchmark:end -->")]
    assert shown == written.split("\n\nAssumptions:")[0]
    assert record["questions"] == {"small": 250, "large": 1000} and all(r["spread"] is not None for r in record["rows"])


def test_the_chart_says_where_and_on_what_it_was_measured():
    from bertqa.tools.benchmark import chart_caption

    environment = {"cpu": "Intel Xeon", "cpus": 2, "gpu": None, "date": "2026-12-07"}
    caption = chart_caption(environment, 250, 1000, "--max_seq_length=128 --doc_stride=48", "4 x n1-standard-4")
    for fact in ("2026-12-07", "Intel Xeon (2 CPUs)", "between 250 and 1,000 questions", "--max_seq_length=128",
                 "4 x n1-standard-4", "only a projection"):
        assert fact in caption


def test_rows_within_each_others_spread_are_not_ranked():
    from bertqa.tools.benchmark import Result, Row, within_spread

    def result(backend, rate, spread):
        return Result(Row(backend, "fp32", "cpu", "m"), questions_per_second=rate, spread=spread)

    lines = within_spread([result("tensorflow", 100.0, 0.12), result("onnxruntime", 108.0, 0.05),
                           result("tensorrt", 200.0, 0.05)])
    assert lines == ["tensorflow-fp32-cpu and onnxruntime-fp32-cpu differ by 7%, within their runs' spread (12%): "
                     "this run does not rank them"]
    assert within_spread([result("tensorflow", 100.0, None), result("onnxruntime", 101.0, None)]) == []


def test_repeated_runs_give_the_median_rate_and_its_spread(tmp_path, monkeypatch):
    from bertqa.tools import benchmark

    # Each run's own summary is what the rate is read from; these stand for three pairs of runs of 10 and 40
    # questions whose larger run took 3, 4 and 6 seconds more: rates 10, 7.5 and 5 questions/s.
    extra = iter([3.0, 4.0, 6.0])

    def run_job(job_args, log_path, cpu_only, watch_gpu):
        output = Path(next(arg for arg in job_args if arg.startswith("--output="))[len("--output="):])
        output.mkdir(parents=True)
        large = "-40" in output.name
        seconds = 10.0 + (next(extra) if large else 0.0)
        (output / "summary.json").write_text(json.dumps({"timing": {
            "seconds_since_submission": seconds, "model_windows": 40 if large else 10,
            "questions_per_model_second": 20.0}}))
        (output / "predictions.json").write_text("{}")
        return seconds, 100.0, None

    monkeypatch.setattr(benchmark, "run_job", run_job)
    (tmp_path / "runs").mkdir()
    result = benchmark.measure(benchmark.Row("tensorflow", "fp32", "cpu", "m"), {10: "a", 40: "b"}, [], tmp_path,
                               watch_gpu=False, repeats=3)
    assert result.questions_per_second == 7.5 and result.spread == pytest.approx((10 - 5) / 7.5)


BURN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.4:\n    pass\n"


def test_the_suite_cpu_plugin_counts_each_tests_cpu_in_its_test_process_and_in_its_children(tmp_path):
    """benchmarks/suite_cpu.py, under pytest-xdist as `make test` runs: the figures that say which tests to make
    cheaper must be each test's own, gathered from every test process."""
    import subprocess
    import sys

    (tmp_path / "test_burn.py").write_text(
        f"import subprocess, sys, time\nBURN = {BURN!r}\n\n"
        "def test_own():\n    exec(BURN)\n\n"
        "def test_child():\n    subprocess.run([sys.executable, '-c', BURN], check=True)\n\n"
        "def test_idle():\n    time.sleep(0.2)\n")
    report = tmp_path / "cpu.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "suite_cpu", "-p", "no:cacheprovider", "-n", "2",
                           f"--suite_cpu_json={report}", "test_burn.py"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "benchmarks")}, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(report.read_text())
    tests = {row["test"].split("::")[1]: row for row in record["tests"]}
    assert sorted(tests) == ["test_child", "test_idle", "test_own"]  # each once, though two processes ran them
    assert tests["test_own"]["own_cpu_s"] >= 0.39 and tests["test_own"]["children_cpu_s"] < 0.05
    assert tests["test_child"]["children_cpu_s"] >= 0.39 and tests["test_child"]["own_cpu_s"] < 0.2
    assert tests["test_idle"]["own_cpu_s"] + tests["test_idle"]["children_cpu_s"] < 0.1
    assert tests["test_idle"]["wall_s"] >= 0.2
    assert sorted(process["process"] for process in record["processes"]) == ["controller", "gw0", "gw1"]
    assert "CPU per test (benchmarks/suite_cpu.py)" in done.stdout and "test_burn.py::test_own" in done.stdout
