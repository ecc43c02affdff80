"""The gate and the sweep on real runs of the tiny BERT, in a throwaway git + DVC repository."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pipeline_helpers import commit, dvc, run, set_params, tiny_project

pytestmark = pytest.mark.slow


@pytest.fixture
def gate_project(project_copy: Path, keyword_csv: Path, tiny_bert: Path) -> Path:
    return tiny_project(
        project_copy, keyword_csv, tiny_bert, epochs=8, lr=1e-3, **{"gate.n_bootstrap": 500}
    )


def gate(project: Path, *args: str) -> tuple[int, str]:
    bertpipe = str(Path(sys.executable).parent / "bertpipe")
    result = run(project, bertpipe, "check-metrics", *args, check=False)
    return result.returncode, result.stdout + result.stderr


def test_gate_passes_a_rerun_and_fails_a_real_regression(gate_project: Path) -> None:
    project = gate_project
    dvc(project, "repro")
    baseline = json.loads((project / "metrics.json").read_text())
    commit(project, "baseline run")

    # the run against itself passes (a forced rerun passing is test_reliability_e2e's)
    code, output = gate(project, "--baseline", "HEAD")
    assert code == 0, output
    assert "PASS" in output

    # a candidate that barely trained and loosens its own tolerances to let that through: the
    # gate reads the baseline's gate: section, so it is a real regression, exit 1, with a table
    loosened = {"gate.tolerance": {"accuracy": 1.0, "f1_macro": 1.0}}
    set_params(project, lr=1e-7, **loosened)
    dvc(project, "repro")
    worse = json.loads((project / "metrics.json").read_text())
    assert baseline["accuracy"] > 0.7, baseline
    assert worse["f1_macro"] < baseline["f1_macro"] - 0.3, (baseline, worse)
    code, output = gate(project, "--baseline", "HEAD", "--md", "gate.md")
    assert code == 1, output
    table = (project / "gate.md").read_text()
    assert "| accuracy |" in table and "| f1_macro |" in table and "**regression**" in table
    assert "the candidate's gate: section differs and is NOT used" in table
    # the same, committed: a pull request's head judged against its base
    commit(project, "candidate: lr 1e-7, tolerances 1.0")
    code, output = gate(project, "--baseline", "HEAD~1", "--candidate", "HEAD")
    assert code == 1 and "**regression**" in output, output

    # unusable input: a revision without metrics, a revision that does not exist
    code, output = gate(project, "--baseline", "HEAD~2")
    assert code == 2 and "has no metrics.json" in output
    code, output = gate(project, "--baseline", "no-such-branch")
    assert code == 2 and "not a git revision" in output


def test_a_queued_sweep_runs_two_at_once_and_shows_every_run(gate_project: Path) -> None:
    """`dvc exp run --queue -S 'lr=a,b'`, then `dvc queue start -j 2`: both runs, with metrics,
    in `dvc exp show`, each run in its own workspace so their outputs cannot clash."""
    import time

    project = gate_project
    set_params(project, epochs=2)
    commit(project, "two epochs")
    dvc(project, "exp", "run", "--queue", "-S", "lr=1e-3,2e-3")
    dvc(project, "queue", "start", "-j", "2")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = dvc(project, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    assert status.count("Success") == 2, status
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    found = {}
    for rev in shown:
        for exp in rev.get("experiments") or []:
            data = (exp.get("revs") or [{}])[0].get("data") or {}
            lr = data.get("params", {}).get("params.yaml", {}).get("data", {}).get("lr")
            metrics = data.get("metrics", {}).get("metrics.json", {}).get("data", {})
            if lr is not None and "f1_macro" in metrics:
                found[lr] = metrics["f1_macro"]
    assert {1e-3, 2e-3} <= set(found), found
    # each ran in its own temporary workspace: the main workspace has no outputs of theirs
    assert not (project / "metrics.json").exists()
