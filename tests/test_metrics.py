"""Scores, predictions and metrics of each task, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bertpipe.metric_names import METRICS_BY_TASK
from bertpipe.metrics import (
    compute_metrics,
    confusion_rows,
    is_better,
    predict_from_scores,
    scores_from_logits,
    undefined_as_null,
)


def one_hot_scores(predicted: list[int], num_classes: int) -> np.ndarray:
    """Scores whose argmax is `predicted` (0.7 on the chosen class, the rest shared)."""
    scores = np.full((len(predicted), num_classes), 0.3 / (num_classes - 1))
    scores[np.arange(len(predicted)), predicted] = 0.7
    return scores


def assert_metrics(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert list(actual) == list(expected)
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=1e-6), name
        assert type(actual[name]) is float


# --- scores and predictions ----------------------------------------------------------------------


def test_softmax_rows_sum_to_one_and_match_hand_values() -> None:
    logits = np.array([[0.0, math.log(3.0)], [2.0, 2.0], [1000.0, 0.0]], dtype=np.float32)
    scores = scores_from_logits(logits, "multiclass")
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)
    np.testing.assert_allclose(scores, [[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]], atol=1e-7)
    assert np.isfinite(scores).all()  # no overflow on large logits


def test_softmax_random_rows_sum_to_one() -> None:
    logits = np.random.default_rng(0).normal(scale=10, size=(50, 7))
    scores = scores_from_logits(logits, "binary")
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)
    assert (scores >= 0).all()
    assert (scores.argmax(axis=1) == logits.argmax(axis=1)).all()


def test_sigmoid_for_multilabel() -> None:
    scores = scores_from_logits(np.array([[0.0, math.log(3.0), -math.log(3.0)]]), "multilabel")
    np.testing.assert_allclose(scores, [[0.5, 0.75, 0.25]])


def test_regression_scores_are_the_raw_values() -> None:
    scores = scores_from_logits(np.array([[1.5], [-2.0]]), "regression")
    assert scores.shape == (2,)
    assert scores.tolist() == [1.5, -2.0]


def test_predict_from_scores() -> None:
    assert predict_from_scores(np.array([[0.2, 0.8], [0.6, 0.4]]), "binary").tolist() == [1, 0]
    multi = np.array([[0.5, 0.49, 0.9]])
    assert predict_from_scores(multi, "multilabel").tolist() == [[1, 0, 1]]
    assert predict_from_scores(multi, "multilabel", threshold=0.8).tolist() == [[0, 0, 1]]
    assert predict_from_scores(np.array([0.3]), "regression").tolist() == [0.3]


# --- compute_metrics -----------------------------------------------------------------------------


def test_multiclass_metrics() -> None:
    targets = np.array([0, 0, 0, 1, 1, 2])
    scores = one_hot_scores([0, 0, 1, 1, 2, 2], 3)
    # per class (P, R, F1): 0 -> (1, 2/3, 0.8); 1 -> (1/2, 1/2, 1/2); 2 -> (1/2, 1, 2/3)
    assert_metrics(
        compute_metrics(targets, scores, "multiclass"),
        {
            "accuracy": 4 / 6,
            "f1_macro": (0.8 + 0.5 + 2 / 3) / 3,
            "f1_weighted": (3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6,
            "precision_macro": (1 + 0.5 + 0.5) / 3,
            "recall_macro": (2 / 3 + 0.5 + 1) / 3,
        },
    )


def test_multiclass_class_never_predicted_counts_in_the_macro_average() -> None:
    targets = np.array([0, 1, 2, 2])
    scores = one_hot_scores([0, 1, 1, 1], 3)  # class 2 is never predicted
    # F1: class 0 -> 1; class 1 -> 2*(1/3*1)/(1/3+1) = 1/2; class 2 -> 0
    metrics = compute_metrics(targets, scores, "multiclass")
    assert metrics["f1_macro"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-6)
    assert metrics["recall_macro"] == pytest.approx((1 + 1 + 0) / 3, abs=1e-6)


def test_perfect_predictions_with_a_class_absent_from_the_split() -> None:
    targets = np.array([0, 1, 0, 1])
    metrics = compute_metrics(targets, one_hot_scores([0, 1, 0, 1], 3), "multiclass")
    assert metrics["accuracy"] == 1.0
    assert metrics["f1_macro"] == 1.0
    assert metrics["precision_macro"] == 1.0
    assert metrics["recall_macro"] == 1.0


def test_binary_metrics() -> None:
    targets = np.array([0, 0, 1, 1])
    positive = np.array([0.1, 0.6, 0.4, 0.8])
    scores = np.stack([1 - positive, positive], axis=1)
    # predicted [0, 1, 0, 1]: each class P = R = F1 = 1/2
    # AUC: 3 of the 4 (positive, negative) pairs are ordered right
    # AP: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2
    assert_metrics(
        compute_metrics(targets, scores, "binary"),
        {
            "accuracy": 0.5,
            "f1_macro": 0.5,
            "f1_weighted": 0.5,
            "precision_macro": 0.5,
            "recall_macro": 0.5,
            "roc_auc": 0.75,
            "average_precision": (1 + 2 / 3) / 2,
        },
    )


def test_binary_with_one_class_in_targets() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    metrics = compute_metrics(np.array([0, 0]), scores, "binary")
    assert metrics["accuracy"] == 0.5
    assert metrics["roc_auc"] == 0.0
    assert metrics["average_precision"] == 0.0


def test_multilabel_metrics() -> None:
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
    scores = np.array([[0.9, 0.1, 0.4], [0.2, 0.5, 0.7], [0.6, 0.8, 0.3]])
    # predicted [[1,0,0],[0,1,1],[1,1,0]]: labels 0 and 1 perfect, label 2 has 1 FP and 1 FN
    # micro: TP 4, FP 1, FN 1 -> 0.8; weighted by support (2, 2, 1): (2 + 2 + 0) / 5
    assert_metrics(
        compute_metrics(targets, scores, "multilabel"),
        {
            "f1_micro": 0.8,
            "f1_macro": 2 / 3,
            "f1_weighted": 0.8,
            "precision_macro": 2 / 3,
            "recall_macro": 2 / 3,
            "subset_accuracy": 1 / 3,
            "hamming_loss": 2 / 9,
        },
    )


def test_multilabel_threshold() -> None:
    targets = np.array([[1, 0], [0, 1]])
    scores = np.array([[0.6, 0.1], [0.2, 0.7]])
    assert compute_metrics(targets, scores, "multilabel")["subset_accuracy"] == 1.0
    strict = compute_metrics(targets, scores, "multilabel", threshold=0.65)
    assert strict["subset_accuracy"] == 0.5
    assert strict["hamming_loss"] == 0.25


def test_regression_metrics() -> None:
    targets = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.5, 2.0, 2.5, 5.0])
    # errors 0.5, 0, -0.5, 1; SS_res = 1.5, SS_tot = 5
    # pearson: sum(dx*dy) = 5.5, sum(dx^2) = 5, sum(dy^2) = 7.25
    assert_metrics(
        compute_metrics(targets, predicted, "regression"),
        {
            "mse": 0.375,
            "mae": 0.5,
            "r2": 0.7,
            "pearson": 5.5 / math.sqrt(5 * 7.25),
            "spearman": 1.0,
        },
    )


def test_regression_constant_predictions() -> None:
    metrics = compute_metrics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]), "regression")
    assert metrics["pearson"] == 0.0
    assert metrics["spearman"] == 0.0
    assert metrics["mse"] == pytest.approx(2 / 3, abs=1e-6)
    assert metrics["r2"] == 0.0


def test_metrics_are_rounded_to_six_digits() -> None:
    targets = np.array([0, 0, 0, 1, 1, 2])
    metrics = compute_metrics(targets, one_hot_scores([0, 0, 1, 1, 2, 2], 3), "multiclass")
    assert metrics["accuracy"] == 0.666667


@pytest.mark.parametrize("task", sorted(METRICS_BY_TASK))
def test_metric_names_follow_metrics_by_task(task: str) -> None:
    rng = np.random.default_rng(0)
    if task == "regression":
        targets, scores = rng.normal(size=20), rng.normal(size=20)
    elif task == "multilabel":
        targets, scores = rng.integers(0, 2, size=(20, 3)), rng.random((20, 3))
    else:
        classes = 2 if task == "binary" else 4
        targets = np.arange(20) % classes
        scores = scores_from_logits(rng.normal(size=(20, classes)), task)
    assert tuple(compute_metrics(targets, scores, task)) == METRICS_BY_TASK[task]


# --- helpers -------------------------------------------------------------------------------------


def test_confusion_rows() -> None:
    rows = confusion_rows(np.array([0, 2]), np.array([1, 2]), ["a", "b", "c"])
    assert rows == [{"actual": "a", "predicted": "b"}, {"actual": "c", "predicted": "c"}]


def test_is_better() -> None:
    assert is_better(0.1, None, "f1_macro")
    assert is_better(0.8, 0.7, "f1_macro")
    assert not is_better(0.7, 0.7, "f1_macro")
    assert not is_better(0.6, 0.7, "accuracy")
    assert is_better(0.2, 0.3, "loss")
    assert is_better(0.2, 0.3, "mse")
    assert not is_better(0.4, 0.3, "hamming_loss")


@pytest.mark.parametrize("targets", [[3.0, 3.0, 3.0], [2.5]])
def test_regression_metrics_on_one_target_value_are_undefined_never_0(targets: list[float]) -> None:
    # r2 and the correlations divide by the targets' spread: undefined, not "no better than 0"
    truth = np.array(targets)
    metrics = compute_metrics(truth, truth + 0.5, "regression")
    assert all(math.isnan(metrics[name]) for name in ("r2", "pearson", "spearman")), metrics
    assert metrics["mse"] == pytest.approx(0.25) and metrics["mae"] == pytest.approx(0.5)
    written, undefined = undefined_as_null(metrics)
    assert undefined == ["r2", "pearson", "spearman"]
    assert written["r2"] is None and written["mse"] == metrics["mse"]
