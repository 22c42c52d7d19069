"""The package's layers point one way (pyproject.toml's import-linter contracts): pure QA logic at the bottom, the
Beam job above the backends, the Dataflow surface, local helpers and developer tools on top."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_a_module_importing_upwards_breaks_the_contract(tmp_path):
    # The contract can fail: a copy of the package whose QA logic imports the job is refused.
    import shutil

    shutil.copytree(ROOT / "template" / "bertqa", tmp_path / "bertqa", ignore=shutil.ignore_patterns("__pycache__"))
    windows = tmp_path / "bertqa" / "qa" / "windows.py"
    windows.write_text(windows.read_text() + "\nfrom bertqa.job import pipeline  # noqa\n")
    (tmp_path / ".importlinter").write_text(_contracts())
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache", "--config", ".importlinter"], cwd=tmp_path,
                            capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert result.returncode == 1 and "bertqa.qa is not allowed to import bertqa.job" in result.stdout, result.stdout


def _contracts() -> str:
    """pyproject.toml's contracts in import-linter's INI form."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[importlinter]", f"root_package = {config['root_package']}",
             f"include_external_packages = {config['include_external_packages']}"]
    for number, contract in enumerate(config["contracts"]):
        lines.append(f"[importlinter:contract:{number}]")
        for key, value in contract.items():
            lines.append(f"{key} =" + "".join(f"\n    {item}" for item in value) if isinstance(value, list)
                         else f"{key} = {value}")
    return "\n".join(lines) + "\n"


def test_the_readmes_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout\n"):].split("\n## ")[0]
    package = ROOT / "template" / "bertqa"
    for module in sorted(package.rglob("*.py")):
        if module.name != "__init__.py":
            assert f"`{module.name}`" in layout, module.relative_to(package)
    for folder in sorted(path for path in package.iterdir() if (path / "__init__.py").exists()):
        assert f"`{folder.name}/`" in layout, folder.name


WHAT_RUNINFERENCE_IMPORTED = """
import sys
import bertqa.job.pipeline
from apache_beam.ml.inference import base
print("torch" in sys.modules, base.ModelManager is not None)
"""


def test_a_process_importing_the_job_imports_no_torch_for_beams_model_manager(tmp_path):
    """Beam's RunInference module tries to import its ModelManager (torch, then scipy) in every process: without
    scipy that fails after torch is loaded (the job's import: 2.9 CPU s and 360 MB with it, 1.4 s and 174 MB
    without). A TensorFlow or ONNX Runtime worker must not pay for it; where scipy is installed, Beam's import is
    left as it is."""
    pytest.importorskip("torch", reason="without torch installed there is no torch import to avoid")

    def imported(path: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", WHAT_RUNINFERENCE_IMPORTED], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONPATH": path}).stdout.split()

    if importlib.util.find_spec("scipy") is None:
        assert imported(str(ROOT / "template")) == ["False", "False"]  # no torch, no ModelManager: as without scipy
    scipy = tmp_path / "scipy"  # a scipy that has what the ModelManager imports from it
    scipy.mkdir()
    (scipy / "__init__.py").write_text("")
    (scipy / "optimize.py").write_text("def nnls(*args):\n    raise NotImplementedError\n")
    assert imported(f"{ROOT / 'template'}:{tmp_path}") == ["True", "True"]
