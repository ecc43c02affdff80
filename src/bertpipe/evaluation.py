"""Scoring a trained model on a tokenized split: its metrics, scores and predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
