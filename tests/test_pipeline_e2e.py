"""The real `dvc repro` on the tiny BERT, then an experiment and a metrics diff between commits."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pipeline_helpers import commit, dvc, read_json, set_params, tiny_project

pytestmark = pytest.mark.slow

CLASSIFICATION_METRICS = {"accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"}


@pytest.fixture
def sample_project(project_copy: Path, small_sample_csv: Path, tiny_bert: Path) -> Path:
    return tiny_project(project_copy, small_sample_csv, tiny_bert, epochs=2, lr=1e-3)


def test_repro_then_experiment_then_metrics_diff(sample_project: Path) -> None:
    project = sample_project
    dvc(project, "repro")

    report = read_json(project / "data/clean/report.json")
    assert report["rows_in"] == 300 and report["rows_out"] <= 300
    assert report["rows_in"] - report["rows_out"] == sum(report["dropped"].values())

    splits = {
        n: pd.read_parquet(project / f"data/split/{n}.parquet") for n in ("train", "val", "test")
    }
    assert sum(len(frame) for frame in splits.values()) == report["rows_out"]
    for frame in splits.values():
        assert {"text", "label", "row_id", "note_id", "patient_id"} <= set(frame.columns)
    patients = [set(frame["patient_id"]) for frame in splits.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])

    labels = read_json(project / "data/tokens/labels.json")
    assert labels["label_names"] == sorted(splits["train"]["label"].unique())

    model_dir = project / "models/model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training_params.json"):
        assert (model_dir / name).is_file(), name
    config = read_json(model_dir / "config.json")
    assert list(config["id2label"].values()) == labels["label_names"]
    # train.attention_dropout: 0 (the default) turns off the attention dropout only
    assert config["attention_probs_dropout_prob"] == 0.0
    assert config["hidden_dropout_prob"] == 0.1
    trained = read_json(model_dir / "training_params.json")
    assert trained["lr"] == 1e-3 and trained["epochs"] == 2 and trained["label_names"]
    assert not list(model_dir.parent.glob(".model.tmp-*")), "a temporary folder was left behind"

    metrics = read_json(project / "metrics.json")
    assert set(metrics) >= CLASSIFICATION_METRICS
    assert all(0.0 <= metrics[name] <= 1.0 for name in CLASSIFICATION_METRICS)
    assert metrics["n_test"] == len(splits["test"])
    confusion = read_json(project / "eval/plots/confusion.json")
    assert len(confusion) == len(splits["test"])
    predictions = pd.read_csv(project / "eval/predictions.csv")
    assert len(predictions) == len(splits["test"])
    assert (predictions["gold"] == predictions["predicted"]).mean() == pytest.approx(
        metrics["accuracy"], abs=1e-6
    )
    live = read_json(project / "dvclive/metrics.json")
    assert "train_loss" in live and "val_f1_macro" in live

    # A second repro with nothing changed runs nothing.
    assert "didn't change" in dvc(project, "repro").stdout

    # Commit, change a param, repro, commit: metrics diff compares the two commits. An
    # evaluate-only param reruns evaluate alone (training again would test nothing more here).
    commit(project, "first run")
    set_params(project, **{"evaluate.batch_size": 8})
    assert "Stage 'train' didn't change" in dvc(project, "repro").stdout
    commit(project, "second run")
    diff = json.loads(dvc(project, "metrics", "diff", "--all", "--json", "HEAD~1", "HEAD").stdout)
    assert {"accuracy", "f1_macro"} <= set(diff["metrics.json"])
    assert "old" in diff["metrics.json"]["accuracy"] and "new" in diff["metrics.json"]["accuracy"]

    # `dvc exp run -S lr=2e-5`: DVC writes `lr: 2e-05`, and training must see the float 2e-5.
    dvc(project, "exp", "run", "-S", "lr=2e-5")
    assert "lr: 2e-05" in (project / "params.yaml").read_text()
    trained = read_json(model_dir / "training_params.json")
    assert isinstance(trained["lr"], float) and trained["lr"] == 2e-5
    experiments = json.loads(dvc(project, "exp", "show", "--json").stdout)
    runs = [
        exp
        for rev in experiments
        for exp in [rev, *[e for ex in (rev.get("experiments") or []) for e in ex.get("revs", [])]]
    ]
    lrs = [
        (run.get("data") or {}).get("params", {}).get("params.yaml", {}).get("data", {}).get("lr")
        for run in runs
    ]
    assert 2e-5 in lrs

    # A key no stage reads still reaches the schema: evaluate depends on every key, so a typo
    # added with `-S +key=...` (DVC's own hint for an unknown key) fails instead of "running".
    failed = dvc(project, "exp", "run", "-S", "+lr_rate=1e-4", check=False)
    assert failed.returncode != 0
    assert "error: params.yaml: unknown key 'lr_rate'" in failed.stderr
    assert "Stage 'train' didn't change" in failed.stdout + failed.stderr
