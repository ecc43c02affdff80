"""Scores from logits, predictions from scores, and the metrics of each task (scikit-learn)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from bertpipe.metric_names import LOWER_IS_BETTER

# the `class` of the pooled curve in class_curve_rows
MICRO_AVERAGE = "micro-average"
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


# a threshold: one number, one per label (multilabel), or None (binary: argmax; multilabel: 0.5)
Threshold = float | np.ndarray | None
# the 15 equal-width confidence bins of the expected calibration error
ECE_BINS = 15


def predict_from_scores(scores: np.ndarray, task: str, threshold: Threshold = None) -> np.ndarray:
    """Regression: the value; multilabel: every label whose score reaches its threshold; binary
    with a threshold: the positive class (index 1) where its score reaches it; else argmax."""
    if task == "regression":
        return scores
    if task == "multilabel":
        return (scores >= (0.5 if threshold is None else threshold)).astype(np.int64)
    if task == "binary" and threshold is not None:
        return (scores[:, 1] >= threshold).astype(np.int64)
    return scores.argmax(axis=1)


def compute_metrics(
    targets: np.ndarray, scores: np.ndarray, task: str, threshold: Threshold = None
) -> dict[str, float]:
    """The task's metrics, in the order of METRICS_BY_TASK, as plain rounded floats."""
    predicted = predict_from_scores(scores, task, threshold)
    values: dict[str, float]
    if task == "regression":
        targets = np.asarray(targets, dtype=np.float64)
        # r2 and the correlations divide by the targets' spread: with one value they are
        # undefined (NaN), never 0, which would read as a measured "no better than the mean"
        undefined = len(targets) < 2 or np.std(targets) == 0
        flat = undefined or np.std(predicted) == 0  # a constant prediction correlates with nothing
        values = {
            "mse": skm.mean_squared_error(targets, predicted),
            "mae": skm.mean_absolute_error(targets, predicted),
            "r2": math.nan if undefined else skm.r2_score(targets, predicted),
            "pearson": math.nan
            if undefined
            else 0.0
            if flat
            else stats.pearsonr(targets, predicted)[0],
            "spearman": math.nan
            if undefined
            else 0.0
            if flat
            else stats.spearmanr(targets, predicted)[0],
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


def undefined_as_null(metrics: dict[str, float]) -> tuple[dict[str, float | None], list[str]]:
    """The metrics as metrics.json holds them: an undefined one (NaN) as null, which JSON can
    hold and the gate reads as no number; and the names of those."""
    undefined = [name for name, value in metrics.items() if not math.isfinite(value)]
    return {
        name: None if name in undefined else value for name, value in metrics.items()
    }, undefined


def _decision_confidence(
    targets: np.ndarray, scores: np.ndarray, task: str
) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of every decision the probabilities make on their own: the top
    class of each row (binary, multiclass); each (row, label) pair at 0.5 (multilabel), whose
    confidence is max(p, 1 - p)."""
    if task == "multilabel":
        probability = np.asarray(scores, dtype=np.float64).ravel()
        truth = np.asarray(targets).astype(np.int64).ravel()
        return np.maximum(probability, 1 - probability), (probability >= 0.5) == truth
    probability = np.asarray(scores, dtype=np.float64)
    return probability.max(axis=1), probability.argmax(axis=1) == np.asarray(targets)


def _confidence_bins(confidence: np.ndarray) -> np.ndarray:
    """The bin of each confidence: bin i holds (i / 15, (i + 1) / 15], bin 0 also holds 0."""
    return np.clip(np.ceil(confidence * ECE_BINS).astype(np.int64) - 1, 0, ECE_BINS - 1)


def reliability_rows(targets: np.ndarray, scores: np.ndarray, task: str) -> list[dict[str, Any]]:
    """One row per non-empty confidence bin: its mean confidence, accuracy and count."""
    confidence, correct = _decision_confidence(targets, scores, task)
    bins = _confidence_bins(confidence)
    rows = []
    for index in np.unique(bins):
        members = bins == index
        rows.append(
            {
                "bin": f"{index / ECE_BINS:.3f}-{(index + 1) / ECE_BINS:.3f}",
                "confidence": round(float(confidence[members].mean()), 5),
                "accuracy": round(float(correct[members].mean()), 5),
                "count": int(members.sum()),
            }
        )
    return rows


def calibration_metrics(targets: np.ndarray, scores: np.ndarray, task: str) -> dict[str, float]:
    """`ece`: the count-weighted mean |accuracy - confidence| over 15 equal-width bins of the
    decision confidence (_decision_confidence); `brier`: the mean over rows of
    sum_k (p_k - y_k)^2 (binary, multiclass), or the mean of (p - y)^2 over every (row, label)
    (multilabel)."""
    confidence, correct = _decision_confidence(targets, scores, task)
    bins = _confidence_bins(confidence)
    ece = sum(
        abs(correct[bins == index].mean() - confidence[bins == index].mean())
        * (bins == index).sum()
        for index in np.unique(bins)
    ) / len(confidence)
    probability = np.asarray(scores, dtype=np.float64)
    if task == "multilabel":
        brier = np.mean((probability - np.asarray(targets, dtype=np.float64)) ** 2)
    else:
        one_hot = np.eye(probability.shape[1])[np.asarray(targets, dtype=np.int64)]
        brier = np.mean(((probability - one_hot) ** 2).sum(axis=1))
    return {"ece": round(float(ece), DIGITS), "brier": round(float(brier), DIGITS)}


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


def class_curve_rows(
    targets: np.ndarray, scores: np.ndarray, task: str, label_names: Sequence[str]
) -> list[dict[str, Any]]:
    """Precision-recall points of every class (one-vs-rest) and of the micro-average, one
    `class` field per curve: what plot_templates/lines_by_class.json draws as one line each."""
    if task == "multilabel":
        truth = np.asarray(targets).astype(int)
    else:
        truth = np.eye(len(label_names), dtype=int)[np.asarray(targets, dtype=int)]
    curves = [(name, truth[:, i], scores[:, i]) for i, name in enumerate(label_names)]
    curves.append((MICRO_AVERAGE, truth.ravel(), np.asarray(scores).ravel()))
    rows: list[dict[str, Any]] = []
    for name, truth_column, score_column in curves:
        if truth_column.sum() == 0:  # no positives: recall is undefined
            continue
        precision, recall, _ = skm.precision_recall_curve(
            truth_column, score_column, drop_intermediate=True
        )
        rows += [
            {"class": name, "recall": round(float(r), 5), "precision": round(float(p), 5)}
            for r, p in zip(recall, precision, strict=True)
        ]
    return rows


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
