"""The metrics gate for CI: is the candidate's drop against the baseline real, or test-set noise?

A metric regresses only when its drop exceeds the tolerance **and** a paired bootstrap over the
per-example test predictions says the drop is real at the chosen confidence. When the two test
sets differ (the data changed), pairing is impossible: the gate says so and uses the tolerance
alone.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bertpipe.errors import UserError
from bertpipe.metric_names import LOWER_IS_BETTER, METRICS_BY_TASK
from bertpipe.metrics import DIGITS, Threshold, compute_metrics
from bertpipe.params import (
    GateParams,
    parse_params,
    resolve_gate,
    safe_load_yaml,
    unknown_metric,
)
from bertpipe.predictions import Predictions, read_predictions, same_test_set

WORKSPACE = "workspace"
EXIT_OK, EXIT_REGRESSION, EXIT_UNUSABLE = 0, 1, 2
# a metrics file and its own predictions agree when they differ by at most this: the file holds
# values rounded to 6 digits, the predictions scores rounded to 6 decimals (roc_auc moves a bit)
AGREEMENT = 1e-4


class UnusableInput(UserError):
    """The gate cannot decide: a revision without metrics, a broken file (exit 2)."""


@dataclass
class RunArtifacts:
    """What the gate reads from one side: metrics, per-example predictions and the task."""

    label: str
    metrics: dict[str, float]  # the finite numbers of the metrics file
    predictions: Predictions | None
    task: str
    # what the metrics file holds instead of a finite number, by metric ("a string '0.9'", ...)
    broken: dict[str, str] = field(default_factory=dict)


def _what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"a string ({json.dumps(shown)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return str(value)  # nan, inf, -inf, or an integer too large for a float


def parse_metrics(loaded: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """(finite numbers by metric, what each other value is): a value that is no finite number
    is never dropped silently, since a gated metric holding one is a broken candidate."""
    metrics: dict[str, float] = {}
    broken: dict[str, str] = {}
    for name, value in loaded.items():
        number = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond float's range
                number = None
        if number is not None and math.isfinite(number):
            metrics[name] = number
        else:
            broken[name] = _what(value)
    return metrics, broken


@dataclass
class RevisionParams:
    """What the gate reads from one revision's params.yaml."""

    task: str
    # train.threshold of that run: what its multilabel predictions file means when it records no
    # threshold (written before they were); `auto` runs always record theirs
    threshold: float
    gate: GateParams | None  # None: the file has no gate: section


def _read_text(revision: str, path: str, repo: Path) -> str | None:
    if revision == WORKSPACE:
        file = repo / path
        return file.read_text(encoding="utf-8") if file.is_file() else None
    result = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=repo, capture_output=True, text=True
    )
    return result.stdout if result.returncode == 0 else None


