"""`bertqa benchmark`: the article's table for your model, your questions and this machine.

Prepares each form of the model it needs (ONNX fp32 through export-onnx, ONNX int8 through its accuracy
gate), then runs the real job (`bertqa run`, one process, in a subprocess of its own) on the same questions
for every backend this machine can run: TensorFlow and ONNX Runtime fp32 and int8 on the CPU; with a GPU
also TensorFlow and ONNX Runtime on it and a TensorRT fp16 engine where `tensorrt` is installed. Each row is
run at N/4 and N questions and its rate is the marginal one between the two jobs' own times (from the
pipeline's start to its summary, so the process's start-up, the checks before the job and their model probes
are left out, and what start-up remains inside the job cancels out); the model's own rate (its calls alone)
is given beside it. Rows give questions/s, windows/s, peak memory, EM/F1 for labelled
questions, the share of answers equal to the fp32 reference row's, and the projected time and cost of
1,000,000 questions on a named Dataflow worker shape (prices: data/prices.json, or --prices=FILE).
Writes benchmark.json, benchmark.md, benchmark.png and each run's output under --output.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Sequence

from bertqa.backends import nvml
from bertqa.io.outputs import PREDICTIONS_JSON

PRICES = Path(__file__).parents[1] / "data" / "prices.json"
MILLION = 1_000_000


@dataclasses.dataclass(frozen=True)
class Row:
    backend: str
    precision: str
    device: str  # "cpu" or "gpu"
    model_path: str

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.precision}-{self.device}"


@dataclasses.dataclass
class Result:
    row: Row
    questions_per_second: float | None = None
    windows_per_second: float | None = None
    model_questions_per_second: float | None = None  # the model's calls alone, in the larger run
    peak_host_mib: float | None = None
    peak_gpu_mib: float | None = None
    exact: float | None = None
    f1: float | None = None
    same_answers_as_reference: float | None = None
    spread: float | None = None  # (largest - smallest) / median of the repeats' rates
    hours_per_million: float | None = None
    cost_per_million: float | None = None
    error: str | None = None
    answers: dict = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class WorkerShape:
    machine_type: str
    vcpus: int
    memory_gb: float
    gpu_type: str | None

    def hourly_cost(self, prices: dict) -> float:
        """Dataflow's price of one such worker for an hour: vCPUs, memory and the GPU (boot disk and
        shuffle are not counted)."""
        cost = self.vcpus * prices["vcpu_per_hour"] + self.memory_gb * prices["memory_gb_per_hour"]
        if self.gpu_type:
            if self.gpu_type not in prices["gpu_per_hour"]:
                raise KeyError(f"the price file has no price for {self.gpu_type}: give one with --prices=FILE")
            cost += prices["gpu_per_hour"][self.gpu_type]
        return cost


def worker_shape(machine_type: str, gpu_type: str | None, prices: dict) -> WorkerShape:
    machines = prices.get("machine_types", {})
    if machine_type not in machines:
        raise KeyError(f"the price file does not know machine type {machine_type} (it knows "
                       f"{', '.join(sorted(machines))}): add it to a --prices=FILE")
    shape = machines[machine_type]
    return WorkerShape(machine_type, int(shape["vcpus"]), float(shape["memory_gb"]), gpu_type)


def projection(questions_per_second: float, shape: WorkerShape, workers: int, prices: dict) -> tuple[float, float]:
    """(hours, cost) of 1,000,000 questions on `workers` workers of `shape`, each answering at the
    measured rate."""
    hours = MILLION / (questions_per_second * workers) / 3600
    return hours, hours * workers * shape.hourly_cost(prices)


def _gpu_memory_used_mib() -> float | None:
    try:
        return nvml.first_gpu().used_bytes / 2**20
    except nvml.NoGpuError:
        return None


def _peak_resident_mib(pid: int) -> float | None:
    """The process's own high-water mark of resident memory (VmHWM: per process image, unlike a child's
    ru_maxrss, which Linux carries over from the parent across exec)."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        with open(f"/proc/{pid}/status") as status:
            return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024
    return None


