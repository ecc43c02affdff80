"""The decision fitted on validation: thresholds, temperatures, calibration metrics, folding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import special

from bertpipe.artifacts import save_model_folder
from bertpipe.decision import (
    CONFIG_KEY,
    DECISION_FILE,
    TEMPERATURE_BOUNDS,
    Decision,
    check_decision_params,
    fit_decision,
    fit_temperatures,
    fit_threshold,
    fold_temperature,
    legacy_decision,
    read_decision,
)
from bertpipe.errors import UserError
from bertpipe.metrics import calibration_metrics, class_curve_rows, reliability_rows
from bertpipe.model import load_classifier, load_tokenizer, load_trained
from bertpipe.params import Params
from bertpipe.predictions import read_predictions, write_predictions

# --- thresholds ------------------------------------------------------------------------------


def test_the_f1_maximising_threshold_of_a_planted_case() -> None:
    # ranked by score: 1 1 0 1 | 0 0 ...: predicting the top four gives tp 3, fp 1, fn 0 ->
    # F1 6/7, better than the top two (F1 0.8) or the top one; the cut falls between 0.6 and 0.4
    scores = np.array([0.95, 0.9, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    truth = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    assert fit_threshold(scores, truth) == pytest.approx(0.5)
    predicted = scores >= fit_threshold(scores, truth)
    assert predicted.tolist() == [True] * 4 + [False] * 4


def test_the_threshold_never_splits_equal_scores() -> None:
    # three rows share 0.5: either all are positive or none is
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    truth = np.array([1, 1, 0, 0, 0])
    threshold = fit_threshold(scores, truth)
    assert threshold is not None and not 0.1 < threshold <= 0.5  # only the 0.9 row: F1 2/3


def test_target_recall_gives_the_highest_threshold_reaching_it() -> None:
    scores = np.array([0.95, 0.9, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    truth = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    # recall 0.5 needs the top three (two of four positives); 0.75 the top five; 1.0 seven
    assert fit_threshold(scores, truth, target_recall=0.5) == pytest.approx((0.7 + 0.6) / 2)
    assert fit_threshold(scores, truth, target_recall=0.75) == pytest.approx((0.4 + 0.3) / 2)
    assert fit_threshold(scores, truth, target_recall=1.0) == pytest.approx((0.2 + 0.1) / 2)


def test_no_positive_keeps_the_default_and_says_so() -> None:
    assert fit_threshold(np.array([0.2, 0.7]), np.array([0, 0])) is None
    logits = np.array([[2.0, -1.0], [1.0, -2.0], [-1.0, -3.0], [3.0, -1.0]])
    targets = np.array([[1, 0], [1, 0], [0, 0], [1, 0]])
    decision = fit_decision(logits, targets, "multilabel", label_names=["a", "b"])
    assert decision.thresholds[1] == 0.5
    assert "label 'b' has no validation positives: its threshold stays 0.5" in decision.notes
    # both labels are separated on these 4 rows (b by having no positive): neither gets a T
    assert decision.temperatures == (1.0, 1.0)
    assert sum("no temperature could be fitted" in note for note in decision.notes) == 2


def test_one_threshold_per_label_for_multilabel() -> None:
    # label a is decided well at a high score, label b (rare, every sigmoid low) at a low one
    rng = np.random.default_rng(0)
    truth_a, truth_b = rng.integers(0, 2, 400), (rng.random(400) < 0.15).astype(int)
    logits = np.stack(
        [3 * truth_a - 1.5 + rng.normal(0, 0.5, 400), 1.5 * truth_b - 3 + rng.normal(0, 0.3, 400)],
        axis=1,
    )
    targets = np.stack([truth_a, truth_b], axis=1)
    decision = fit_decision(logits, targets, "multilabel", label_names=["a", "b"])
    assert len(decision.thresholds) == 2 and len(decision.temperatures) == 2
    scores = decision.scores(logits)
    # at 0.5 label b is never predicted; at its own threshold it is found
    assert (scores[:, 1] >= 0.5).sum() < (scores[:, 1] >= decision.thresholds[1]).sum()
    for column in range(2):
        ours = f1(targets[:, column], scores[:, column] >= decision.thresholds[column])
        for other in np.linspace(0.05, 0.95, 19):  # no fixed threshold does better
            assert ours >= f1(targets[:, column], scores[:, column] >= other) - 1e-12


def f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    true_positives = float((truth.astype(bool) & predicted).sum())
    return 2 * true_positives / (truth.sum() + predicted.sum())


def test_binary_thresholds_the_positive_class_and_a_number_is_kept() -> None:
    logits = np.array([[0.0, -2.0], [0.0, -1.0], [0.0, 0.5], [0.0, -0.5]])
    targets = np.array([0, 1, 1, 1])
    decision = fit_decision(logits, targets, "binary")
    assert decision.predict(decision.scores(logits)).tolist() == [0, 1, 1, 1]
    fixed = fit_decision(logits, targets, "binary", threshold=0.5)
    assert fixed.thresholds == (0.5,)
    # at 0.5 the positive class is argmax's choice
    scores = fixed.scores(logits)
    assert fixed.predict(scores).tolist() == scores.argmax(axis=1).tolist()
    assert fit_decision(logits, targets, "multiclass").thresholds == ()


# --- temperature ------------------------------------------------------------------------------


def planted_softmax(temperature: float, rows: int = 4000, classes: int = 3) -> tuple:
    """Logits whose labels are drawn from softmax(logits / temperature): calibrated at T."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (rows, classes))
    probabilities = special.softmax(logits / temperature, axis=1)
    targets = np.array([rng.choice(classes, p=row) for row in probabilities])
    return logits, targets


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    log_p = special.log_softmax(logits / temperature, axis=1)
    return float(-log_p[np.arange(len(targets)), targets].mean())