def check_repo(repo: Path) -> None:
    if not repo.is_dir():
        raise UnusableInput(f"--repo {repo}: no such folder")
    result = subprocess.run(
        ["git", "rev-parse", "--git-dir"], cwd=repo, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise UnusableInput(f"--repo {repo}: not a git repository")


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


def read_revision_params(revision: str, repo: Path, params_path: str) -> RevisionParams:
    """The task, threshold and gate: section of `revision`'s params file (defaults if absent).

    Only these keys are checked, with the current schema: a revision's other keys may come from
    an older or newer bertpipe, and they do not change what the gate reads.
    """
    _check_revision(revision, repo)
    source = f"{revision}:{params_path}"
    text = _read_text(revision, params_path, repo)
    try:
        raw = safe_load_yaml(text) if text is not None else {}
    except (yaml.YAMLError, RecursionError, OverflowError, ValueError):
        # OverflowError and ValueError: PyYAML's scanner on an escape beyond Unicode
        raise UnusableInput(f"{source}: not valid YAML; fix the file") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UnusableInput(f"{source}: expected a mapping of keys to values at the top level")
    train = raw.get("train")
    relevant: dict = {key: raw[key] for key in ("task", "gate") if raw.get(key) is not None}
    if isinstance(train, dict) and "threshold" in train:
        relevant["train"] = {"threshold": train["threshold"]}
    params = parse_params(relevant, source)
    gate = params.gate if "gate" in relevant else None
    threshold = params.train.threshold
    legacy = threshold if isinstance(threshold, float) else 0.5
    return RevisionParams(params.task, legacy, gate)


# the first line of every report `--md` writes, and so what marks a file as one
REPORT_HEADING = "### Metrics gate: "


def check_report_path(path: Path) -> None:
    """`--md` may name a new file, an empty one or an earlier report; anything else (notes
    named by a typo, say) is refused before any work, and kept."""
    if path.is_dir():
        raise UnusableInput(f"--md {path}: is a folder; name a file (the folder is left as it is)")
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with path.open(encoding="utf-8") as report:
            first = report.readline()
    except (OSError, UnicodeError):
        first = ""
    if not first.startswith(REPORT_HEADING):
        raise UnusableInput(
            f"--md {path}: exists and is not an earlier gate report; name another file (this "
            "one is kept)"
        )


def check_overrides(
    tolerance_overrides: dict[str, float], confidence: float | None, n_bootstrap: int | None
) -> None:
    """The command line's settings, checked before any revision is read."""
    for name, value in tolerance_overrides.items():
        if not math.isfinite(value) or value < 0:
            raise UnusableInput(
                f"--tolerance {name}={value}: a tolerance must be a finite number >= 0"
            )
    if confidence is not None and not 0.5 < confidence < 1:
        raise UnusableInput(f"--confidence {confidence}: give a number above 0.5 and below 1")
    if n_bootstrap is not None and n_bootstrap < 100:
        raise UnusableInput(f"--n-bootstrap {n_bootstrap}: give at least 100 resamples")


def settings_from(
    baseline: RevisionParams,
    candidate: RevisionParams,
    baseline_label: str,
    tolerance_overrides: dict[str, float],
    confidence: float | None,
    n_bootstrap: int | None,
) -> tuple[GateParams, list[str]]:
    """The gate's settings: the baseline's gate: section, then the command line's overrides.

    The candidate's section is never used: a pull request must not set the rules it is judged
    by. When it differs, the report says so, so that a reviewer sees the attempt.
    """
    for name in tolerance_overrides:
        problem = unknown_metric(name, baseline.task)
        if problem:
            raise UnusableInput(f"--tolerance: {problem}; fix the workflow's --tolerance")
    notes = []
    if baseline.gate is None:
        settings = resolve_gate(GateParams(), baseline.task)
        notes.append(f"{baseline_label} has no gate: section in its params: the defaults are used")
    else:
        settings = resolve_gate(baseline.gate, baseline.task)
    candidate_gate = resolve_gate(candidate.gate or GateParams(), candidate.task)
    if candidate_gate != settings:
        notes.append(
            f"the candidate's gate: section differs and is NOT used: {_describe(candidate_gate)}"
        )
    settings = GateParams(
        tolerance={**settings.tolerance, **tolerance_overrides},
        confidence=settings.confidence if confidence is None else confidence,
        n_bootstrap=settings.n_bootstrap if n_bootstrap is None else n_bootstrap,
    )
    overridden = tolerance_overrides or confidence is not None or n_bootstrap is not None
    origin = f"{baseline_label}'s params" + (" and the command line" if overridden else "")
    notes.append(f"settings used: {_describe(settings)} (from {origin})")
    return settings, notes


def _describe(settings: GateParams) -> str:
    tolerances = ", ".join(f"{name} {value:g}" for name, value in settings.tolerance.items())
    return (
        f"tolerance {{{tolerances}}}, confidence {settings.confidence:g}, "
        f"n_bootstrap {settings.n_bootstrap}"
    )


def load_side(
    revision: str, repo: Path, metrics_path: str, predictions_path: str, params: RevisionParams
) -> RunArtifacts:
    _check_revision(revision, repo)
    source = f"{revision}:{metrics_path}"
    text = _read_text(revision, metrics_path, repo)
    if text is None:
        raise UnusableInput(f"{revision} has no {metrics_path}; run the pipeline and commit it")
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError:
        raise UnusableInput(f"{source} is not valid JSON") from None
    if not isinstance(loaded, dict):
        raise UnusableInput(
            f"{source} holds a {type(loaded).__name__}, not an object of metric: value; "
            "rerun the evaluate stage"
        )
    metrics, broken = parse_metrics(loaded)
    csv = _read_text(revision, predictions_path, repo)
    predictions = None
    if csv is not None:
        predictions = read_predictions(
            csv, params.task, f"{revision}:{predictions_path}", params.threshold
        )
        n_test = metrics.get("n_test")
        if n_test is not None and n_test != len(predictions.frame):
            raise UnusableInput(
                f"{revision}:{predictions_path} has {len(predictions.frame)} rows but "
                f"{metrics_path} says n_test {n_test:g}; rerun the evaluate stage"
            )
    return RunArtifacts(revision, metrics, predictions, params.task, broken)


def check(
    repo: Path,
    baseline: str,
    candidate: str,
    tolerance_overrides: dict[str, float],
    confidence: float | None,
    n_bootstrap: int | None,
    metrics_path: str,
    predictions_path: str,
    params_path: str,
) -> GateResult:
    """The whole gate: settings from the baseline, both sides read and checked, the decision."""
    check_overrides(tolerance_overrides, confidence, n_bootstrap)
    check_repo(repo)
    baseline_params = read_revision_params(baseline, repo, params_path)
    candidate_params = read_revision_params(candidate, repo, params_path)
    settings, notes = settings_from(
        baseline_params,
        candidate_params,
        baseline,
        tolerance_overrides,
        confidence,
        n_bootstrap,
    )
    old = load_side(baseline, repo, metrics_path, predictions_path, baseline_params)
    new = load_side(candidate, repo, metrics_path, predictions_path, candidate_params)
    result = decide(old, new, settings.tolerance, settings.confidence, settings.n_bootstrap)
    result.notes[:0] = notes
    return result


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


def multilabel_metrics(targets: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """compute_metrics' multilabel metrics from (n, labels) 0/1 arrays, without scikit-learn's
    per-call overhead. Same definitions: macro averages over every label, zero_division=0."""
    true_positive = (targets & predicted).sum(axis=0).astype(float)
    true_count = targets.sum(axis=0).astype(float)
    predicted_count = predicted.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_positive / predicted_count, 0.0)
        recall = np.where(true_count > 0, true_positive / true_count, 0.0)
        both = true_count + predicted_count
        f1 = np.where(both > 0, 2 * true_positive / both, 0.0)
    micro_denominator = true_count.sum() + predicted_count.sum()
    return {
        "f1_micro": 2 * true_positive.sum() / micro_denominator if micro_denominator else 0.0,
        "f1_macro": f1.mean(),
        "f1_weighted": (f1 * true_count).sum() / true_count.sum() if true_count.sum() else 0.0,
        "precision_macro": precision.mean(),
        "recall_macro": recall.mean(),
        "subset_accuracy": (targets == predicted).all(axis=1).mean(),
        "hamming_loss": (targets != predicted).mean(),
    }


def paired_bootstrap(
    old: Predictions,
    new: Predictions,
    task: str,
    metrics: list[str],
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per metric, the (n_resamples,) differences new - old over the same resampled examples.

    Each side is re-scored with its own recorded threshold(s), as its metrics.json was.
    """
    targets, old_scores = old.targets_and_scores(task)
    _, new_scores = new.targets_and_scores(task)
    old_predicted = new_predicted = None
    if task in ("binary", "multiclass") and set(metrics) <= FAST_CLASSIFICATION:
        # the stored predictions, not an argmax of rounded scores that might break a tie
        old_predicted = old.predicted_classes()
        new_predicted = new.predicted_classes()
    elif task == "multilabel":
        old_predicted = (old_scores >= old.threshold).astype(np.int64)
        new_predicted = (new_scores >= new.threshold).astype(np.int64)
    k = len(old.label_names)

    def score(
        sample: np.ndarray, scores: np.ndarray, predicted: np.ndarray | None, threshold: Threshold
    ) -> dict[str, float]:
        if predicted is None:
            return compute_metrics(targets[sample], scores[sample], task, threshold)
        if task == "multilabel":
            return multilabel_metrics(targets[sample], predicted[sample])
        return classification_metrics(targets[sample], predicted[sample], k)

    rng = np.random.default_rng(seed)
    differences = {metric: np.empty(n_resamples) for metric in metrics}
    for draw in range(n_resamples):
        sample = rng.integers(0, len(targets), len(targets))
        before = score(sample, old_scores, old_predicted, old.threshold)
        after = score(sample, new_scores, new_predicted, new.threshold)
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
    # one-sided bootstrap bound of new - old at the gate's confidence, when paired: an upper
    # bound for a metric where higher is better, a lower bound where lower is better
    bound: float | None
    regressed: bool

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER

    @property
    def change(self) -> float:
        return self.new - self.old

    @property
    def drop(self) -> float:
        """How much worse the candidate is (positive = worse), whichever way the metric points."""
        return self.new - self.old if self.lower_is_better else self.old - self.new

    @property
    def beyond_tolerance(self) -> bool:
        return self.drop > self.tolerance + 1e-12

    @property
    def surely_worse(self) -> bool | None:
        """Whether the bound lies on the worse side of 0; None without a bootstrap."""
        if self.bound is None:
            return None
        return self.bound > 0 if self.lower_is_better else self.bound < 0

    def bound_text(self) -> str:
        if self.bound is None:
            return "n/a"
        return f"{'≥' if self.lower_is_better else '≤'} {self.bound:+.4f}"

    def verdict_text(self) -> str:
        if self.regressed:
            return "**regression**"
        if self.beyond_tolerance:
            return "ok: the drop may be noise"
        if self.surely_worse:
            return "ok: worse, within tolerance"
        return "ok"


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
            f"{REPORT_HEADING}{candidate} vs {baseline}",
            "",
            f"| metric | old | new | change | {level} one-sided bound of the change "
            "| tolerance | verdict |",
            "| --- | ---: | ---: | ---: | --- | ---: | --- |",
        ]
        for v in self.verdicts:
            lines.append(
                f"| {v.metric} | {v.old:.4f} | {v.new:.4f} | {v.change:+.4f} | {v.bound_text()} "
                f"| {v.tolerance:.4f} | {v.verdict_text()} |"
            )
        lines.append("")
        if self.paired:
            lines.append(
                f"- bound: with {level} confidence the change is at most (≤) this, or at least "
                "(≥) for a metric where lower is better; a regression is a drop beyond the "
                "tolerance whose bound lies on the worse side of 0"
            )
        lines.extend(f"- {note}" for note in self.notes)
        summary = "FAIL: a metric regressed" if self.regressed else "PASS: no metric regressed"
        lines.append(f"\n**{summary}**")
        return "\n".join(lines) + "\n"


def rescore(predictions: Predictions, task: str, metrics: list[str]) -> dict[str, float]:
    """The metrics as the evaluate stage computed them, from the per-example predictions: the
    stored decisions for the metrics of labels, the scores for roc_auc and average_precision.
    A metric that is undefined there (NaN) is left out."""
    targets, scores = predictions.targets_and_scores(task)
    values = compute_metrics(targets, scores, task, predictions.threshold)
    if task in ("binary", "multiclass"):
        k = len(predictions.label_names)
        values.update(classification_metrics(targets, predictions.predicted_classes(), k))
    elif task == "multilabel":
        values.update(multilabel_metrics(targets, predictions.predicted_sets()))
    return {
        metric: round(float(values[metric]), DIGITS)
        for metric in metrics
        if metric in values and math.isfinite(values[metric])
    }


def _broken(side: RunArtifacts, metric: str, role: str) -> UnusableInput:
    what = side.broken.get(metric)
    if role == "baseline":
        return UnusableInput(
            f"{side.label}: metric {metric} is not a finite number (it holds {what}): the "
            "baseline is broken, so nothing can be judged against it; fix its metrics file"
        )
    if what is None:
        return UnusableInput(
            f"{side.label}: gated metric {metric} is missing from its metrics file (the "
            "baseline has it): the candidate is broken, which is not a regression; rerun the "
            "evaluate stage"
        )
    return UnusableInput(
        f"{side.label}: metric {metric} is not a finite number (it holds {what}): the "
        "candidate is broken, which is not a regression; rerun the evaluate stage"
    )


def _trusted(
    side: RunArtifacts, metrics: list[str], notes: list[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """(the values the gate judges, the file's values that disagree with them), by metric.

    Where the side's predictions can re-score a metric, the re-scored value is the one trusted:
    a metrics file can be edited or stale, the per-example predictions are what was measured.
    """
    values = {metric: side.metrics[metric] for metric in metrics}
    if side.predictions is None:
        return values, {}
    rescored = rescore(side.predictions, side.task, metrics)
    disagreeing = {}
    for metric, value in rescored.items():
        if abs(value - values[metric]) > AGREEMENT:
            disagreeing[metric] = values[metric]
            notes.append(
                f"{side.label}: its metrics file says {metric} {values[metric]:.6g}, its "
                f"predictions give {value:.6g}; the gate uses {value:.6g}"
            )
        values[metric] = value
    return values, disagreeing


def decide(
    baseline: RunArtifacts,
    candidate: RunArtifacts,
    tolerances: dict[str, float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> GateResult:
    """The verdict on every gated metric: each one the tolerances name and the baseline has.

    Broken input is never a verdict (UnusableInput, exit 2): a baseline or a candidate whose
    gated metric is no finite number or, for the candidate, is missing, or a candidate whose
    metrics file disagrees with its own predictions where that would make it pass.
    """
    if baseline.task != candidate.task:
        raise UnusableInput(
            f"the task changed ({baseline.task} -> {candidate.task}); the gate compares runs of "
            "one task"
        )
    metrics = [m for m in tolerances if m in baseline.metrics or m in baseline.broken]
    notes: list[str] = []
    absent = sorted(set(tolerances) - set(metrics))
    if absent:
        notes.append(f"not in the baseline's metrics file, so not gated: {', '.join(absent)}")
    if not metrics:
        raise UnusableInput("no gated metric is in both metrics files; check gate.tolerance")
    for metric in metrics:
        if metric in baseline.broken:
            raise _broken(baseline, metric, "baseline")
    for metric in metrics:
        if metric not in candidate.metrics:
            raise _broken(candidate, metric, "candidate")
    if baseline.predictions is not None and candidate.predictions is None:
        # without them the paired test and the re-scoring are skipped, and the metrics file's
        # figures are taken as they are: a candidate must not choose that looser rule
        raise UnusableInput(
            f"{candidate.label}: its per-example predictions are missing (the baseline has "
            "them), so its metrics cannot be checked: the candidate is broken, which is not a "
            "regression; rerun the evaluate stage and commit its predictions"
        )
    old_values, _ = _trusted(baseline, metrics, notes)
    new_values, disagreeing = _trusted(candidate, metrics, notes)

    differences: dict[str, np.ndarray] | None = None
    if baseline.predictions is None or candidate.predictions is None:
        notes.append("the baseline has no per-example predictions: tolerance alone decides")
    elif not same_test_set(baseline.predictions, candidate.predictions, baseline.task):
        notes.append("the test sets differ (the data changed): no pairing, tolerance alone decides")
    else:
        rescored = [m for m in metrics if m in METRICS_BY_TASK[baseline.task]]
        differences = paired_bootstrap(
            baseline.predictions, candidate.predictions, baseline.task, rescored, n_resamples, seed
        )
        notes.append(
            f"paired bootstrap over {len(baseline.predictions.frame)} test examples, "
            f"{n_resamples} resamples"
        )
        unscored = [m for m in metrics if m not in differences]
        if unscored:
            notes.append(f"not re-scored per example, tolerance alone: {', '.join(unscored)}")

    verdicts = []
    for metric in metrics:
        verdict = MetricVerdict(
            metric, old_values[metric], new_values[metric], tolerances[metric], None, False
        )
        if differences is not None and metric in differences:
            # the decision and the printed bound are the same number: the change is at most
            # (higher is better) or at least (lower is better) `bound` with `confidence`;
            # a resample where the metric is undefined (NaN) says nothing either way
            draws = differences[metric][np.isfinite(differences[metric])]
            quantile = 1 - confidence if verdict.lower_is_better else confidence
            verdict.bound = float(np.quantile(draws, quantile)) if len(draws) else None
            verdict.regressed = verdict.beyond_tolerance and verdict.surely_worse is not False
        else:
            verdict.regressed = verdict.beyond_tolerance
        verdicts.append(verdict)
        as_filed = MetricVerdict(
            metric, old_values[metric], candidate.metrics[metric], tolerances[metric], None, False
        )
        if as_filed.beyond_tolerance and not verdict.beyond_tolerance:
            # close to the trusted value, but on the other side of the tolerance
            disagreeing.setdefault(metric, candidate.metrics[metric])
    if disagreeing and not any(verdict.regressed for verdict in verdicts):
        # the file would tell a reader something the predictions do not: never a PASS
        metric, value = next(iter(disagreeing.items()))
        raise UnusableInput(
            f"{candidate.label}: its metrics file says {metric} {value:.6g} but its predictions "
            f"give {new_values[metric]:.6g}: the candidate is broken (metrics and predictions "
            "disagree), which is not a regression; rerun the evaluate stage"
        )
    return GateResult(verdicts, differences is not None, notes, confidence)
