"""A shared DVC remote: push after a run, pull into a fresh clone, and nothing is stale."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import commit, dvc, run, tiny_project

pytestmark = pytest.mark.slow


def test_push_then_pull_into_a_fresh_clone(
    project_copy: Path, keyword_csv: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    project = tiny_project(project_copy, keyword_csv, tiny_bert, epochs=1)
    remote = tmp_path / "remote"
    dvc(project, "remote", "add", "-d", "shared", str(remote))
    dvc(project, "repro")
    commit(project, "a run")
    dvc(project, "push")
    assert any(remote.rglob("*")), "nothing was pushed"

    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    assert not (clone / "models" / "model").exists()
    dvc(clone, "pull")
    for name in ("config.json", "model.safetensors", "training_params.json"):
        assert (clone / "models" / "model" / name).is_file(), name
    assert (clone / "metrics.json").read_text() == (project / "metrics.json").read_text()
    status = dvc(clone, "status")
    assert "up to date" in status.stdout, status.stdout
