"""dvc.yaml is the map: five stages in order, chained, each depending on the code it imports."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ["clean", "split", "tokenize", "train", "evaluate"]


def _bertpipe_imports(path: Path) -> set[str]:
    """Modules of bertpipe that a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bertpipe"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from bertpipe import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "bertpipe" and len(parts) > 1:
                    found.add(parts[1])
    return found


def _closure(stage_script: Path) -> set[str]:
    package = REPO / "src" / "bertpipe"
    todo, seen = list(_bertpipe_imports(stage_script)), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(_bertpipe_imports(package / f"{module}.py"))
    return seen


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_exactly_the_five_stages_in_order() -> None:
    assert list(_stages()) == STAGES


def test_each_stage_runs_its_own_script() -> None:
    # as a module: run as a script, stages/ would go first on the import path, where
    # stages/tokenize.py shadows the standard library's tokenize
    for name, stage in _stages().items():
        assert stage["cmd"].startswith(f"python -m stages.{name} "), name
        assert (REPO / "stages" / f"{name}.py").is_file()
        assert f"stages/{name}.py" in stage["deps"]


def test_stages_depend_on_exactly_the_package_modules_they_import() -> None:
    # __init__.py only holds the version string, so it is not a dependency worth rerunning for
    for name, stage in _stages().items():
        imported = {
            f"src/bertpipe/{module}.py" for module in _closure(REPO / "stages" / f"{name}.py")
        }
        declared = {dep for dep in stage["deps"] if dep.startswith("src/bertpipe/")}
        assert declared == imported, (
            f"{name}: missing {sorted(imported - declared)}, extra {sorted(declared - imported)}"
        )


def _paths(entries: list) -> set[str]:
    return {next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries}


def test_stages_are_chained_by_deps_and_outs() -> None:
    stages = _stages()
    for before, after in itertools.pairwise(STAGES):
        produced = _paths(stages[before].get("outs", [])) | _paths(
            stages[before].get("metrics", [])
        )
        assert produced & set(stages[after]["deps"]), f"{after} does not consume {before}'s outputs"


def test_metrics_file_is_committed_not_cached() -> None:
    metrics = _stages()["evaluate"]["metrics"]
    assert {"metrics.json": {"cache": False}} in metrics
