"""A pytest plugin: where the test suite's CPU goes, test by test, in the test processes and in their children.

The suite is CPU-bound on a small machine (docs/performance.md, "Build and test times"): its wall time follows its
CPU time, so this, not the durations, is what says which tests to make cheaper. For each test: its wall time, the
CPU its test process spent in it, and the CPU of the child processes that ended while it ran (the jobs' worker
processes, subprocess runs: `getrusage(RUSAGE_CHILDREN)` counts a child once it has been waited for). Under
pytest-xdist each test process sends its rows to the controlling one (xdist's `workeroutput`), which adds them up.

Usage, as `make test` runs the suite:
  PYTHONPATH=benchmarks .venv/bin/python -m pytest -q -p suite_cpu -n auto --dist loadgroup [--suite_cpu_top=30]
Prints the totals and the costliest tests at the end, and writes every row to --suite_cpu_json (suite_cpu.json).
"""

from __future__ import annotations

import json
import os
import resource
import time

import pytest

KEY = "suite_cpu"


def cpu_seconds() -> tuple[float, float]:
    """(user+sys of this process, user+sys of its children that have ended and been waited for)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def pytest_addoption(parser):
    group = parser.getgroup("suite_cpu", "CPU per test (benchmarks/suite_cpu.py)")
    group.addoption("--suite_cpu_top", type=int, default=30, help="how many of the costliest tests to print")
    group.addoption("--suite_cpu_json", default="suite_cpu.json", help="where to write every test's figures")


class Recorder:
    """Every test's figures in this process, and the process's own: its collection's CPU and its total."""

    def __init__(self):
        self.tests: list[dict] = []  # this process's, or (an xdist controller) those its test processes sent
        self.processes: list[dict] = []  # an xdist controller's test processes' own figures
        self._started: dict[str, tuple[float, float, float]] = {}
        self._collected = (0.0, 0.0)
        self._runs_tests = True

    def pytest_sessionstart(self, session):
        # xdist relays each test's start and end to its controller too, which runs none of them itself.
        self._runs_tests = not session.config.pluginmanager.hasplugin("dsession")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid, location):
        if self._runs_tests:
            self._started[nodeid] = (time.perf_counter(), *cpu_seconds())

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        if not self._runs_tests:
            return
        wall, own, children = self._started.pop(nodeid)
        now_own, now_children = cpu_seconds()
        self.tests.append({"test": nodeid, "wall_s": round(time.perf_counter() - wall, 3),
                           "own_cpu_s": round(now_own - own, 3), "children_cpu_s": round(now_children - children, 3)})

    def pytest_collection_finish(self, session):
        self._collected = cpu_seconds()

    def this_process(self, name: str) -> dict:
        own, children = cpu_seconds()
        return {"process": name, "collection_cpu_s": round(self._collected[0], 3), "own_cpu_s": round(own, 3),
                "children_cpu_s": round(children, 3)}


RECORDER = pytest.StashKey[Recorder]()


def pytest_configure(config):
    recorder = Recorder()
    config.pluginmanager.register(recorder, "suite_cpu_recorder")
    config.stash[RECORDER] = recorder
    if hasattr(config, "workerinput"):  # an xdist test process: hands its rows over when it ends
        config.pluginmanager.register(WorkerReport(config), "suite_cpu_worker")
    else:  # this process runs the tests, or (xdist) gathers the test processes' rows
        config.pluginmanager.register(GatherReports(recorder), "suite_cpu_gather")


class WorkerReport:
    def __init__(self, config):
        self._config = config

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        recorder = self._config.stash[RECORDER]
        self._config.workeroutput[KEY] = json.dumps(
            {"tests": recorder.tests, "process": recorder.this_process(self._config.workerinput["workerid"])})


class GatherReports:
    def __init__(self, recorder: Recorder):
        self._recorder = recorder

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest alone does not know it
    def pytest_testnodedown(self, node, error):
        report = json.loads(node.workeroutput.get(KEY, "null") or "null")
        if report:
            self._recorder.tests += report["tests"]
            self._recorder.processes.append(report["process"])


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return  # the controller reports for the whole run
    recorder = config.stash[RECORDER]
    this = recorder.this_process("controller" if recorder.processes else "pytest")
    processes = [*recorder.processes, this]
    tests = sorted(recorder.tests, key=lambda row: -(row["own_cpu_s"] + row["children_cpu_s"]))
    own, children = (sum(row[key] for row in tests) for key in ("own_cpu_s", "children_cpu_s"))
    everything = this["own_cpu_s"] + this["children_cpu_s"]  # the test processes, once ended, are its children
    write = terminalreporter.write_line
    terminalreporter.section("CPU per test (benchmarks/suite_cpu.py)")
    write(f"{len(tests)} tests: {own:.1f} CPU s in their test processes, {children:.1f} in their children; "
          f"every process of the run: {everything:.1f} CPU s; start-up and collection "
          + ", ".join(f"{p['process']} {p['collection_cpu_s']:.1f}" for p in processes if p["collection_cpu_s"])
          + " s")
    write("  CPU s    own  children   wall s  test")
    for row in tests[:config.getoption("suite_cpu_top")]:
        write(f"{row['own_cpu_s'] + row['children_cpu_s']:7.1f} {row['own_cpu_s']:6.1f} {row['children_cpu_s']:9.1f}"
              f" {row['wall_s']:8.1f}  {row['test']}")
    path = config.getoption("suite_cpu_json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"processes": processes, "tests": tests, "cpus": os.cpu_count()}, handle, indent=1)
    write(f"every test's figures: {path}")
