"""Running the real pipeline in a throwaway git + DVC repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bertpipe.params import safe_load_yaml


def env() -> dict[str, str]:
    """The test's venv first on PATH, since dvc.yaml runs `python -m stages...`; never online."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result


def stage_command(project: Path, name: str) -> tuple[str, list[str]]:
    """The module and arguments of the stage's own `cmd:` in dvc.yaml (`python -m MODULE ...`)."""
    import shlex

    import yaml

    cmd = yaml.safe_load((project / "dvc.yaml").read_text())["stages"][name]["cmd"]
    program, flag, module, *args = shlex.split(cmd)
    assert (program, flag, module) == ("python", "-m", f"stages.{name}"), cmd
    return module, args


def run_stage(
    project: Path, name: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The stage's own `cmd:` from dvc.yaml, run with this interpreter (no DVC in between)."""
    module, args = stage_command(project, name)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=project,
        env={**env(), **(extra_env or {})},
        capture_output=True,
        text=True,
    )


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(cwd, str(Path(sys.executable).parent / "dvc"), *args, check=check)


def set_params(project: Path, **changes: Any) -> None:
    """Set params by dotted key: set_params(p, lr=1e-3, **{"data.path": "x.csv"})."""
    import yaml

    path = project / "params.yaml"
    params = safe_load_yaml(path.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def init_repo(project: Path) -> None:
    run(project, "git", "init", "-q", "-b", "main")
    dvc(project, "init", "-q")
    dvc(project, "config", "core.analytics", "false")
    commit(project, "initial")


def commit(project: Path, message: str) -> None:
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "--allow-empty", "-m", message)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def tiny_project(project: Path, data: Path, model: Path, **params: Any) -> Path:
    """A project copy made a git + DVC repo that trains the tiny BERT on `data`.

    Short runs by default (max_length 64, no early stopping); `params` are dotted keys that
    override anything, e.g. tiny_project(p, csv, bert, epochs=8, **{"gate.n_bootstrap": 500}).
    """
    (project / "data" / "notes.csv").write_bytes(data.read_bytes())
    defaults = {"max_length": 64, "data.path": "data/notes.csv", "train.patience": None}
    set_params(project, model=str(model), **{**defaults, **params})
    init_repo(project)
    return project
