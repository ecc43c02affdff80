"""Scoring a trained model on a tokenized split: its metrics, scores and predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bertpipe.decision import Decision
from bertpipe.inference import default_device, inference_precision, predict_logits
from bertpipe.metrics import (
    calibration_metrics,
    class_curve_rows,
    compute_metrics,
    confusion_rows,
    curve_rows,
    reliability_rows,
)
from bertpipe.tokens import TokenizedSplit


@dataclass
class Evaluation:
    """One entry per text, in split order (a text's windows pooled into one)."""

    metrics: dict[str, float]
    scores: np.ndarray
    predicted: np.ndarray
    targets: np.ndarray
    row_ids: np.ndarray


def evaluate_model(
    model: torch.nn.Module,
    split: TokenizedSplit,
    task: str,
    pad_token_id: int,
    batch_size: int = 64,
    decision: Decision | None = None,
    precision: str = "auto",
    progress: bool = False,
    pooling: str = "mean",
    device: torch.device | str | None = None,
) -> Evaluation:
    """Metrics, scores and predictions of `model` on `split`, per text (windows pooled by
    `pooling`), under the model's saved `decision` (None: uncalibrated, argmax, multilabel at
    0.5); classification metrics gain `ece` and `brier`. `progress` reports the batches on
    stderr (bertpipe.progress: a bar on a terminal, a line now and then in a log). `device`:
    where the model runs (None: default_device(); a benchmark pins every contestant to one)."""
    decision = decision or Decision(task)
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    logits = predict_logits(
        model,
        split,
        batch_size,
        pad_token_id,
        inference_precision(precision, device),
        device,
        progress=progress,
        pooling=pooling,
    )
    scores = decision.scores(logits)
    targets = split.text_labels
    metrics = compute_metrics(targets, scores, task, decision.threshold)
    if task != "regression":
        metrics.update(calibration_metrics(targets, scores, task))
    return Evaluation(
        metrics=metrics,
        scores=scores,
        predicted=decision.predict(scores),
        targets=targets,
        row_ids=split.text_row_ids,
    )


def plot_rows(
    targets: np.ndarray, evaluation: Evaluation, task: str, label_names: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The data of every plot that dvc.yaml declares, by file name. A plot the task has no data
    for gets [] (the confusion matrix for multilabel, the curves for regression, the scatter
    for classification): `dvc plots show` leaves an empty plot out without a warning, where a
    missing file would fail to load."""
    rows: dict[str, list[dict[str, Any]]] = {
        "confusion.json": [],
        "roc.json": [],
        "precision_recall.json": [],
        "precision_recall_by_class.json": [],
        "reliability.json": [],
        "actual_vs_predicted.json": [],
    }
    if task in ("binary", "multiclass"):
        rows["confusion.json"] = confusion_rows(targets, evaluation.predicted, label_names)
    if task == "regression":
        rows["actual_vs_predicted.json"] = [
            {"actual": round(float(actual), 5), "predicted": round(float(guess), 5)}
            for actual, guess in zip(targets, evaluation.predicted, strict=True)
        ]
    else:
        rows["roc.json"], rows["precision_recall.json"] = curve_rows(
            targets, evaluation.scores, task
        )
        rows["precision_recall_by_class.json"] = class_curve_rows(
            targets, evaluation.scores, task, label_names
        )
        rows["reliability.json"] = reliability_rows(targets, evaluation.scores, task)
    return rows