def test_temperature_recovers_a_planted_one_and_lowers_the_nll() -> None:
    logits, targets = planted_softmax(temperature=2.5)
    (temperature,) = fit_temperatures(logits, targets, "multiclass")
    assert temperature == pytest.approx(2.5, rel=0.1)
    assert nll(logits, targets, temperature) < nll(logits, targets, 1.0) - 0.05
    # calibrated scores have a lower ECE than the raw ones
    raw = special.softmax(logits, axis=1)
    calibrated = Decision("multiclass", (temperature,)).scores(logits)
    assert (
        calibration_metrics(targets, calibrated, "multiclass")["ece"]
        < calibration_metrics(targets, raw, "multiclass")["ece"] / 2
    )


def test_one_temperature_per_label_for_multilabel() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (4000, 2))
    planted = np.array([0.5, 3.0])
    targets = (rng.random((4000, 2)) < special.expit(logits / planted)).astype(int)
    temperatures = fit_temperatures(logits, targets, "multilabel")
    assert temperatures == pytest.approx(tuple(planted), rel=0.15)
    assert fit_temperatures(logits[:, :1], np.zeros(4000), "regression") == ()


def test_a_temperature_on_its_bound_is_no_fit() -> None:
    """Validation the model separates perfectly pushes T to 0, scores without signal push it
    up: either way the label keeps T 1 and the decision says why, one line per label."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, size=(60, 3))
    logits = np.column_stack(
        [
            np.where(truth[:, 0] == 1, 2.0, -2.0),  # separated: the NLL falls as T shrinks
            np.where(truth[:, 1] == 1, -1.0, 1.0) * rng.uniform(2, 3, 60),  # reversed signal
            rng.normal(0, 2, 60) + 2 * (truth[:, 2] - 0.5) * 2,  # overlapping: a real fit
        ]
    )
    decision = fit_decision(logits, truth, "multilabel", label_names=["sep", "rev", "real"])
    assert decision.temperatures[:2] == (1.0, 1.0)
    assert TEMPERATURE_BOUNDS[0] < decision.temperatures[2] < TEMPERATURE_BOUNDS[1]
    assert decision.temperatures[2] != 1.0
    unfit = [note for note in decision.notes if "temperature" in note]
    assert len(unfit) == 2
    assert unfit[0].startswith("label 'sep': the model separates the validation split perfectly")
    assert unfit[1].startswith("label 'rev': its scores carry no signal")
    # an under-trained head: logits about -0.013 whatever the text, 7 positives of 20. The NLL
    # falls as T shrinks, but nothing is separated: the note must not say so
    flat = (-0.013 + rng.normal(0, 3e-4, 20))[:, None]
    under = fit_decision(
        flat, np.array([1] * 7 + [0] * 13)[:, None], "multilabel", label_names=["flat"]
    )
    assert under.temperatures == (1.0,)
    assert under.notes[0].startswith("label 'flat': its logits barely vary on the validation")
    # a label with no validation positive (its logits all negative) is not "separated" either
    none = fit_decision(-np.ones((30, 1)), np.zeros((30, 1)), "multilabel", label_names=["none"])
    assert none.notes[0].startswith("label 'none': it has no positive example in the validation")
    # multiclass: one temperature for the model
    classes = rng.integers(0, 3, 90)
    separated = np.eye(3)[classes] * 4.0
    multiclass = fit_decision(separated, classes, "multiclass")
    assert multiclass.temperatures == (1.0,)
    assert multiclass.notes == (
        "the model separates the validation split perfectly, so no temperature could be "
        "fitted: the scores stay unscaled (T 1)",
    )


def planted_pos_weight(rows: int = 6000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validation logits of a multilabel model trained with pos_weight w: weighted BCE is
    minimised by logit(p) + log(w), so each label's logits are the true ones raised by log(w)."""
    rng = np.random.default_rng(11)
    true_logits = rng.normal([-3.0, -1.5, 0.5], 1.5, (rows, 3))
    targets = (rng.random((rows, 3)) < special.expit(true_logits)).astype(int)
    weights = (rows - targets.sum(0)) / targets.sum(0)
    return true_logits + np.log(weights), targets, weights


