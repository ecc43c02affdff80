"""The files that decide whether a pull request may land: what CODEOWNERS protects, and how the
metrics workflow runs the base revision's gate."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml
from helpers import import_closure

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "bertpipe"


def _owned_paths() -> set[str]:
    owned = set()
    for line in (REPO / ".github" / "CODEOWNERS").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            owned.add(line.split()[0])
    return owned


def _module_level_bertpipe_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.module.split(".")[1]
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bertpipe.")
    }


def _gate_step_script() -> str:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "metrics.yml").read_text())
    steps = workflow["jobs"]["metrics"]["steps"]
    # one line per command: a backslash continues it
    return "\n".join(step.get("run", "") for step in steps).replace("\\\n", " ")


def test_codeowners_protect_every_module_the_gate_imports() -> None:
    # check-metrics runs cli.py's top level, then bertpipe.gate and what that imports: once
    # merged, an unowned one of these would change the rules for every later pull request
    gate_modules = {"__init__", "cli", "gate"} | import_closure(PACKAGE / "gate.py")
    assert _module_level_bertpipe_imports(PACKAGE / "cli.py") <= gate_modules
    owned = _owned_paths()
    unowned = sorted(m for m in gate_modules if f"/src/bertpipe/{m}.py" not in owned)
    assert not unowned, unowned
    # what the gate's Python installs, and the pipeline that writes the judged files
    assert {"/pyproject.toml", "/requirements.lock", "/dvc.yaml", "/.github/", "/.ci/"} <= owned
    assert "/params.yaml" in owned  # the gate: section


def test_the_workflow_runs_the_base_gate_without_the_working_directory_on_the_path() -> None:
    script = _gate_step_script()
    gate_line = next(line for line in script.splitlines() if "check-metrics" in line)
    # -P: a bertpipe/ folder at the pull request's root would otherwise be imported first
    assert 'PYTHONPATH="$RUNNER_TEMP/gate-base/src" python -P -m bertpipe.cli' in gate_line
    assert '--baseline "$BASE_SHA"' in gate_line


def test_the_workflow_evaluates_again_before_judging() -> None:
    # committed eval files with a dvc.lock to match would otherwise be judged as committed
    script = _gate_step_script()
    repro = script.index("dvc repro\n")
    forced = script.index("dvc repro --force --single-item evaluate")
    gate = script.index("check-metrics")
    assert repro < forced < gate
