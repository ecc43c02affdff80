"""The metrics gate: the fast metrics match scikit-learn's, the decision separates a real drop
from test-set noise, the settings come from the baseline, and broken input is never a verdict."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bertpipe import gate
from bertpipe.cli import app
from bertpipe.gate import (
    RunArtifacts,
    UnusableInput,
    classification_metrics,
    decide,
    multilabel_metrics,
)
from bertpipe.metrics import compute_metrics
from bertpipe.predictions import Predictions, read_predictions, same_test_set, write_predictions

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


@pytest.mark.parametrize("seed", range(5))
def test_fast_multilabel_metrics_equal_compute_metrics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    targets = (rng.random((40, 5)) < 0.3).astype(np.int64)
    targets[:, 4] = 0  # a label never true ...
    scores = rng.random((40, 5))
    scores[:, 3] = 0.0  # ... and one never predicted
    fast = multilabel_metrics(targets, (scores >= 0.6).astype(np.int64))
    slow = compute_metrics(targets, scores, "multilabel", threshold=0.6)
    assert set(fast) == set(slow)
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


# --- the printed bound is the one the decision used ---------------------------------------------


def verdicts_agree_with_bounds(result: gate.GateResult) -> None:
    for v in result.verdicts:
        assert v.bound is not None
        worse_side = v.bound > 0 if v.lower_is_better else v.bound < 0
        assert v.regressed == (v.beyond_tolerance and worse_side), v
        assert v.bound_text() in result.markdown("old", "new")


@pytest.mark.parametrize(("tied", "regressed"), [(100, True), (101, False)])
def test_a_borderline_bootstrap_never_contradicts_its_bound(
    baseline: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tied: int, regressed: bool
) -> None:
    """Exactly 95% (or one resample fewer) of the resamples got worse. The old gate decided on
    that share but printed a two-sided 95% interval, whose upper end here is 0: a "regression"
    next to an interval that contains 0. Now the row prints the bound it decided on."""
    differences = np.concatenate([np.full(2000 - tied, -0.01), np.zeros(tied)])
    monkeypatch.setattr(gate, "paired_bootstrap", lambda *args, **kwargs: {"accuracy": differences})
    candidate = planted_drop(baseline, flips=4)
    result = decide(side(baseline, "old"), side(candidate, "new"), {"accuracy": 0.001})
    assert np.quantile(differences, 0.975) == 0  # the two-sided interval would contain 0
    verdict = result.verdicts[0]
    assert verdict.regressed is regressed
    verdicts_agree_with_bounds(result)
    assert "95% one-sided bound of the change" in result.markdown("old", "new")
    if not regressed:
        assert verdict.bound == 0 and "ok: the drop may be noise" in result.markdown("o", "n")


@pytest.mark.parametrize("flips", [0, 2, 4, 6, 8, 12])
def test_every_verdict_agrees_with_its_bound(baseline: pd.DataFrame, flips: int) -> None:
    candidate = planted_drop(baseline, flips)
    result = decide(side(baseline, "old"), side(candidate, "new"), TOLERANCE, n_resamples=400)
    verdicts_agree_with_bounds(result)


# --- multilabel: re-scored with each side's recorded threshold ----------------------------------

LABELS = ["x|y", "z", "w"]  # a name holding "|": the file records the separator it used


def multilabel_file(
    folder: Path, gold: np.ndarray, scores: np.ndarray, threshold: float
) -> Predictions:
    """A multilabel predictions file as the evaluate stage writes it, read back by the gate."""
    path = folder / f"predictions-{threshold}-{scores.sum():.1f}.csv"
    predicted = (scores >= threshold).astype(np.int64)
    ids = np.arange(len(gold))
    write_predictions(path, ids, gold, predicted, scores, "multilabel", LABELS, threshold, ";")
    return read_predictions(path.read_text(), "multilabel", str(path), legacy_threshold=0.5)


def multilabel_side(file: Predictions, label: str) -> RunArtifacts:
    targets, scores = file.targets_and_scores("multilabel")
    metrics = compute_metrics(targets, scores, "multilabel", file.threshold)
    return RunArtifacts(label, metrics, file, "multilabel")


def test_multilabel_rescored_with_the_recorded_threshold_and_separator(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gold = (rng.random((120, 3)) < 0.4).astype(np.int64)
    # baseline: sure scores, threshold 0.5; candidate: the same decisions at threshold 0.3
    old = multilabel_file(tmp_path, gold, np.where(gold == 1, 0.8, 0.1), threshold=0.5)
    new = multilabel_file(tmp_path, gold, np.where(gold == 1, 0.4, 0.1), threshold=0.3)
    assert new.threshold == 0.3 and new.label_separator == ";" and new.label_names == LABELS
    targets, _ = new.targets_and_scores("multilabel")
    assert np.array_equal(targets, gold)
    tolerances = {"f1_micro": 0.01, "f1_macro": 0.01, "hamming_loss": 0.01}
    result = decide(multilabel_side(old, "old"), multilabel_side(new, "new"), tolerances, 0.95, 500)
    # at a fixed 0.5 the candidate would predict nothing: a false regression
    assert result.paired and not result.regressed, result.markdown("old", "new")
    verdicts_agree_with_bounds(result)

    collapsed = multilabel_file(tmp_path, gold, np.full(gold.shape, 0.1), threshold=0.3)
    worse = decide(
        multilabel_side(old, "old"), multilabel_side(collapsed, "new"), tolerances, 0.95, 500
    )
    assert worse.regressed
    assert {v.metric for v in worse.verdicts if v.regressed} == set(tolerances)
    verdicts_agree_with_bounds(worse)


def test_an_old_format_multilabel_file_reads_with_legacy_separator_and_threshold() -> None:
    text = "row_id,gold,predicted,score_a,score_b\n0,a|b,a,0.7,0.2\n1,b,b,0.1,0.9\n"
    old = read_predictions(text, "multilabel", "old:eval/predictions.csv", legacy_threshold=0.25)
    assert old.label_separator == "|" and old.threshold == 0.25
    targets, scores = old.targets_and_scores("multilabel")
    assert targets.tolist() == [[1, 1], [0, 1]]
    assert scores.tolist() == [[0.7, 0.2], [0.1, 0.9]]


def test_written_file_round_trips(tmp_path: Path) -> None:
    gold = np.array([[1, 0, 1], [0, 1, 0]])
    scores = np.array([[0.9, 0.2, 0.6], [0.1, 0.7, 0.3]])
    path = tmp_path / "predictions.csv"
    write_predictions(
        path,
        np.array([4, 9]),
        gold,
        (scores >= 0.55).astype(int),
        scores,
        "multilabel",
        LABELS,
        0.55,
        ";",
    )
    file = read_predictions(path.read_text(), "multilabel", str(path), legacy_threshold=0.5)
    assert file.threshold == 0.55 and file.label_separator == ";"
    assert file.frame["gold"].tolist() == ["x|y;w", "z"]
    assert file.frame["predicted"].tolist() == ["x|y;w", "z"]
    assert np.array_equal(file.targets_and_scores("multilabel")[0], gold)


# --- settings from the baseline, and bad input through the command line ------------------------

GOOD_PREDICTIONS = "row_id,gold,predicted,score_a,score_b\n" + "".join(
    f"{i},{'a' if i % 3 else 'b'},{'a' if i % 3 else 'b'},0.9,0.1\n" for i in range(60)
)
COLLAPSED_PREDICTIONS = "row_id,gold,predicted,score_a,score_b\n" + "".join(
    f"{i},{'a' if i % 3 else 'b'},a,0.9,0.1\n" for i in range(60)
)
PARAMS = "task: multiclass\ngate:\n  tolerance:\n    accuracy: 0.02\n  n_bootstrap: 200\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def gate_repo(tmp_path: Path) -> Path:
    """A git repository whose HEAD holds a good run: metrics, predictions and a gate: section."""
    repo = tmp_path / "repo"
    (repo / "eval").mkdir(parents=True)
    (repo / "params.yaml").write_text(PARAMS)
    (repo / "metrics.json").write_text(json.dumps({"accuracy": 1.0, "n_test": 60}))
    (repo / "eval/predictions.csv").write_text(GOOD_PREDICTIONS)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline")
    return repo


def check_metrics(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["check-metrics", "--repo", str(repo), *args])
    return result.exit_code, result.output


def test_the_candidates_own_gate_section_is_shown_but_never_used(gate_repo: Path) -> None:
    (gate_repo / "metrics.json").write_text(json.dumps({"accuracy": 2 / 3, "n_test": 60}))
    (gate_repo / "eval/predictions.csv").write_text(COLLAPSED_PREDICTIONS)
    (gate_repo / "params.yaml").write_text(PARAMS.replace("accuracy: 0.02", "accuracy: 1.0"))
    code, output = check_metrics(gate_repo)
    assert code == 1, output
    assert "| accuracy |" in output and "**regression**" in output
    assert "the candidate's gate: section differs and is NOT used: tolerance {accuracy 1}" in output
    assert "settings used: tolerance {accuracy 0.02}" in output
    # the workflow file's owner may still override on the command line
    code, output = check_metrics(gate_repo, "--tolerance", "accuracy=0.5")
    assert code == 0, output


def test_a_baseline_without_a_gate_section_uses_the_defaults_and_says_so(gate_repo: Path) -> None:
    (gate_repo / "params.yaml").write_text("task: multiclass\n")
    git(gate_repo, "commit", "-qam", "no gate section")
    code, output = check_metrics(gate_repo, "--n-bootstrap", "100")
    assert code == 0, output
    assert "HEAD has no gate: section in its params: the defaults are used" in output
    assert "settings used: tolerance {accuracy 0.02, f1_macro 0.02}, confidence 0.95" in output


BAD_INPUTS = {
    "predictions without gold": (
        {"eval/predictions.csv": "row_id,predicted,score_a,score_b\n0,a,0.9,0.1\n"},
        [],
        "missing column(s) gold",
    ),
    "predictions without predicted": (
        {"eval/predictions.csv": "row_id,gold,score_a,score_b\n0,a,0.9,0.1\n"},
        [],
        "missing column(s) predicted",
    ),
    "an unknown predicted label": (
        {"eval/predictions.csv": GOOD_PREDICTIONS.replace("\n5,a,a,", "\n5,a,c,")},
        [],
        "predicted label 'c' has no score_ column",
    ),
    "a score that is not a number": (
        {"eval/predictions.csv": GOOD_PREDICTIONS.replace("\n5,a,a,0.9", "\n5,a,a,nan")},
        [],
        "column 'score_a' holds values that are not finite numbers",
    ),
    "metrics.json holding a list": ({"metrics.json": "[1, 2]"}, [], "holds a list"),
    "a gated metric that is nan": (
        {"metrics.json": '{"accuracy": NaN, "n_test": 60}'},
        [],
        "metric accuracy is not a finite number",
    ),
    "a row-count mismatch": (
        {"metrics.json": '{"accuracy": 1.0, "n_test": 61}'},
        [],
        "has 60 rows but metrics.json says n_test 61",
    ),
    "--confidence 1.5": ({}, ["--confidence", "1.5"], "--confidence 1.5"),
    "--n-bootstrap 0": ({}, ["--n-bootstrap", "0"], "--n-bootstrap 0"),
    "--tolerance nan": ({}, ["--tolerance", "accuracy=nan"], "accuracy=nan: a tolerance must be"),
    "--tolerance negative": ({}, ["--tolerance", "accuracy=-1"], "a tolerance must be"),
    "a broken params.yaml": ({"params.yaml": "gate: [\n"}, [], "not valid YAML"),
    "a nan tolerance in the candidate's params": (
        {"params.yaml": PARAMS.replace("0.02", ".nan")},
        [],
        "gate.tolerance: accuracy: a tolerance must be a finite number >= 0",
    ),
    "an unknown revision": ({}, ["--baseline", "no-such-branch"], "not a git revision"),
    # a misspelled metric would silently leave the gate
    "a misspelled tolerance in the candidate's params": (
        {"params.yaml": PARAMS.replace("accuracy: 0.02", "acuracy: 0.02")},
        [],
        "gate.tolerance: 'acuracy' is not a metric of task multiclass (did you mean 'accuracy'?)",
    ),
    "an empty tolerance in the candidate's params": (
        {"params.yaml": PARAMS.replace("\n    accuracy: 0.02", " {}")},
        [],
        "gate.tolerance: {} gates nothing",
    ),
    "--tolerance of a misspelled metric": (
        {},
        ["--tolerance", "f1macro=0.5"],
        "--tolerance: 'f1macro' is not a metric of task multiclass (did you mean 'f1_macro'?)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_exit_2_with_one_line(gate_repo: Path, case: str) -> None:
    files, args, words = BAD_INPUTS[case]
    for name, text in files.items():
        (gate_repo / name).write_text(text)
    code, output = check_metrics(gate_repo, *args)
    assert code == 2, output
    assert output.startswith("error: ") and output.count("\n") == 1, output
    assert words in output, output


def test_a_nan_tolerance_in_the_baseline_is_exit_2(gate_repo: Path) -> None:
    (gate_repo / "params.yaml").write_text(PARAMS.replace("0.02", ".nan"))
    git(gate_repo, "commit", "-qam", "nan tolerance")
    code, output = check_metrics(gate_repo, "--candidate", "HEAD")
    assert code == 2 and "HEAD:params.yaml: gate.tolerance: accuracy" in output, output


def test_md_replaces_an_earlier_report_and_keeps_any_other_file(gate_repo: Path) -> None:
    report = gate_repo / "gate.md"
    code, output = check_metrics(gate_repo, "--md", str(report))
    assert code == 0, output
    first = report.read_text()
    assert first.startswith("### Metrics gate: ")
    code, output = check_metrics(gate_repo, "--md", str(report))  # an earlier report: replaced
    assert code == 0 and report.read_text() == first, output
    notes = gate_repo / "notes.md"
    notes.write_text("# my notes\n")
    code, output = check_metrics(gate_repo, "--md", str(notes))
    assert code == 2 and output.startswith(f"error: --md {notes}: exists and is not"), output
    assert output.count("\n") == 1 and notes.read_text() == "# my notes\n"


def test_a_missing_repo_folder_is_exit_2(tmp_path: Path) -> None:
    code, output = check_metrics(tmp_path / "nowhere")
    assert code == 2 and output.startswith("error: --repo") and "no such folder" in output


@pytest.mark.parametrize(
    ("task", "gated"),
    [
        ("binary", {"accuracy", "f1_macro"}),
        ("multiclass", {"accuracy", "f1_macro"}),
        ("multilabel", {"f1_macro", "f1_micro"}),
        ("regression", {"r2"}),
    ],
)
def test_auto_tolerance_gates_metrics_the_task_writes(task: str, gated: set[str]) -> None:
    # `-S task=regression` alone must leave a gate with metrics that regression writes
    from bertpipe.metric_names import METRICS_BY_TASK
    from bertpipe.params import GateParams, Params, resolve_gate, resolve_task_defaults

    assert GateParams().tolerance == "auto"
    resolved = resolve_gate(GateParams(), task)
    assert set(resolved.tolerance) == gated
    assert gated <= set(METRICS_BY_TASK[task])
    params = resolve_task_defaults(Params.model_validate({"task": task}))
    assert params.gate.tolerance == resolved.tolerance
    # an explicit mapping is kept as written
    chosen = GateParams.model_validate({"tolerance": {"mse": 0.5}})
    assert resolve_gate(chosen, task).tolerance == {"mse": 0.5}


# --- a gated metric that is no finite number, or disagrees with the predictions (issue 25) -------

BROKEN_CANDIDATES = {
    # the case: "0.9" as text, while the true accuracy fell
    "a string": ('{"accuracy": "0.9", "n_test": 60}', 'it holds a string ("0.9")'),
    "null": ('{"accuracy": null, "n_test": 60}', "it holds null"),
    "a boolean": ('{"accuracy": true, "n_test": 60}', "it holds a boolean (true)"),
    "an object": ('{"accuracy": {"value": 1.0}, "n_test": 60}', "it holds an object"),
    "a list": ('{"accuracy": [1.0], "n_test": 60}', "it holds a list"),
    "Infinity": ('{"accuracy": Infinity, "n_test": 60}', "it holds inf"),
    "-Infinity": ('{"accuracy": -Infinity, "n_test": 60}', "it holds -inf"),
    "an overflowing float": ('{"accuracy": 1e400, "n_test": 60}', "it holds inf"),
    "an integer beyond floats": ('{"accuracy": 1' + "0" * 400 + ', "n_test": 60}', "it holds 1000"),
    "missing": ('{"n_test": 60}', "gated metric accuracy is missing from its metrics file"),
    "nested under another key": ('{"test": {"accuracy": 1.0}, "n_test": 60}', "is missing"),
    "an empty object": ("{}", "gated metric accuracy is missing"),
}


@pytest.mark.parametrize("predictions", ["collapsed", "good", "none"])
@pytest.mark.parametrize("case", list(BROKEN_CANDIDATES))
def test_a_gated_metric_the_candidate_lacks_or_holds_as_no_number_is_exit_2(
    gate_repo: Path, case: str, predictions: str
) -> None:
    text, words = BROKEN_CANDIDATES[case]
    (gate_repo / "metrics.json").write_text(text)
    if predictions == "collapsed":
        (gate_repo / "eval/predictions.csv").write_text(COLLAPSED_PREDICTIONS)
    elif predictions == "none":
        (gate_repo / "eval/predictions.csv").unlink()
    code, output = check_metrics(gate_repo)
    assert code == 2, output
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: workspace: "), output
    assert words in lines[0], output
    assert "the candidate is broken, which is not a regression" in lines[0], output
    assert "PASS" not in output


def test_a_candidate_without_the_predictions_the_baseline_has_is_exit_2(gate_repo: Path) -> None:
    # deleting them would skip the paired test and the re-scoring, and let the file's own
    # figures pass: the candidate must not choose that looser rule
    (gate_repo / "eval/predictions.csv").unlink()
    code, output = check_metrics(gate_repo)
    assert code == 2, output
    assert output.startswith("error: workspace: its per-example predictions are missing"), output
    assert output.count("\n") == 1 and "PASS" not in output


def test_without_the_baselines_predictions_the_tolerance_alone_decides(gate_repo: Path) -> None:
    git(gate_repo, "rm", "-q", "eval/predictions.csv")
    git(gate_repo, "commit", "-qm", "no predictions")
    code, output = check_metrics(gate_repo, "--candidate", "HEAD")
    assert code == 0, output
    assert "the baseline has no per-example predictions: tolerance alone decides" in output


def test_a_broken_baseline_metric_is_exit_2(gate_repo: Path) -> None:
    (gate_repo / "metrics.json").write_text('{"accuracy": "1.0", "n_test": 60}')
    git(gate_repo, "commit", "-qam", "a string metric")
    code, output = check_metrics(gate_repo, "--candidate", "HEAD")
    assert code == 2, output
    assert output.startswith("error: HEAD: metric accuracy is not a finite number"), output
    assert "the baseline is broken" in output


def test_the_gate_trusts_the_predictions_over_the_metrics_file(gate_repo: Path) -> None:
    # the file claims the baseline's accuracy; the predictions are those of a collapsed model
    (gate_repo / "eval/predictions.csv").write_text(COLLAPSED_PREDICTIONS)
    code, output = check_metrics(gate_repo)
    assert code == 1, output
    assert "| accuracy | 1.0000 | 0.6667 |" in output and "**regression**" in output
    assert "workspace: its metrics file says accuracy 1, its predictions give 0.666667" in output


def test_a_metrics_file_that_disagrees_with_good_predictions_never_passes(gate_repo: Path) -> None:
    # a drop the file claims but the predictions do not show is no regression, and no PASS
    (gate_repo / "metrics.json").write_text('{"accuracy": 0.5, "n_test": 60}')
    code, output = check_metrics(gate_repo)
    assert code == 2, output
    assert output.startswith(
        "error: workspace: its metrics file says accuracy 0.5 but its predictions give 1"
    ), output
    assert "metrics and predictions disagree" in output


def test_a_regression_candidate_against_a_multiclass_baseline_says_the_task_changed(
    gate_repo: Path,
) -> None:
    (gate_repo / "params.yaml").write_text("task: regression\n")
    (gate_repo / "metrics.json").write_text('{"mse": 0.1, "r2": 0.9, "n_test": 60}')
    (gate_repo / "eval/predictions.csv").write_text(
        "row_id,gold,predicted\n" + "".join(f"{i},{i},{i + 0.5}\n" for i in range(60))
    )
    code, output = check_metrics(gate_repo)
    assert code == 2, output
    assert output.startswith("error: the task changed (multiclass -> regression)"), output
    assert "check gate.tolerance" not in output


def test_the_file_value_and_the_rescored_value_agree_on_real_runs() -> None:
    rng = np.random.default_rng(4)
    gold = rng.choice(NAMES, 300).tolist()
    predicted = [g if rng.random() < 0.7 else rng.choice(NAMES) for g in gold]
    run = side(predictions(gold, predicted), "run")
    assert gate.rescore(run.predictions, "multiclass", list(run.metrics)) == pytest.approx(
        run.metrics, abs=1e-6
    )


# --- the property: PASS only if every gated metric is a finite number within tolerance ----------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()  # NaN and the infinities included
    | st.text(max_size=5)
    | st.sampled_from(["0.9", "1.0", "nan", ""]),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=4,
)
METRIC_VALUES = st.one_of(
    st.floats(min_value=0, max_value=1), st.sampled_from([1.0, 0.99, 0.98, 0.97]), JSON_VALUES
)
GATED = ["accuracy", "f1_macro"]


def _within(old: float, new: Any, tolerance: float) -> bool:
    if isinstance(new, bool) or not isinstance(new, int | float):
        return False
    try:
        new = float(new)
    except OverflowError:
        return False
    return math.isfinite(new) and old - new <= tolerance + 1e-9


@given(
    candidate=st.dictionaries(st.sampled_from([*GATED, "n_test", "loss"]), METRIC_VALUES),
    baseline_values=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    tolerance=st.floats(0, 0.5),
)
def test_property_pass_only_if_every_gated_metric_is_a_finite_number_within_tolerance(
    candidate: dict[str, Any], baseline_values: tuple[float, float], tolerance: float
) -> None:
    """Any metrics.json a candidate can hold, through the gate's own parser and decision:
    without predictions the tolerance alone decides, so PASS must mean every gated metric is
    a finite number no further below the baseline than its tolerance."""
    text = json.dumps(candidate)  # NaN and Infinity as Python's json writes them
    metrics, broken = gate.parse_metrics(json.loads(text))
    old = dict(zip(GATED, baseline_values, strict=True))
    baseline = RunArtifacts("HEAD", old, None, "multiclass")
    new = RunArtifacts("workspace", metrics, None, "multiclass", broken)
    tolerances = dict.fromkeys(GATED, tolerance)
    try:
        result = decide(baseline, new, tolerances, n_resamples=100)
    except UnusableInput:
        return  # exit 2: never a PASS
    if not result.regressed:
        for metric in GATED:
            assert _within(old[metric], candidate.get(metric), tolerance), (metric, candidate)


@given(candidate=st.dictionaries(st.sampled_from([*GATED, "n_test"]), METRIC_VALUES))
def test_property_through_the_command_with_paired_predictions(
    candidate: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same, through `bertpipe check-metrics` on a repository whose candidate keeps the
    baseline's predictions: PASS only if the file's values are finite and within tolerance."""
    repo = _property_repo(tmp_path_factory)
    (repo / "metrics.json").write_text(json.dumps(candidate))
    code, output = check_metrics(repo, "--tolerance", "f1_macro=0.02", "--n-bootstrap", "100")
    assert code in (0, 1, 2), output
    if code == 0:
        assert "PASS" in output
        for metric in GATED:
            assert _within(1.0, candidate.get(metric), 0.02), (metric, candidate, output)
    else:
        assert "PASS" not in output


_REPOS: dict[str, Path] = {}


def _property_repo(factory: pytest.TempPathFactory) -> Path:
    """One repository for every example: HEAD holds a perfect run (accuracy and f1_macro 1)."""
    if "repo" not in _REPOS:
        repo = factory.mktemp("property") / "repo"
        (repo / "eval").mkdir(parents=True)
        (repo / "params.yaml").write_text(PARAMS)
        (repo / "metrics.json").write_text(
            json.dumps({"accuracy": 1.0, "f1_macro": 1.0, "n_test": 60})
        )
        (repo / "eval/predictions.csv").write_text(GOOD_PREDICTIONS)
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "baseline")
        _REPOS["repo"] = repo
    return _REPOS["repo"]
