"""Every task, end to end: `dvc exp run -S task=...` alone on data that fits the task (every
task-dependent param at its default) with the tiny BERT, then `bertpipe predict` on the trained
model; DVC loads every metrics and plots file without a warning."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import KEYWORDS, keyword_notes
from pipeline_helpers import dvc, env, init_repo, read_json, set_params

pytestmark = pytest.mark.slow

CLASSES = sorted(KEYWORDS)


def task_data(task: str) -> pd.DataFrame:
    notes = keyword_notes(rows=400, seed=1, noise=0.0)
    if task == "binary":
        notes["label"] = notes["label"].where(notes["label"] == "cardiology", "other")
    elif task == "multilabel":
        # a second keyword of another class in half the notes: both labels apply
        extra = keyword_notes(rows=400, seed=2, noise=0.0)
        second = [
            other if (i % 2 and other != first) else None
            for i, (first, other) in enumerate(zip(notes["label"], extra["label"], strict=True))
        ]
        notes["text"] = [
            f"{text} {KEYWORDS[label][0]}" if label else text
            for text, label in zip(notes["text"], second, strict=True)
        ]
        notes["label"] = [
            "|".join(sorted({first, label})) if label else first
            for first, label in zip(notes["label"], second, strict=True)
        ]
        notes.loc[5, "label"] = ""  # a row with no label: dropped and counted
    elif task == "regression":
        notes["label"] = [float(CLASSES.index(label)) + 0.5 for label in notes["label"]]
        notes.loc[3, "label"] = 1.25
    return notes


EXPECTED = {
    "binary": {"accuracy", "f1_macro", "roc_auc", "average_precision"},
    "multilabel": {"f1_micro", "f1_macro", "subset_accuracy", "hamming_loss"},
    "regression": {"mse", "mae", "r2", "pearson", "spearman"},
}


# what `train.early_stopping_metric: auto` resolves to
AUTO_METRIC = {"binary": "f1_macro", "multilabel": "f1_macro", "regression": "mse"}


@pytest.mark.parametrize("task", ["binary", "multilabel", "regression"])
def test_task_end_to_end(task: str, project_copy: Path, tiny_bert: Path) -> None:
    # the task's data where params.yaml's data.path points; only the model and the run's length
    # change, for the tiny BERT: the task is switched by -S alone
    data = project_copy / "data" / "raw" / "notes.csv"
    task_data(task).to_csv(data, index=False)
    set_params(project_copy, model=str(tiny_bert), epochs=6, lr=3e-3, max_length=64)
    init_repo(project_copy)
    dvc(project_copy, "exp", "run", "-S", f"task={task}")

    trained = read_json(project_copy / "models/model/training_params.json")
    assert trained["task"] == task
    assert trained["train"]["early_stopping_metric"] == AUTO_METRIC[task]
    shown = dvc(project_copy, "metrics", "show")
    assert "failed" not in shown.stdout + shown.stderr, shown.stdout + shown.stderr
    plots = dvc(project_copy, "plots", "show", "--json")
    assert "failed" not in plots.stderr, plots.stderr
    assert json.loads(plots.stdout).get("errors") is None, plots.stdout[:2000]

    metrics = read_json(project_copy / "metrics.json")
    assert EXPECTED[task] <= set(metrics), metrics
    config = read_json(project_copy / "models/model/config.json")
    if task == "regression":
        assert len(config["id2label"]) == 1 and config["problem_type"] == "regression"
        assert metrics["r2"] > 0.3, metrics
        scatter = read_json(project_copy / "eval/plots/actual_vs_predicted.json")
        assert len(scatter) == metrics["n_test"] and set(scatter[0]) == {"actual", "predicted"}
        assert read_json(project_copy / "eval/plots/roc.json") == []
    else:
        names = read_json(project_copy / "data/tokens/labels.json")["label_names"]
        assert names == sorted(names)
        assert list(config["id2label"].values()) == names
        per_label = read_json(project_copy / "eval/per_label.json")
        assert set(per_label) == set(names)
    if task == "binary":
        assert config["problem_type"] == "single_label_classification"
        assert metrics["roc_auc"] > 0.8, metrics
        assert (project_copy / "eval/plots/roc.json").is_file()
    if task == "multilabel":
        assert config["problem_type"] == "multi_label_classification"
        assert read_json(project_copy / "data/clean/report.json")["dropped"]["missing_label"] == 1
        assert 0 <= metrics["hamming_loss"] <= 1

    card = (project_copy / "models/model/README.md").read_text()
    assert f"**{task}**" in card
    assert hashlib.sha256(data.read_bytes()).hexdigest() in card

    predict = subprocess.run(
        [
            str(Path(sys.executable).parent / "bertpipe"),
            "predict",
            "--model",
            "models/model",
            "chest pain and ecg changes",
            "cough and wheezing",
        ],
        cwd=project_copy,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert predict.returncode == 0, predict.stderr
    lines = [json.loads(line) for line in predict.stdout.splitlines()]
    assert len(lines) == 2
    for line in lines:
        if task == "multilabel":
            assert isinstance(line["label"], list)
            # each label at its own threshold, fitted on validation and saved with the model
            thresholds = read_json(project_copy / "models/model/decision.json")["thresholds"]
            decided = dict(zip(names, thresholds, strict=True))
            assert all(line["scores"][name] >= decided[name] - 1e-6 for name in line["label"])
        elif task == "regression":
            assert isinstance(line["label"], float) and line["scores"] == {}
        else:
            assert line["label"] in line["scores"]
