"""Every task, end to end, in one pipeline run each: `dvc exp run -S task=...` alone on long notes
that fit the task (every task-dependent param at its default) with the tiny BERT, head_tail
truncation and windows. Then, on that one run:
- DVC loads every metrics and plots file without a warning;
- windows are pooled into one prediction per text, in evaluate and in `bertpipe predict` alike;
- the decision fitted on validation (`train.threshold: auto`, temperature scaling) is saved with
  the model and used by evaluate, `bertpipe predict`, the model card and the gate."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import KEYWORDS, keyword_notes
from pipeline_helpers import commit, dvc, env, read_json, run, tiny_project
from test_long_notes_e2e import predict_texts, texts_of_test_rows, with_filler_in_front

from bertpipe.metric_names import reported_metrics
from bertpipe.tokens import read_split

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


# the task's own quality metric, and a bar that right truncation misses: with every keyword out
# of reach a model can only give each text the same answer (multi-label: at best every label
# for every text, macro-F1 0.51 at this set's label frequencies, about a third each)
TASK_BAR = {"binary": ("f1_macro", 0.8), "multilabel": ("f1_macro", 0.6), "regression": ("r2", 0.5)}
# how each task meets its windows. Multi-label trains on head_tail (which sees both keywords)
# rather than on every window: a window without a keyword would learn its text's labels from
# filler, and with 4 labels and 400 notes that noise kept macro-F1 near the constant's 0.51
# (0.60 with mean pooling, 0.61 with max, measured). A label is there when any window shows it,
# so it pools by the maximum.
WINDOWS = {
    "binary": {"windows.train": True, "windows.pooling": "mean"},
    "multilabel": {"windows.train": False, "windows.pooling": "max"},
    "regression": {"windows.train": True, "windows.pooling": "mean"},
}
TEXTS = ["chest pain and ecg changes", "cough and wheezing", "headache and nausea"]


@pytest.mark.parametrize("task", ["binary", "multilabel", "regression"])
def test_task_end_to_end(task: str, project_copy: Path, tiny_bert: Path, tmp_path: Path) -> None:
    # the task is switched by -S alone; the run is shaped for the tiny BERT and long notes
    data = tmp_path / "long.csv"
    with_filler_in_front(task_data(task)).to_csv(data, index=False)
    project = tiny_project(
        project_copy, data, tiny_bert, max_length=24, epochs=8, lr=3e-3,
        truncation="head_tail",
        **{"tokenize.head_tokens": 4, "windows.stride": 11, **WINDOWS[task]},
    )  # fmt: skip
    dvc(project, "exp", "run", "-S", f"task={task}")

    model = project / "models" / "model"
    trained = read_json(model / "training_params.json")
    assert trained["task"] == task
    assert trained["train"]["early_stopping_metric"] == AUTO_METRIC[task]
    shown = dvc(project, "metrics", "show")
    assert "failed" not in shown.stdout + shown.stderr, shown.stdout + shown.stderr
    plots = dvc(project, "plots", "show", "--json")
    assert "failed" not in plots.stderr, plots.stderr
    listed = json.loads(plots.stdout)
    assert listed.get("errors") is None, plots.stdout[:2000]

    metrics = read_json(project / "metrics.json")
    assert EXPECTED[task] <= set(metrics), metrics
    # what gate.tolerance may name (bertpipe.params checks it against this)
    assert set(metrics) == {*reported_metrics(task), "n_test"}, metrics
    metric, bar = TASK_BAR[task]
    assert metrics[metric] >= bar, metrics
    config = read_json(model / "config.json")
    card = (model / "README.md").read_text()
    assert f"**{task}**" in card
    assert hashlib.sha256((project / "data" / "notes.csv").read_bytes()).hexdigest() in card

    # windows: every test text scored once, its windows pooled, in evaluate and in predict
    test = read_split(project / "data/tokens/test")
    assert test.text_index is not None and len(test) > test.num_texts
    assert metrics["n_test"] == test.num_texts
    train = read_split(project / "data/tokens/train")
    if WINDOWS[task]["windows.train"]:  # each window learns its text's label
        assert train.text_index is not None and len(train) > train.num_texts
        stats = read_json(project / "models/training_stats.json")
        assert stats["train_samples"] % len(train) == 0  # whole epochs over every window
    else:
        assert train.text_index is None
    predictions = pd.read_csv(project / "eval/predictions.csv", keep_default_na=False)
    assert len(predictions) == test.num_texts and predictions["row_id"].is_unique
    rows = predict_texts(project, texts_of_test_rows(project, predictions["row_id"]), tmp_path)
    if task == "regression":
        predicted = [row["predicted_label"] for row in rows]
        assert predicted == pytest.approx(predictions["predicted"].astype(float).tolist(), abs=1e-3)
    else:
        assert [row["predicted_label"] or "" for row in rows] == predictions["predicted"].tolist()

    bertpipe = str(Path(sys.executable).parent / "bertpipe")
    predict = subprocess.run(
        [bertpipe, "predict", "--model", "models/model", *TEXTS],
        cwd=project, env=env(), capture_output=True, text=True,
    )  # fmt: skip
    assert predict.returncode == 0, predict.stderr
    lines = [json.loads(line) for line in predict.stdout.splitlines()]
    assert len(lines) == len(TEXTS)

    if task == "regression":
        assert len(config["id2label"]) == 1 and config["problem_type"] == "regression"
        scatter = read_json(project / "eval/plots/actual_vs_predicted.json")
        assert len(scatter) == metrics["n_test"] and set(scatter[0]) == {"actual", "predicted"}
        assert read_json(project / "eval/plots/roc.json") == []
        for line in lines:
            assert isinstance(line["label"], float) and line["scores"] == {}
        return

    names = read_json(project / "data/tokens/labels.json")["label_names"]
    assert names == sorted(names)
    assert list(config["id2label"].values()) == names
    assert set(read_json(project / "eval/per_label.json")) == set(names)
    if task == "binary":
        assert config["problem_type"] == "single_label_classification"
        assert metrics["roc_auc"] > 0.8, metrics
        assert (project / "eval/plots/roc.json").is_file()
    else:
        assert config["problem_type"] == "multi_label_classification"
        assert read_json(project / "data/clean/report.json")["dropped"]["missing_label"] == 1
        assert 0 <= metrics["hamming_loss"] <= 1

    # the decision, fitted on validation, travels with the model
    assert "threshold: auto" in (project / "params.yaml").read_text()
    decision = read_json(model / "decision.json")
    per_label = len(names) if task == "multilabel" else 1
    assert decision["temperature_in_weights"] is True
    assert len(decision["temperatures"]) == len(decision["thresholds"]) == per_label
    assert config["bertpipe_decision"] == decision
    if task == "multilabel":
        # class_weights auto is pos_weight for multilabel: its shift of each label's logits,
        # log(negatives / positives) over the training rows, is undone before the temperature
        labels = train.labels
        positives = labels.sum(axis=0)
        expected = np.log((len(labels) - positives) / positives)
        assert decision["shifts"] == pytest.approx(expected.tolist(), abs=1e-5)
        assert any(abs(shift) > 0.1 for shift in decision["shifts"])
    else:
        assert decision["shifts"] == []
    assert "## Decision (fitted on the validation split)" in card
    assert str(decision["thresholds"][0]) in card
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["brier"] <= 2, metrics
    assert "ece" in shown.stdout
    for name in ("reliability", "precision_recall_by_class"):
        assert listed["data"].get(name), sorted(listed["data"])
    curves = read_json(project / "eval/plots/precision_recall_by_class.json")
    assert {row["class"] for row in curves} == {*names, "micro-average"}

    # the predictions file records the thresholds its `predicted` column was decided by
    if task == "multilabel":
        recorded = [predictions[f"threshold_{name}"].iloc[0] for name in names]
    else:
        recorded = [predictions["threshold"].iloc[0]]
    assert recorded == pytest.approx(decision["thresholds"])

    # `bertpipe predict` decides by the saved thresholds, on calibrated scores
    for line in lines:
        scores = line["scores"]
        if task == "multilabel":
            chosen = [
                name
                for name, threshold in zip(names, decision["thresholds"], strict=True)
                if scores[name] >= round(threshold, 6)
            ]
            assert line["label"] == chosen, (line, decision)
        else:
            positive = scores[names[1]] >= round(decision["thresholds"][0], 6)
            assert line["label"] == names[int(positive)], (line, decision)

    # the gate re-scores both sides from their predictions with their own recorded thresholds:
    # the run against itself passes (a retrained rerun is test_gate_e2e's)
    commit(project, "baseline run")
    result = run(project, bertpipe, "check-metrics", "--baseline", "HEAD", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout + result.stderr
