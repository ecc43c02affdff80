"""Scores from logits, predictions from scores, and the metrics of each task (scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn import metrics as skm

METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "multiclass": ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"),
    "binary": (
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "precision_macro",
        "recall_macro",
        "roc_auc",
        "average_precision",
    ),
    "multilabel": (
        "f1_micro",
        "f1_macro",
        "f1_weighted",
        "precision_macro",
        "recall_macro",
        "subset_accuracy",
        "hamming_loss",
    ),
    "regression": ("mse", "mae", "r2", "pearson", "spearman"),
}
LOWER_IS_BETTER = frozenset({"mse", "mae", "hamming_loss", "loss"})
# metrics.json rounds so that the file is stable text and diffs stay readable
DIGITS = 6


def scores_from_logits(logits: np.ndarray, task: str) -> np.ndarray:
    """Softmax probabilities; sigmoid per label; the raw value for regression."""
    logits = np.asarray(logits, dtype=np.float64)
    if task == "regression":
        return logits.reshape(-1)
    if task == "multilabel":
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def predict_from_scores(scores: np.ndarray, task: str, threshold: float = 0.5) -> np.ndarray:
    if task == "regression":
        return scores
    if task == "multilabel":
        return (scores >= threshold).astype(np.int64)
    return scores.argmax(axis=1)


def compute_metrics(
    targets: np.ndarray, scores: np.ndarray, task: str, threshold: float = 0.5
) -> dict[str, float]:
    """The task's metrics, in the order of METRICS_BY_TASK, as plain rounded floats."""
    predicted = predict_from_scores(scores, task, threshold)
    values: dict[str, float]
    if task == "regression":
        targets = np.asarray(targets, dtype=np.float64)
        constant = np.std(targets) == 0 or np.std(predicted) == 0
        values = {
            "mse": skm.mean_squared_error(targets, predicted),
            "mae": skm.mean_absolute_error(targets, predicted),
            "r2": skm.r2_score(targets, predicted) if len(targets) > 1 else 0.0,
            "pearson": 0.0 if constant else stats.pearsonr(targets, predicted)[0],
            "spearman": 0.0 if constant else stats.spearmanr(targets, predicted)[0],
        }
    elif task == "multilabel":
        targets = np.asarray(targets).astype(np.int64)
        values = {
            "f1_micro": skm.f1_score(targets, predicted, average="micro", zero_division=0),
            "f1_macro": skm.f1_score(targets, predicted, average="macro", zero_division=0),
            "f1_weighted": skm.f1_score(targets, predicted, average="weighted", zero_division=0),
            "precision_macro": skm.precision_score(
                targets, predicted, average="macro", zero_division=0
            ),
            "recall_macro": skm.recall_score(targets, predicted, average="macro", zero_division=0),
            "subset_accuracy": skm.accuracy_score(targets, predicted),
            "hamming_loss": skm.hamming_loss(targets, predicted),
        }
    else:
        # macro averages over the classes present in the gold labels or the predictions
        values = {
            "accuracy": skm.accuracy_score(targets, predicted),
            "f1_macro": skm.f1_score(targets, predicted, average="macro", zero_division=0),
            "f1_weighted": skm.f1_score(targets, predicted, average="weighted", zero_division=0),
            "precision_macro": skm.precision_score(
                targets, predicted, average="macro", zero_division=0
            ),
            "recall_macro": skm.recall_score(targets, predicted, average="macro", zero_division=0),
        }
        if task == "binary":
            both = len(np.unique(targets)) == 2
            values["roc_auc"] = skm.roc_auc_score(targets, scores[:, 1]) if both else 0.0
            values["average_precision"] = (
                skm.average_precision_score(targets, scores[:, 1]) if both else 0.0
            )
    return {name: round(float(value), DIGITS) for name, value in values.items()}


def confusion_rows(
    targets: np.ndarray, predicted: np.ndarray, label_names: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per example, the form DVC's confusion template reads."""
    return [
        {"actual": label_names[int(gold)], "predicted": label_names[int(guess)]}
        for gold, guess in zip(targets, predicted, strict=True)
    ]


def curve_rows(
    targets: np.ndarray, scores: np.ndarray, task: str
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """ROC and precision-recall points: of the positive class for binary, micro-averaged
    (every class one-vs-rest, pooled) for multiclass and multilabel."""
    if task == "binary":
        truth, score = (np.asarray(targets) == 1).astype(int), scores[:, 1]
    elif task == "multilabel":
        truth, score = np.asarray(targets).astype(int).ravel(), scores.ravel()
    else:
        one_hot = np.zeros_like(scores, dtype=int)
        one_hot[np.arange(len(targets)), np.asarray(targets, dtype=int)] = 1
        truth, score = one_hot.ravel(), scores.ravel()
    fpr, tpr, _ = skm.roc_curve(truth, score, drop_intermediate=True)
    precision, recall, _ = skm.precision_recall_curve(truth, score, drop_intermediate=True)
    roc = [
        {"fpr": round(float(f), 5), "tpr": round(float(t), 5)}
        for f, t in zip(fpr, tpr, strict=True)
    ]
    pr = [
        {"recall": round(float(r), 5), "precision": round(float(p), 5)}
        for r, p in zip(recall, precision, strict=True)
    ]
    return roc, pr


def per_label_report(
    targets: np.ndarray, predicted: np.ndarray, label_names: Sequence[str], task: str
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every label (one-vs-rest for single-label tasks)."""
    if task == "multilabel":
        truth, guess = np.asarray(targets).astype(int), np.asarray(predicted).astype(int)
    else:
        identity = np.eye(len(label_names), dtype=int)
        truth, guess = identity[np.asarray(targets, int)], identity[np.asarray(predicted, int)]
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth, guess, average=None, zero_division=0
    )
    return {
        name: {
            "precision": round(float(precision[i]), DIGITS),
            "recall": round(float(recall[i]), DIGITS),
            "f1": round(float(f1[i]), DIGITS),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }


def is_better(candidate: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return candidate < best if metric in LOWER_IS_BETTER else candidate > best