def run_job(job_args: list[str], log_path: Path, cpu_only: bool, watch_gpu: bool) -> tuple[float, float, float | None]:
    """Runs `bertqa run` in a process of its own: (seconds, its peak resident memory in MiB, the GPU's peak
    used memory in MiB or None), both polled five times a second while it runs."""
    env = dict(os.environ)
    if cpu_only:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU row on a GPU machine: the backends see no GPU
    host, gpu = 0.0, None
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "bertqa.cli", "run", *job_args], stdout=log,
                                   stderr=subprocess.STDOUT, env=env)
        while True:
            host = max(host, _peak_resident_mib(process.pid) or 0.0)
            used = _gpu_memory_used_mib() if watch_gpu else None
            if used is not None:
                gpu = max(gpu or 0.0, used)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.2)  # returns at once when the job ends: the timing stays exact
                break
        seconds = time.perf_counter() - started
    if process.returncode != 0:
        last = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"the job exited with {process.returncode}: {last[0]} (log: {log_path})")
    return seconds, host, gpu


def take_questions(source: str, target: Path, count: int) -> int:
    """The first `count` records of a local JSON Lines file, written to `target`; how many there were."""
    taken = 0
    with open(source, "rb") as lines, open(target, "wb") as out:
        for line in lines:
            if line.strip():
                out.write(line.rstrip(b"\r\n") + b"\n")
                taken += 1
                if taken == count:
                    break
    return taken


def measure(row: Row, sizes: dict[int, Path], common: list[str], output: Path, watch_gpu: bool,
            repeats: int = 1) -> Result:
    """The row's marginal rates between the two sizes (the median over `repeats` pairs of runs, and their spread),
    and the last larger run's memory, scores and answers."""
    rates, windows_rates, host, gpu = [], [], 0.0, None
    for repeat in range(repeats):
        runs = {}
        for count, questions in sizes.items():
            run_dir = output / "runs" / f"{row.name}-{count}"
            shutil.rmtree(run_dir, ignore_errors=True)
            job = [f"--input={questions}", f"--output={run_dir}", f"--backend={row.backend}",
                   f"--model_path={row.model_path}", *common]
            if row.backend == "tensorrt":
                job.append(f"--precision={row.precision}")
            _, peak_host, peak_gpu = run_job(job, output / "runs" / f"{row.name}-{count}.log", row.device == "cpu",
                                             watch_gpu and row.device == "gpu")
            host, gpu = max(host, peak_host), peak_gpu if gpu is None else max(gpu, peak_gpu or 0.0)
            summary = json.loads((run_dir / "summary.json").read_text())
            # The job's own time: a subprocess's wall time also holds imports and the checks' model probes, which
            # differ between backends by more than a small run's model time.
            runs[count] = (summary["timing"]["seconds_since_submission"], summary["timing"]["model_windows"],
                           summary, run_dir)
        (small, large) = sorted(runs)
        (t_small, w_small, *_), (t_large, w_large, summary, run_dir) = runs[small], runs[large]
        if t_large > t_small:
            rates.append((large - small) / (t_large - t_small))
            windows_rates.append((w_large - w_small) / (t_large - t_small))
        else:  # noise larger than the difference: the whole larger run, start-up included
            rates.append(large / t_large)
            windows_rates.append(w_large / t_large)
    metrics = summary.get("metrics") or {}
    rate = statistics.median(rates)
    return Result(row, rate, statistics.median(windows_rates), summary["timing"]["questions_per_model_second"],
                  host, gpu, metrics.get("exact"), metrics.get("f1"),
                  spread=(max(rates) - min(rates)) / rate if len(rates) > 1 else None,
                  answers=json.loads((run_dir / PREDICTIONS_JSON).read_text(encoding="utf-8")))


def within_spread(results: list["Result"]) -> list[str]:
    """A line for each pair of measured rows whose rates differ by less than the larger of their spreads: this run
    cannot rank them."""
    measured = [r for r in results if not r.error and r.spread is not None]
    lines = []
    for index, first in enumerate(measured):
        for second in measured[index + 1:]:
            spread = max(first.spread, second.spread)
            difference = abs(first.questions_per_second - second.questions_per_second) / max(
                first.questions_per_second, second.questions_per_second)
            if difference <= spread:
                lines.append(f"{first.row.name} and {second.row.name} differ by {difference:.0%}, within their "
                             f"runs' spread ({spread:.0%}): this run does not rank them")
    return lines