def test_the_shift_of_pos_weight_is_undone_before_the_temperature() -> None:
    logits, targets, weights = planted_pos_weight()
    shifted = fit_decision(logits, targets, "multilabel", class_weight=weights)
    plain = fit_decision(logits, targets, "multilabel")
    assert shifted.shifts == pytest.approx(tuple(np.log(weights)), abs=1e-6)
    assert plain.shifts == ()
    # the logits were right once shifted, so T is about 1
    assert shifted.temperatures == pytest.approx((1.0, 1.0, 1.0), abs=0.1)
    prevalence = targets.mean(0)
    shifted_scores, plain_scores = shifted.scores(logits), plain.scores(logits)
    # each label's mean score is its rate; a temperature alone leaves the rare ones far above it
    np.testing.assert_allclose(shifted_scores.mean(0), prevalence, atol=0.01)
    assert plain_scores.mean(0)[0] > prevalence[0] + 0.05
    shifted_metrics = calibration_metrics(targets, shifted_scores, "multilabel")
    plain_metrics = calibration_metrics(targets, plain_scores, "multilabel")
    assert shifted_metrics["brier"] < plain_metrics["brier"] - 0.03
    assert shifted_metrics["ece"] <= plain_metrics["ece"]
    # a shift is monotone per label: the fitted thresholds decide every row as before
    np.testing.assert_array_equal(shifted.predict(shifted_scores), plain.predict(plain_scores))
    # pos_weight is a multilabel matter: another task keeps its logits
    assert fit_decision(logits[:, :2], targets[:, 0], "binary", class_weight=weights).shifts == ()


def test_temperature_fitting_is_deterministic() -> None:
    logits, targets = planted_softmax(temperature=0.7, rows=500)
    assert fit_temperatures(logits, targets, "multiclass") == fit_temperatures(
        logits, targets, "multiclass"
    )


# --- calibration metrics ------------------------------------------------------------------------


def test_ece_and_brier_by_hand() -> None:
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    targets = np.array([0, 1, 1, 1])
    # confidences 0.9, 0.8, 0.7, 0.6 fall in bins 13, 11, 10, 8 (of width 1/15): one each;
    # correct: yes, no, yes, yes -> |1-0.9| + |0-0.8| + |1-0.7| + |1-0.6| = 1.6, over 4 = 0.4
    # brier: (0.1^2 + 0.1^2) + (0.8^2 + 0.8^2) + (0.3^2 * 2) + (0.4^2 * 2) = 1.8 over 4 = 0.45
    assert calibration_metrics(targets, scores, "binary") == {"ece": 0.4, "brier": 0.45}
    # two rows in one bin (0.867, 0.933]: |mean correct 0.5 - mean confidence 0.89|
    both = calibration_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.88, 0.12]]), "binary")
    assert both["ece"] == pytest.approx(0.39)


def test_multilabel_ece_uses_every_label_decision() -> None:
    scores = np.array([[0.9, 0.2], [0.4, 0.7]])
    targets = np.array([[1, 0], [1, 1]])
    # decisions at 0.5: conf 0.9 right, 0.8 right, 0.6 wrong, 0.7 right; bins 13, 11, 8, 10
    metrics = calibration_metrics(targets, scores, "multilabel")
    assert metrics["ece"] == pytest.approx((0.1 + 0.2 + 0.6 + 0.3) / 4)
    assert metrics["brier"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.09) / 4)


