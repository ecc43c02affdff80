"""The metrics gate for CI: is the candidate's drop against the baseline real, or test-set noise?

A metric regresses only when its drop exceeds the tolerance **and** a paired bootstrap over the
per-example test predictions says the drop is real at the chosen confidence. When the two test
sets differ (the data changed), pairing is impossible: the gate says so and uses the tolerance
alone.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bertpipe.errors import UserError
from bertpipe.metrics import LOWER_IS_BETTER, compute_metrics
from bertpipe.params import parse_params, safe_load_yaml
from bertpipe.predictions import (
    label_names_of,
    parse_predictions,
    predicted_classes,
    same_test_set,
    targets_and_scores,
)

WORKSPACE = "workspace"
EXIT_OK, EXIT_REGRESSION, EXIT_UNUSABLE = 0, 1, 2


class UnusableInput(UserError):
    """The gate cannot decide: a revision without metrics, a missing file (exit 2)."""


@dataclass
class RunArtifacts:
    """What the gate reads from one side: metrics, per-example predictions and the task."""

    label: str
    metrics: dict[str, float]
    predictions: pd.DataFrame | None
    task: str


def _read_text(revision: str, path: str, repo: Path) -> str | None:
    if revision == WORKSPACE:
        file = repo / path
        return file.read_text(encoding="utf-8") if file.is_file() else None
    result = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=repo, capture_output=True, text=True
    )
    return result.stdout if result.returncode == 0 else None


def _check_revision(revision: str, repo: Path) -> None:
    if revision == WORKSPACE:
        return
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise UnusableInput(f"'{revision}' is not a git revision of {repo}")


def load_side(
    revision: str, repo: Path, metrics_path: str, predictions_path: str, params_path: str
) -> RunArtifacts:
    _check_revision(revision, repo)
    text = _read_text(revision, metrics_path, repo)
    if text is None:
        raise UnusableInput(f"{revision} has no {metrics_path}; run the pipeline and commit it")
    try:
        metrics = {k: float(v) for k, v in json.loads(text).items() if isinstance(v, int | float)}
    except json.JSONDecodeError:
        raise UnusableInput(f"{revision}:{metrics_path} is not valid JSON") from None
    csv = _read_text(revision, predictions_path, repo)
    predictions = parse_predictions(csv) if csv else None
    params_text = _read_text(revision, params_path, repo)
    task = "multiclass"
    if params_text is not None:
        task = str((safe_load_yaml(params_text) or {}).get("task", task))
    return RunArtifacts(revision, metrics, predictions, task)


# --- paired bootstrap ---------------------------------------------------------------------------


FAST_CLASSIFICATION = frozenset(
    {"accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"}
)


def classification_metrics(targets: np.ndarray, predicted: np.ndarray, k: int) -> dict[str, float]:
    """compute_metrics' single-label metrics from one confusion matrix, a thousand times faster.

    Same definitions as scikit-learn: macro averages over the classes present in the targets or
    the predictions, zero_division=0.
    """
    confusion = np.bincount(targets * k + predicted, minlength=k * k).reshape(k, k)
    true_positive = np.diag(confusion).astype(float)
    true_count = confusion.sum(axis=1).astype(float)
    predicted_count = confusion.sum(axis=0).astype(float)
    present = (true_count + predicted_count) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_positive / predicted_count, 0.0)
        recall = np.where(true_count > 0, true_positive / true_count, 0.0)
        f1 = np.where(present, 2 * true_positive / (true_count + predicted_count), 0.0)
    return {
        "accuracy": true_positive.sum() / len(targets),
        "f1_macro": f1[present].mean(),
        "f1_weighted": (f1 * true_count).sum() / true_count.sum(),
        "precision_macro": precision[present].mean(),
        "recall_macro": recall[present].mean(),
    }


def paired_bootstrap(
    old: pd.DataFrame,
    new: pd.DataFrame,
    task: str,
    metrics: list[str],
    n_resamples: int = 2000,
    seed: int = 0,
    threshold: float = 0.5,
) -> dict[str, np.ndarray]:
    """Per metric, the (n_resamples,) differences new - old over the same resampled examples."""
    names = label_names_of(old)
    if label_names_of(new) != names:
        raise UnusableInput("the two runs have different label sets; they cannot be compared")
    targets, old_scores = targets_and_scores(old, task, names)
    _, new_scores = targets_and_scores(new, task, names)
    fast = task in ("binary", "multiclass") and set(metrics) <= FAST_CLASSIFICATION
    old_predicted = new_predicted = None
    if fast:  # the stored predictions, not an argmax of rounded scores that might break a tie
        old_predicted = predicted_classes(old, names)
        new_predicted = predicted_classes(new, names)

    def score(sample: np.ndarray, scores: np.ndarray, predicted: np.ndarray | None) -> dict:
        if predicted is not None:
            return classification_metrics(targets[sample], predicted[sample], len(names))
        return compute_metrics(targets[sample], scores[sample], task, threshold)

    rng = np.random.default_rng(seed)
    differences = {metric: np.empty(n_resamples) for metric in metrics}
    for draw in range(n_resamples):
        sample = rng.integers(0, len(targets), len(targets))
        before = score(sample, old_scores, old_predicted)
        after = score(sample, new_scores, new_predicted)
        for metric in metrics:
            differences[metric][draw] = after[metric] - before[metric]
    return differences


# --- the decision -------------------------------------------------------------------------------


@dataclass
class MetricVerdict:
    metric: str
    old: float
    new: float
    tolerance: float
    interval: tuple[float, float] | None  # bootstrap interval of new - old, when paired
    regressed: bool

    @property
    def change(self) -> float:
        return self.new - self.old

    @property
    def drop(self) -> float:
        """How much worse the candidate is (positive = worse), whichever way the metric points."""
        return self.old - self.new if self.metric not in LOWER_IS_BETTER else self.new - self.old


@dataclass
class GateResult:
    verdicts: list[MetricVerdict]
    paired: bool
    notes: list[str]
    confidence: float

    @property
    def regressed(self) -> bool:
        return any(verdict.regressed for verdict in self.verdicts)

    def markdown(self, baseline: str, candidate: str) -> str:
        level = f"{self.confidence:.0%}"
        lines = [
            f"### Metrics gate: {candidate} vs {baseline}",
            "",
            f"| metric | old | new | change | {level} interval | tolerance | verdict |",
            "| --- | ---: | ---: | ---: | --- | ---: | --- |",
        ]
        for v in self.verdicts:
            interval = (
                "n/a" if v.interval is None else f"[{v.interval[0]:+.4f}, {v.interval[1]:+.4f}]"
            )
            verdict = "**regression**" if v.regressed else "ok"
            lines.append(
                f"| {v.metric} | {v.old:.4f} | {v.new:.4f} | {v.change:+.4f} | {interval} "
                f"| {v.tolerance:.4f} | {verdict} |"
            )
        lines.append("")
        lines.extend(f"- {note}" for note in self.notes)
        summary = "FAIL: a metric regressed" if self.regressed else "PASS: no metric regressed"
        lines.append(f"\n**{summary}**")
        return "\n".join(lines) + "\n"


def decide(
    baseline: RunArtifacts,
    candidate: RunArtifacts,
    tolerances: dict[str, float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> GateResult:
    metrics = [m for m in tolerances if m in baseline.metrics and m in candidate.metrics]
    notes: list[str] = []
    absent = sorted(set(tolerances) - set(metrics))
    if absent:
        notes.append(f"not in both metrics files, so not gated: {', '.join(absent)}")
    if not metrics:
        raise UnusableInput("no gated metric is in both metrics files; check gate.tolerance")
    if baseline.task != candidate.task:
        raise UnusableInput(f"the task changed ({baseline.task} -> {candidate.task})")

    differences: dict[str, np.ndarray] | None = None
    if baseline.predictions is None or candidate.predictions is None:
        notes.append("per-example predictions missing on one side: tolerance alone decides")
    elif not same_test_set(baseline.predictions, candidate.predictions):
        notes.append("the test sets differ (the data changed): no pairing, tolerance alone decides")
    else:
        differences = paired_bootstrap(
            baseline.predictions, candidate.predictions, baseline.task, metrics, n_resamples, seed
        )
        notes.append(
            f"paired bootstrap over {len(baseline.predictions)} test examples, "
            f"{n_resamples} resamples"
        )

    verdicts = []
    tail = (1 - confidence) / 2
    for metric in metrics:
        verdict = MetricVerdict(
            metric,
            baseline.metrics[metric],
            candidate.metrics[metric],
            tolerances[metric],
            None,
            False,
        )
        beyond_tolerance = verdict.drop > tolerances[metric] + 1e-12
        if differences is None:
            verdict.regressed = beyond_tolerance
        else:
            diffs = differences[metric]
            verdict.interval = (
                float(np.quantile(diffs, tail)),
                float(np.quantile(diffs, 1 - tail)),
            )
            # one-sided: the drop is real when at least `confidence` of the resamples got worse
            worse = diffs > 0 if metric in LOWER_IS_BETTER else diffs < 0
            verdict.regressed = beyond_tolerance and float(np.mean(worse)) >= confidence
        verdicts.append(verdict)
    return GateResult(verdicts, differences is not None, notes, confidence)


def tolerances_from(params_path: Path, overrides: dict[str, float]) -> tuple[dict[str, float], Any]:
    gate = (
        parse_params(safe_load_yaml(params_path.read_text()), str(params_path)).gate
        if (params_path.is_file())
        else parse_params({}).gate
    )
    return {**gate.tolerance, **overrides}, gate