def environment(gpu_present_here: bool) -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                   cpu)
    gpu = None
    if gpu_present_here:
        gpu = nvml.first_gpu().name
    versions = {}
    for package in ("bertqa", "apache-beam", "tensorflow", "tensorflow-cpu", "onnxruntime", "onnxruntime-gpu",
                    "tensorrt", "tokenizers", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {"cpu": cpu, "cpus": os.cpu_count(), "gpu": gpu, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions, "date": time.strftime("%Y-%m-%d")}


def _number(value, digits=1):
    return "" if value is None else f"{value:,.{digits}f}"


def markdown(results: list[Result], env: dict, assumptions: list[str], reference: str) -> str:
    lines = [
        f"| backend | precision | device | questions/s | windows/s | model alone, questions/s | peak host memory (MiB) "
        f"| peak GPU memory (MiB) | EM | F1 | same answers as {reference} | 1M questions: hours | 1M questions: cost "
        "(USD) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        device = env["gpu"] if r.row.device == "gpu" else env["cpu"]
        if r.error:
            lines.append(f"| {r.row.backend} | {r.row.precision} | {device} | {r.error} ||||||||||")
            continue
        same = "" if r.same_answers_as_reference is None else f"{r.same_answers_as_reference:.1%}"
        lines.append(
            f"| {r.row.backend} | {r.row.precision} | {device} | {_number(r.questions_per_second)} | "
            f"{_number(r.windows_per_second)} | {_number(r.model_questions_per_second)} | "
            f"{_number(r.peak_host_mib, 0)} | {_number(r.peak_gpu_mib, 0)} | "
            f"{_number(r.exact, 2)} | {_number(r.f1, 2)} | {same} | {_number(r.hours_per_million, 2)} | "
            f"{_number(r.cost_per_million, 2)} |")
    lines += ["", "Assumptions:", *[f"- {text}" for text in assumptions], "",
              f"Measured on {env['cpu']} ({env['cpus']} CPUs)" + (f", {env['gpu']}" if env["gpu"] else "") +
              f", {env['date']}; " + ", ".join(f"{name} {version}" for name, version in env["versions"].items()) + "."]
    return "\n".join(lines) + "\n"


def chart_caption(env: dict, small: int, large: int, windows: str, shapes: str) -> str:
    """What a reader of the chart alone must know: where and on what it was measured, and that costs are a
    projection from this machine."""
    machine = f"{env['cpu']} ({env['cpus']} CPUs)" + (f", {env['gpu']}" if env["gpu"] else "")
    return (f"bertqa benchmark, {env['date']}: measured on {machine}, one job process\n"
            f"marginal rate between {small:,} and {large:,} questions; {windows}\n"
            f"costs projected on {shapes}: only a projection from this machine, not a measurement on the worker")


def chart(results: list[Result], path: Path, caption: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    shown = [r for r in results if not r.error]
    labels = [f"{r.row.backend} {r.row.precision} {r.row.device}" for r in shown]
    figure, (speed, cost) = pyplot.subplots(1, 2, figsize=(11, 2.0 + 0.5 * len(shown)))
    speed.barh(labels, [r.questions_per_second for r in shown], color="#4878a8")
    speed.set_xlabel("questions/s (this machine)")
    cost.barh(labels, [r.cost_per_million or 0 for r in shown], color="#a86448")
    cost.set_xlabel("USD per 1,000,000 questions (projected)")
    cost.set_yticks(range(len(shown)), [""] * len(shown))
    for axis in (speed, cost):
        axis.invert_yaxis()
    figure.suptitle(caption, fontsize=8, x=0.01, horizontalalignment="left")
    figure.tight_layout(rect=(0, 0, 1, 0.8))
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def progress(done: int, total: int, what: str) -> None:
    filled = 24 * done // total
    print(f"[{'#' * filled}{'.' * (24 - filled)}] {done}/{total} {what}", file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    from bertqa.tools.export_onnx import ExportError, export_onnx, gate_windows_problem, quantize_int8
    from bertqa.tools.job_arguments import GATE_PARAMETERS, add_job_arguments, job_params
    from bertqa.params import GPU_MACHINE_TYPES, GpuType, ParameterError

    parser = argparse.ArgumentParser(prog="bertqa benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--saved_model", help="a TensorFlow SavedModel (TensorFlow rows, and the ONNX export)")
    source.add_argument("--onnx", help="an fp32 ONNX model (no TensorFlow rows)")
    parser.add_argument("--vocab_path", required=True)
    parser.add_argument("--input", required=True, help="a local JSON Lines question file (labelled: EM/F1 too)")
    parser.add_argument("--output", required=True, help="a directory for the results")
    parser.add_argument("--questions", type=int, default=2000, help="N: each row runs N/4 and N questions")
    parser.add_argument("--do_lower_case", choices=["true", "false"], default="true")
    add_job_arguments(parser, GATE_PARAMETERS)
    parser.add_argument("--prices", default=str(PRICES), help="a price file like bertqa/data/prices.json")
    parser.add_argument("--machine_type", default="n1-standard-4", help="the CPU rows' worker shape")
    parser.add_argument("--gpu_type", default=GpuType.l4.value, help="the GPU rows' GPU")
    parser.add_argument("--gpu_machine_type", help="the GPU rows' worker shape (default: the GPU's usual one)")
    parser.add_argument("--workers", type=int, default=1, help="workers of the projection")
    parser.add_argument("--repeats", type=int, default=2,
                        help="pairs of runs per row: the rate is their median, and their spread is stated")
    args = parser.parse_args(list(argv))
    if args.questions < 8:
        parser.error("--questions must be at least 8 (the rows run N/4 and N)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    output = Path(args.output)
    fp32 = args.onnx or str(output / "models" / "model.onnx")
    try:  # the runs' and the int8 gate's settings, checked as `bertqa run` checks them
        params = job_params(args, ("vocab_path", "do_lower_case", *GATE_PARAMETERS), backend="onnxruntime",
                            model_path=fp32, output=args.output)
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    prices = json.loads(Path(args.prices).read_text())
    try:
        cpu_shape = worker_shape(args.machine_type, None, prices)
        gpu_machine = args.gpu_machine_type or GPU_MACHINE_TYPES[args.gpu_type].default
        gpu_shape = worker_shape(gpu_machine, args.gpu_type, prices)
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2

    (output / "models").mkdir(parents=True, exist_ok=True)
    (output / "runs").mkdir(exist_ok=True)
    large = take_questions(args.input, output / "questions.jsonl", args.questions)
    if large < 8:
        print(f"error: {args.input} holds {large} records; the benchmark needs at least 8", file=sys.stderr)
        return 2
    if large < args.questions:  # not a silent smaller run: start-up weighs more in fewer questions
        print(f"error: {args.input} holds {large} records, fewer than --questions={args.questions}: pass "
              f"--questions={large}, or an input with more questions", file=sys.stderr)
        return 2
    small = large // 4
    take_questions(args.input, output / "questions-small.jsonl", small)
    sizes = {small: output / "questions-small.jsonl", large: output / "questions.jsonl"}
    windows = [f"--max_seq_length={params.max_seq_length}", f"--doc_stride={params.doc_stride}",
               f"--max_query_length={params.max_query_length}", f"--max_answer_length={params.max_answer_length}"]
    common = [f"--vocab_path={args.vocab_path}", f"--do_lower_case={args.do_lower_case}", *windows,
              f"--n_best_size={params.n_best_size}", f"--max_batch_size={params.max_batch_size}",
              f"--max_changed_spans={params.max_changed_spans}", "--max_dead_letter_fraction=1"]

    gpu = nvml.gpu_present()
    int8 = str(output / "models" / "model-int8.onnx")
    rows = []
    if args.saved_model:
        rows.append(Row("tensorflow", "fp32", "cpu", args.saved_model))
    rows += [Row("onnxruntime", "fp32", "cpu", fp32), Row("onnxruntime", "int8", "cpu", int8)]
    if gpu:
        if args.saved_model:
            rows.append(Row("tensorflow", "fp32", "gpu", args.saved_model))
        rows.append(Row("onnxruntime", "fp32", "gpu", fp32))
        if _importable("tensorrt"):
            rows.append(Row("tensorrt", "fp16", "gpu", fp32))
    steps, step = 2 + 2 * len(rows), 0  # two preparations, then two runs per row
    results: list[Result] = []
    try:
        if args.saved_model:
            progress(step, steps, "exporting the SavedModel to ONNX (fp32)")
            export_onnx(args.saved_model, fp32)
        step += 1
        progress(step, steps, "quantizing to int8 and checking it against fp32")
        from bertqa.backends.accuracy import AccuracyGateError

        if problem := gate_windows_problem(fp32, params):  # as `bertqa run` would refuse them
            print(f"error: {problem}", file=sys.stderr)
            return 2
        int8_refused = None
        try:
            int8_report = quantize_int8(fp32, int8, params.accuracy_gate).describe()
        except AccuracyGateError as error:
            int8_refused, int8_report = f"refused: {error}", None
        step += 1
    except (ExportError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    for row in rows:
        progress(step, steps, f"{row.backend} {row.precision} on the {row.device}: {small} and {large} questions")
        if row.precision == "int8" and int8_refused:
            results.append(Result(row, error=int8_refused))
        else:
            try:
                results.append(measure(row, sizes, common, output, watch_gpu=gpu, repeats=args.repeats))
            except RuntimeError as error:
                results.append(Result(row, error=str(error)))
        step += 2
    progress(steps, steps, "done")

    reference = next((r for r in results if r.row.precision == "fp32" and not r.error), None)
    for result in results:
        if result.error:
            continue
        if reference and result.answers:
            same = sum(result.answers.get(key) == value for key, value in reference.answers.items())
            result.same_answers_as_reference = same / len(reference.answers)
        shape = gpu_shape if result.row.device == "gpu" else cpu_shape
        with contextlib.suppress(KeyError):
            result.hours_per_million, result.cost_per_million = projection(
                result.questions_per_second, shape, args.workers, prices)

    env = environment(gpu)
    assumptions = [
        f"Rates are measured on this machine by one job process (`bertqa run`, local runner), as the marginal "
        f"rate between the jobs' own times (pipeline start to summary) at {small} and {large} questions; each "
        "projected worker is assumed to answer at that rate. 'Model alone' is the model's calls without the rest "
        "of the job, in the larger run. "
        "A Dataflow worker runs one process per vCPU, and its CPU or GPU is not this machine's: a projection "
        "from this machine is only a projection. Measure on the worker's machine type (a VM with the template's "
        "image) for figures to plan with.",
        f"1,000,000 questions on {args.workers} worker(s): CPU rows on {cpu_shape.machine_type} ({cpu_shape.vcpus} "
        f"vCPUs, {cpu_shape.memory_gb:g} GB), GPU rows on {gpu_shape.machine_type} with one {gpu_shape.gpu_type}; "
        "worker start-up, boot disk and shuffle are not counted.",
        f"Prices: {prices.get('source', args.prices)}; region {prices.get('region')}, {prices.get('date')}, "
        f"{prices.get('currency', 'USD')}: vCPU-hour {prices['vcpu_per_hour']}, GB-hour "
        f"{prices['memory_gb_per_hour']}" + (f", {gpu_shape.gpu_type} GPU-hour "
                                             f"{prices['gpu_per_hour'][gpu_shape.gpu_type]}"
                                             if gpu_shape.gpu_type in prices["gpu_per_hour"] else
                                             f", no price for {gpu_shape.gpu_type}") + ".",
        f"int8: ONNX Runtime dynamic quantization; against fp32 on the gate's sample: "
        f"{int8_report or int8_refused}.",
    ]
    spreads = [f"{r.row.name} {r.spread:.0%}" for r in results if not r.error and r.spread is not None]
    if spreads:
        assumptions.append(f"Each rate is the median of {args.repeats} pairs of runs; their spread (largest minus "
                           f"smallest, over the median): {', '.join(spreads)}.")
    else:
        assumptions.append("One pair of runs per row (--repeats=1): no spread is known, so small differences "
                           "between rows may be noise.")
    assumptions += [f"Within the spread: {line}." for line in within_spread(results)]
    reference_name = f"{reference.row.backend} {reference.row.precision}" if reference else "fp32"
    record = {"environment": env, "assumptions": assumptions, "reference": reference_name,
              "questions": {"small": small, "large": large},
              "rows": [{**dataclasses.asdict(r.row), **{k: v for k, v in dataclasses.asdict(r).items()
                                                         if k not in ("row", "answers")}} for r in results]}
    (output / "benchmark.json").write_text(json.dumps(record, indent=1))
    table = markdown(results, env, assumptions, reference_name)
    (output / "benchmark.md").write_text(table)
    written = [output / "benchmark.md", output / "benchmark.json"]
    if _importable("matplotlib"):
        shapes = (f"{args.workers} x {cpu_shape.machine_type} (CPU rows)" + (
            f", {args.workers} x {gpu_shape.machine_type} with one {gpu_shape.gpu_type} (GPU rows)" if gpu else ""))
        chart(results, output / "benchmark.png", chart_caption(env, small, large, " ".join(windows), shapes))
        written.append(output / "benchmark.png")
    else:  # the template's image carries no matplotlib: the table and figures do not need it
        print("note: no chart (matplotlib is not installed: pip install 'matplotlib==3.10.8')", file=sys.stderr)
    print(table)
    print(f"wrote {', '.join(map(str, written))}")
    return 0


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