def test_reliability_rows_count_every_decision() -> None:
    scores = np.array([[0.9, 0.1], [0.92, 0.08], [0.3, 0.7]])
    rows = reliability_rows(np.array([0, 1, 1]), scores, "binary")
    assert [row["count"] for row in rows] == [1, 2]
    assert rows[1] == {"bin": "0.867-0.933", "confidence": 0.91, "accuracy": 0.5, "count": 2}


def test_class_curves_beside_the_micro_average() -> None:
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    rows = class_curve_rows(np.array([0, 1, 2, 1]), scores, "multiclass", ["a", "b", "c"])
    assert {row["class"] for row in rows} == {"a", "b", "c", "micro-average"}


# --- where the decision lives -------------------------------------------------------------------


def test_bad_decision_params_are_one_line() -> None:
    with pytest.raises(UserError, match=r"^train\.threshold: auto is fitted on the validation"):
        check_decision_params(Params(), val_rows=0)
    check_decision_params(Params.model_validate({"train": {"threshold": 0.5}}), val_rows=0)


FAMILIES = ["bert", "roberta", "distilbert", "deberta-v2", "electra"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_folding_divides_the_logits_of_every_family(
    family: str, task: str, tiny_models: dict[str, Path]
) -> None:
    names = ["a", "b", "c"]
    problem = (
        "multi_label_classification" if task == "multilabel" else "single_label_classification"
    )
    model = load_classifier(str(tiny_models[family]), 3, problem, names).eval()
    tokenizer = load_tokenizer(str(tiny_models[family]))
    batch = tokenizer(["chest pain", "a cough at night"], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**batch).logits.double().numpy()
    temperatures = (2.0, 0.5, 4.0) if task == "multilabel" else (2.5,)
    decision = fold_temperature(model, Decision(task, temperatures, ()))
    assert decision.temperature_in_weights
    with torch.no_grad():
        after = model(**batch).logits.double().numpy()
    np.testing.assert_allclose(after, before / np.asarray(temperatures), rtol=1e-4, atol=1e-5)
    # the folded decision scores the new logits as the unfolded one scores the old
    np.testing.assert_allclose(
        decision.scores(after), Decision(task, temperatures).scores(before), atol=1e-5
    )


def test_shifts_and_temperatures_fold_into_the_output_layer(tiny_bert: Path) -> None:
    model = load_classifier(str(tiny_bert), 3, "multi_label_classification", ["a", "b", "c"])
    model.eval()
    batch = load_tokenizer(str(tiny_bert))(
        ["chest pain", "a cough at night"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        before = model(**batch).logits.double().numpy()
    unfolded = Decision("multilabel", (2.0, 0.5, 4.0), (0.3, 0.5, 0.7), shifts=(1.5, -0.5, 3.0))
    folded = fold_temperature(model, unfolded)
    assert folded.temperature_in_weights and folded.shifts == unfolded.shifts
    with torch.no_grad():
        after = model(**batch).logits.double().numpy()
    expected = (before - np.array([1.5, -0.5, 3.0])) / np.array([2.0, 0.5, 4.0])
    np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(folded.scores(after), unfolded.scores(before), atol=1e-5)
    # saved and read back with its shifts; a decision.json written before shifts has none
    assert Decision.from_json(folded.to_json(), "d") == folded
    old = {key: value for key, value in folded.to_json().items() if key != "shifts"}
    assert Decision.from_json(old, "d").shifts == ()
    bad = {**folded.to_json(), "shifts": [1.0]}  # one shift for three labels
    with pytest.raises(UserError, match="not a valid decision"):
        Decision.from_json(bad, "d")


def test_the_decision_is_saved_with_the_model_and_read_back(
    tmp_path: Path, tiny_bert: Path
) -> None:
    names = ["a", "b"]
    model = load_classifier(str(tiny_bert), 2, "multi_label_classification", names)
    tokenizer = load_tokenizer(str(tiny_bert))
    decision = fold_temperature(model, Decision("multilabel", (1.5, 0.8), (0.3, 0.7)))
    folder = tmp_path / "model"
    save_model_folder(folder, model, tokenizer, {"task": "multilabel"}, "# card\n", decision)
    assert read_decision(folder, "multilabel", {}, 2) == decision
    # pipeline() users find it in config.json
    config = json.loads((folder / "config.json").read_text())
    assert config[CONFIG_KEY]["thresholds"] == [0.3, 0.7]
    loaded, _ = load_trained(folder)
    assert getattr(loaded.config, CONFIG_KEY)["temperatures"] == [1.5, 0.8]
    # a folder saved before decision.json: multilabel at its train.threshold, binary by argmax
    (folder / DECISION_FILE).unlink()
    old = read_decision(folder, "multilabel", {"train": {"threshold": 0.4}}, 2)
    assert old == Decision("multilabel", thresholds=(0.4, 0.4))
    assert legacy_decision("binary", {"train": {"threshold": 0.4}}, 2).threshold is None
    (folder / DECISION_FILE).write_text('{"task": "binary", "temperatures": [-1]}')
    with pytest.raises(UserError, match=r"decision\.json: not a valid decision"):
        read_decision(folder, "binary", {}, 2)


def test_predictions_record_per_label_and_binary_thresholds(tmp_path: Path) -> None:
    ids, gold = np.arange(3), np.array([[1, 0], [0, 1], [1, 1]])
    scores = np.array([[0.8, 0.2], [0.1, 0.45], [0.6, 0.5]])
    thresholds = np.array([0.5, 0.4])
    path = tmp_path / "predictions.csv"
    predicted = (scores >= thresholds).astype(np.int64)
    write_predictions(path, ids, gold, predicted, scores, "multilabel", ["a", "b"], thresholds, "|")
    file = read_predictions(path.read_text(), "multilabel", str(path), legacy_threshold=0.5)
    np.testing.assert_array_equal(file.threshold, thresholds)
    binary = tmp_path / "binary.csv"
    write_predictions(
        binary,
        ids,
        np.array([0, 1, 1]),
        np.array([0, 1, 1]),
        scores,
        "binary",
        ["n", "y"],
        0.3,
        "|",
    )
    assert read_predictions(binary.read_text(), "binary", "b", 0.5).threshold == 0.3
    text = binary.read_text().replace(",threshold", ",other")
    assert read_predictions(text, "binary", "b", 0.5).threshold is None  # older files: argmax


@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_pipeline_users_get_the_scores_and_labels_of_predict(
    task: str, tmp_path: Path, tiny_bert: Path
) -> None:
    """The README's recipe: pipeline(top_k=None) scores, thresholds from config.json."""
    from transformers import pipeline

    from bertpipe.predict import Predictor

    names = ["a", "b", "c"] if task == "multilabel" else ["no", "yes"]
    problem = (
        "multi_label_classification" if task == "multilabel" else "single_label_classification"
    )
    torch.manual_seed(0)
    model = load_classifier(str(tiny_bert), len(names), problem, names)
    temperatures = (0.05, 0.1, 0.08) if task == "multilabel" else (0.07,)
    thresholds = (0.3, 0.6, 0.5) if task == "multilabel" else (0.45,)
    decision = fold_temperature(model, Decision(task, temperatures, thresholds))
    folder = tmp_path / "model"
    params = Params(task=task, max_length=32, train={"precision": "fp32"}).model_dump(mode="json")
    tokenizer = load_tokenizer(str(tiny_bert))
    save_model_folder(folder, model, tokenizer, {**params, "label_names": names}, "#\n", decision)

    texts = ["chest pain", "a cough at night", "severe headache and nausea", "ecg changes"]
    classifier = pipeline("text-classification", model=str(folder), truncation=True, device="cpu")
    saved = classifier.model.config.bertpipe_decision
    for piped, predicted in zip(
        classifier(texts, top_k=None), Predictor.load(folder).predict(texts), strict=True
    ):
        scores = {entry["label"]: entry["score"] for entry in piped}
        assert scores == pytest.approx(predicted["scores"], abs=1e-5)
        if task == "multilabel":
            labels = [n for n, t in zip(names, saved["thresholds"], strict=True) if scores[n] >= t]
        else:
            labels = names[1] if scores[names[1]] >= saved["thresholds"][0] else names[0]
        assert labels == predicted["label"]


def test_a_gated_ece_or_brier_fails_when_it_rises() -> None:
    """Not gated by default; named in gate.tolerance, lower is better, by tolerance alone (the
    gate re-scores only the task's decision metrics per example)."""
    from bertpipe.gate import RunArtifacts, decide

    old = RunArtifacts("old", {"f1_macro": 0.8, "ece": 0.03, "brier": 0.2}, None, "multiclass")
    worse = RunArtifacts("new", {"f1_macro": 0.8, "ece": 0.09, "brier": 0.1}, None, "multiclass")
    result = decide(old, worse, {"ece": 0.02, "brier": 0.02})
    regressed = {verdict.metric: verdict.regressed for verdict in result.verdicts}
    assert regressed == {"ece": True, "brier": False}
