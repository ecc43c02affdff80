"""dvc.yaml is the map: five stages in order, chained, each depending on the code it imports."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import import_closure

from bertpipe.evaluation import Evaluation, plot_rows
from bertpipe.metrics import predict_from_scores

REPO = Path(__file__).resolve().parents[1]
STAGES = ["clean", "split", "tokenize", "train", "evaluate"]


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_exactly_the_five_stages_in_order() -> None:
    assert list(_stages()) == STAGES


def test_each_stage_runs_its_own_script() -> None:
    for name, stage in _stages().items():
        assert stage["cmd"].startswith(f"python -m stages.{name} "), name
        assert (REPO / "stages" / f"{name}.py").is_file()
        assert f"stages/{name}.py" in stage["deps"]


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_also_runs_by_path(name: str) -> None:
    # run by path, stages/ goes first on the import path, where stages/tokenize.py would shadow
    # the standard library's tokenize: without each script's guard, every stage died in inspect
    done = subprocess.run(
        [sys.executable, f"stages/{name}.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {name}.py ")


def test_stages_import_the_src_beside_them_not_an_installed_copy(tmp_path: Path) -> None:
    # a queued experiment runs in a copy of the repository: its stages must run the copy's code,
    # which dvc.lock hashes, not the workspace's that the editable install points at
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "stages", copy / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "src" / "bertpipe" / "split.py").write_text('raise SystemExit("the copy\'s split")\n')
    for command in (["-m", "stages.split"], ["stages/split.py"]):
        done = subprocess.run(
            [sys.executable, *command, "--help"],
            cwd=copy,
            capture_output=True,
            text=True,
            check=False,
        )
        assert "the copy's split" in done.stderr, (command, done.stdout, done.stderr)


def test_stages_depend_on_exactly_the_package_modules_they_import() -> None:
    # __init__.py only holds the version string, so it is not a dependency worth rerunning for
    for name, stage in _stages().items():
        imported = {
            f"src/bertpipe/{module}.py" for module in import_closure(REPO / "stages" / f"{name}.py")
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


def test_metrics_are_the_headline_files_only() -> None:
    # `dvc exp show` shows a column per metric: test and validation metrics only. The cleaning
    # counts, the per-label report and the timings are committed outputs, and a folder (the
    # dvclive TSVs) under `metrics:` makes `dvc metrics show` fail to load it.
    declared = {path for stage in _stages().values() for path in _paths(stage.get("metrics", []))}
    assert declared == {"metrics.json", "dvclive/metrics.json"}
    outs = {path for stage in _stages().values() for path in _paths(stage.get("outs", []))}
    assert {
        "data/clean/report.json",
        "models/training_stats.json",
        "eval/per_label.json",
        "dvclive/plots",
    } <= outs


def _plot_files() -> set[str]:
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    files: set[str] = set()
    for entry in declared:
        (name, spec), *_ = entry.items()
        files.update(spec["y"] if isinstance(spec.get("y"), dict) else [name])
    return files


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "regression"])
def test_every_plot_file_is_written_for_every_task(task: str) -> None:
    # a declared plot whose file is missing makes `dvc plots show` warn; one with [] is left out
    labels = {
        "binary": np.array([0, 1, 1, 0]),
        "multiclass": np.array([0, 1, 2, 0]),
        "multilabel": np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]),
        "regression": np.array([0.5, 1.5, 2.5, 1.0]),
    }[task]
    scores = {
        "binary": np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4]]),
        "multiclass": np.eye(3)[[0, 1, 1, 0]] * 0.8 + 0.2 / 3,
        "multilabel": np.array(
            [[0.9, 0.2, 0.7], [0.1, 0.8, 0.3], [0.6, 0.4, 0.2], [0.2, 0.1, 0.9]]
        ),
        "regression": np.array([0.6, 1.4, 2.2, 1.1]),
    }[task]
    names = ["a", "b", "c"][: 1 if task == "regression" else 2 if task == "binary" else 3]
    evaluation = Evaluation({}, scores, predict_from_scores(scores, task), labels, np.arange(4))
    rows = plot_rows(labels, evaluation, task, names)
    eval_plots = {path for path in _plot_files() if path.startswith("eval/plots/")}
    assert {f"eval/plots/{name}" for name in rows} == eval_plots
    applicable = {name for name, values in rows.items() if values}
    curves = {
        "roc.json",
        "precision_recall.json",
        "precision_recall_by_class.json",
        "reliability.json",
    }
    assert (
        applicable
        == {
            "binary": {"confusion.json", *curves},
            "multiclass": {"confusion.json", *curves},
            "multilabel": curves,
            "regression": {"actual_vs_predicted.json"},
        }[task]
    )


def test_training_curves_read_files_that_every_task_logs() -> None:
    # train_loss and val_loss are logged whatever the task; the folder entry draws whatever
    # validation metrics the task has
    curves = {path for path in _plot_files() if not path.startswith("eval/plots/")}
    assert curves == {
        "dvclive/plots/metrics/train_loss.tsv",
        "dvclive/plots/metrics/val_loss.tsv",
        "dvclive/plots/metrics",
    }


def test_no_logged_value_shares_a_name_with_a_param(tmp_path: Path) -> None:
    # a shared name makes `dvc exp show` prefix both columns with their file names
    from bertpipe.params import Params
    from bertpipe.tracking import LiveLogger

    logger = LiveLogger(tmp_path / "dvclive")
    logger({"epoch": 1, "train_loss": 0.5, "lr": 1e-4, "val_loss": 0.4, "val_f1_macro": 0.7})
    logger.close()
    logged = json.loads((tmp_path / "dvclive" / "metrics.json").read_text())
    assert logged["learning_rate"] == 1e-4
    assert not set(logged) & set(Params.model_fields), logged
