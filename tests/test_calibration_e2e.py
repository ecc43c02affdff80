"""`train.threshold: auto` and temperature scaling end to end: `dvc repro` on the tiny BERT saves
the decision with the model; evaluate, `bertpipe predict` and the gate use it; metrics.json has
ece and brier; DVC draws the reliability diagram and the per-class curves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import commit, dvc, env, init_repo, read_json, run, set_params
from test_tasks_e2e import task_data

from bertpipe.tokens import read_split

pytestmark = pytest.mark.slow

TEXTS = ["chest pain and ecg changes", "cough and wheezing", "headache and nausea"]


@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_the_fitted_decision_is_used_everywhere(
    task: str, project_copy: Path, tiny_bert: Path
) -> None:
    task_data(task).to_csv(project_copy / "data" / "raw" / "notes.csv", index=False)
    set_params(project_copy, model=str(tiny_bert), epochs=6, lr=3e-3, max_length=64, task=task)
    init_repo(project_copy)
    dvc(project_copy, "repro")

    params = (project_copy / "params.yaml").read_text()
    assert "threshold: auto" in params
    model = project_copy / "models" / "model"
    decision = read_json(model / "decision.json")
    names = read_json(project_copy / "data/tokens/labels.json")["label_names"]
    assert decision["temperature_in_weights"] is True
    assert len(decision["temperatures"]) == (len(names) if task == "multilabel" else 1)
    assert len(decision["thresholds"]) == (len(names) if task == "multilabel" else 1)
    assert read_json(model / "config.json")["bertpipe_decision"] == decision
    if task == "multilabel":
        # class_weights auto is pos_weight for multilabel: its shift of each label's logits,
        # log(negatives / positives) over the training rows, is undone before the temperature
        labels = read_split(project_copy / "data" / "tokens" / "train").labels
        positives = labels.sum(axis=0)
        expected = np.log((len(labels) - positives) / positives)
        assert decision["shifts"] == pytest.approx(expected.tolist(), abs=1e-5)
        assert any(abs(shift) > 0.1 for shift in decision["shifts"])
    else:
        assert decision["shifts"] == []
    card = (model / "README.md").read_text()
    assert "## Decision (fitted on the validation split)" in card
    assert str(decision["thresholds"][0]) in card

    metrics = read_json(project_copy / "metrics.json")
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["brier"] <= 2, metrics
    shown = dvc(project_copy, "metrics", "show")
    assert "failed" not in shown.stdout + shown.stderr and "ece" in shown.stdout

    # the predictions file records the thresholds its `predicted` column was decided by
    predictions = pd.read_csv(project_copy / "eval/predictions.csv", keep_default_na=False)
    if task == "multilabel":
        recorded = [predictions[f"threshold_{name}"].iloc[0] for name in names]
    else:
        recorded = [predictions["threshold"].iloc[0]]
    assert recorded == pytest.approx(decision["thresholds"])

    # `bertpipe predict` decides by the saved thresholds, on calibrated scores
    bertpipe = str(Path(sys.executable).parent / "bertpipe")
    predict = subprocess.run(
        [bertpipe, "predict", "--model", "models/model", *TEXTS],
        cwd=project_copy,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert predict.returncode == 0, predict.stderr
    for line in map(json.loads, predict.stdout.splitlines()):
        scores = line["scores"]
        if task == "multilabel":
            expected = [
                name
                for name, threshold in zip(names, decision["thresholds"], strict=True)
                if scores[name] >= round(threshold, 6)
            ]
            assert line["label"] == expected, (line, decision)
        else:
            positive = scores[names[1]] >= round(decision["thresholds"][0], 6)
            assert line["label"] == names[int(positive)], (line, decision)

    # DVC draws the new plots from the files evaluate wrote
    plots = dvc(project_copy, "plots", "show", "--json")
    assert "failed" not in plots.stderr, plots.stderr
    listed = json.loads(plots.stdout)
    assert listed.get("errors") is None, plots.stdout[:2000]
    for name in ("reliability", "precision_recall_by_class"):
        assert listed["data"].get(name), sorted(listed["data"])
    curves = read_json(project_copy / "eval/plots/precision_recall_by_class.json")
    assert {row["class"] for row in curves} == {*names, "micro-average"}

    # the gate re-scores both sides with their own recorded thresholds: a rerun passes
    commit(project_copy, "baseline run")
    dvc(project_copy, "repro", "-f")
    result = run(project_copy, bertpipe, "check-metrics", "--baseline", "HEAD", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout + result.stderr
