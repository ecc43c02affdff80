"""The names of each task's metrics, and which way each is better: what params.py checks
gate.tolerance against, apart from the scikit-learn code that computes them (metrics.py)."""

from __future__ import annotations

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
LOWER_IS_BETTER = frozenset({"mse", "mae", "hamming_loss", "loss", "ece", "brier"})
# what calibration_metrics adds for every classification task
CALIBRATION_METRICS = ("ece", "brier")


def reported_metrics(task: str) -> tuple[str, ...]:
    """Every metric the evaluate stage writes to metrics.json for `task` (n_test aside)."""
    calibration = () if task == "regression" else CALIBRATION_METRICS
    return METRICS_BY_TASK[task] + calibration
