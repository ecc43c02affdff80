"""The metrics gate: the fast metrics match scikit-learn's, the decision separates a real drop
from test-set noise, the settings come from the baseline, and broken input is never a verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bertpipe import gate
from bertpipe.gate import (
    RunArtifacts,
    UnusableInput,
    classification_metrics,
    decide,
)
from bertpipe.metrics import compute_metrics
from bertpipe.predictions import Predictions, read_predictions, same_test_set

NAMES = ["a", "b", "c", "d"]


@pytest.mark.parametrize("seed", range(5))
def test_fast_metrics_equal_compute_metrics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 3, 50)  # class 3 absent from the targets
    scores = rng.random((50, 4))
    scores[:5, 3] = 9  # ... but predicted a few times
    fast = classification_metrics(targets, scores.argmax(axis=1), 4)
    slow = compute_metrics(targets, scores, "multiclass")
    for name, value in fast.items():
        assert value == pytest.approx(slow[name], abs=1e-6), name


def predictions(gold: list[str], predicted: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({"row_id": range(len(gold)), "gold": gold, "predicted": predicted})
    for name in NAMES:
        frame[f"score_{name}"] = [1.0 if p == name else 0.0 for p in predicted]
    return frame


def parsed(frame: pd.DataFrame, task: str = "multiclass", threshold: float = 0.5) -> Predictions:
    """The frame as the gate reads it: through the file's text and its one reader."""
    return read_predictions(frame.to_csv(index=False), task, "test", threshold)


def side(frame: pd.DataFrame, label: str) -> RunArtifacts:
    gold, predicted = frame["gold"], frame["predicted"]
    metrics = classification_metrics(
        gold.map(NAMES.index).to_numpy(), predicted.map(NAMES.index).to_numpy(), len(NAMES)
    )
    return RunArtifacts(
        label, {k: float(v) for k, v in metrics.items()}, parsed(frame), "multiclass"
    )


@pytest.fixture
def baseline() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    gold = rng.choice(NAMES, 200).tolist()
    # 80% right
    predicted = [g if rng.random() < 0.8 else rng.choice(NAMES) for g in gold]
    return predictions(gold, predicted)


TOLERANCE = {"accuracy": 0.001, "f1_macro": 0.001}


def test_identical_runs_pass(baseline: pd.DataFrame) -> None:
    result = decide(side(baseline, "old"), side(baseline.copy(), "new"), TOLERANCE, n_resamples=300)
    assert not result.regressed and result.paired


def test_a_real_drop_fails(baseline: pd.DataFrame) -> None:
    broken = baseline.copy()
    broken["predicted"] = "a"  # a collapsed model
    broken = predictions(broken["gold"].tolist(), broken["predicted"].tolist())
    result = decide(side(baseline, "old"), side(broken, "new"), TOLERANCE, n_resamples=300)
    assert result.regressed
    assert all(v.regressed for v in result.verdicts)
    assert all(v.bound is not None and v.bound < 0 for v in result.verdicts)
    table = result.markdown("main", "workspace")
    assert "**regression**" in table and "FAIL" in table


def planted_drop(baseline: pd.DataFrame, flips: int) -> pd.DataFrame:
    predicted = baseline["predicted"].tolist()
    right = [i for i, (g, p) in enumerate(zip(baseline["gold"], predicted, strict=True)) if g == p]
    for i in right[:flips]:
        predicted[i] = NAMES[(NAMES.index(predicted[i]) + 1) % len(NAMES)]
    return predictions(baseline["gold"].tolist(), predicted)


def test_a_small_planted_drop_inside_the_interval_passes(baseline: pd.DataFrame) -> None:
    candidate = planted_drop(baseline, flips=2)  # accuracy -0.01: beyond tolerance, but noise
    result = decide(side(baseline, "old"), side(candidate, "new"), TOLERANCE, n_resamples=500)
    accuracy = next(v for v in result.verdicts if v.metric == "accuracy")
    assert accuracy.drop == pytest.approx(0.01)
    assert accuracy.drop > TOLERANCE["accuracy"]
    assert not result.regressed


def test_without_pairing_the_tolerance_alone_decides(baseline: pd.DataFrame) -> None:
    candidate = planted_drop(baseline, flips=2)
    candidate["row_id"] = candidate["row_id"] + 1000  # another test set
    assert not same_test_set(parsed(baseline), parsed(candidate), "multiclass")
    result = decide(side(baseline, "old"), side(candidate, "new"), TOLERANCE, n_resamples=300)
    assert not result.paired
    assert result.regressed  # 0.01 > 0.001, and no bootstrap to call it noise
    assert any("test sets differ" in note for note in result.notes)


def test_no_gated_metric_is_unusable(baseline: pd.DataFrame) -> None:
    with pytest.raises(UnusableInput):
        decide(side(baseline, "old"), side(baseline, "new"), {"r2": 0.1})


def test_lower_is_better_metrics() -> None:
    rng = np.random.default_rng(1)
    gold = rng.normal(size=300)
    frame = pd.DataFrame(
        {"row_id": range(300), "gold": gold, "predicted": gold + rng.normal(0, 0.1, 300)}
    )
    worse = frame.copy()
    worse["predicted"] = gold + rng.normal(0, 1.0, 300)

    def run(f: pd.DataFrame, label: str) -> RunArtifacts:
        metrics = compute_metrics(f["gold"].to_numpy(), f["predicted"].to_numpy(), "regression")
        return RunArtifacts(label, metrics, parsed(f, "regression"), "regression")

    result = decide(run(frame, "old"), run(worse, "new"), {"mse": 0.05}, n_resamples=200)
    assert result.regressed and result.verdicts[0].change > 0
    # lower is better: the decision's bound is a lower bound of the change, above 0
    mse = result.verdicts[0]
    assert mse.bound is not None and mse.bound > 0
    assert f"| ≥ {mse.bound:+.4f} |" in result.markdown("old", "new")
    better = decide(run(worse, "old"), run(frame, "new"), {"mse": 0.05}, n_resamples=200)
    assert not better.regressed
