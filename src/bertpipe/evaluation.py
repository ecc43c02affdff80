"""Scoring a trained model on a tokenized split: metrics and per-example predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from bertpipe.inference import default_device, predict_logits, resolve_precision
from bertpipe.metrics import compute_metrics, predict_from_scores, scores_from_logits
from bertpipe.tokens import TokenizedSplit


@dataclass
class Evaluation:
    metrics: dict[str, float]
    scores: np.ndarray
    predicted: np.ndarray


def evaluate_model(
    model: torch.nn.Module,
    split: TokenizedSplit,
    task: str,
    pad_token_id: int,
    batch_size: int = 64,
    threshold: float = 0.5,
    precision: str = "auto",
) -> Evaluation:
    device = default_device()
    model.to(device)
    logits = predict_logits(
        model, split, batch_size, pad_token_id, resolve_precision(precision, device), device
    )
    scores = scores_from_logits(logits, task)
    return Evaluation(
        metrics=compute_metrics(split.labels, scores, task, threshold),
        scores=scores,
        predicted=predict_from_scores(scores, task, threshold),
    )


def _names(row: np.ndarray, label_names: Sequence[str]) -> str:
    return "|".join(label_names[i] for i in np.flatnonzero(row))


def predictions_frame(
    split: TokenizedSplit, evaluation: Evaluation, task: str, label_names: Sequence[str]
) -> pd.DataFrame:
    """One row per test example: row_id, gold, predicted, and a score column per label."""
    frame = pd.DataFrame({"row_id": split.row_ids})
    if task == "regression":
        frame["gold"] = split.labels.astype(np.float64)
        frame["predicted"] = evaluation.predicted.astype(np.float64)
        return frame
    if task == "multilabel":
        frame["gold"] = [_names(row, label_names) for row in split.labels]
        frame["predicted"] = [_names(row, label_names) for row in evaluation.predicted]
    else:
        frame["gold"] = [label_names[i] for i in split.labels]
        frame["predicted"] = [label_names[i] for i in evaluation.predicted]
    for column, name in enumerate(label_names):
        frame[f"score_{name}"] = np.round(evaluation.scores[:, column], 6)
    return frame
