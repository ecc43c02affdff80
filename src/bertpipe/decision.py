"""How a model's logits become calibrated probabilities and labels.

After training, the train stage fits a decision on the validation split and saves it with the
model (decision.json, and `bertpipe_decision` in config.json):
- for a multilabel model trained with pos_weight (`class_weights: balanced`), a shift per label,
  log(pos_weight), subtracted from its logit: weighted BCE is minimised by logit(p) + log(w),
  not logit(p), so every sigmoid is pulled up by the weighting, and a temperature alone can
  rescale the logits but not move them back;
- a temperature T (one for binary and multiclass, one per label for multilabel, none for
  regression), fitted by minimising the validation NLL of softmax((logits - shift) / T) or
  sigmoid((logits - shift) / T). Both are folded into the classifier's output layer (the shift
  taken from its bias, then its weight and bias rows divided by T), so the saved model's logits
  are already calibrated, for `pipeline()` users too;
- a threshold on the calibrated probability of the positive class (binary: label index 1) or of
  each label (multilabel): with `train.threshold: auto`, the one that maximises validation F1,
  or the highest that reaches `train.target_recall`; otherwise the number given. Multiclass
  decides by argmax, regression by the value.
Evaluate, `bertpipe predict` and the metrics gate read the saved decision.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import optimize, special

from bertpipe.errors import UserError
from bertpipe.metrics import Threshold, predict_from_scores, scores_from_logits
from bertpipe.model import output_layer
from bertpipe.params import Params

DECISION_FILE = "decision.json"
# the key of the decision in the saved config.json
CONFIG_KEY = "bertpipe_decision"
# the threshold of a label that validation cannot fit (no positive example)
DEFAULT_THRESHOLD = 0.5
# the temperature is searched on log T within these bounds. A validation split that the model
# separates perfectly drives the NLL-optimal T towards 0, scores without signal drive it up:
# an optimum on a bound is no fit, and that label keeps T = 1 (DEFAULT_TEMPERATURE) with a note
TEMPERATURE_BOUNDS = (0.05, 20.0)
DEFAULT_TEMPERATURE = 1.0
# why the NLL's minimum lies on the upper bound
_NO_SIGNAL = "its scores carry no signal on the validation split"
# why it lies on the lower bound: the split is separated perfectly (or one-sided), or else the
# logits are too close together for any T in bounds (an under-trained head)
_SEPARATED = "the model separates the validation split perfectly"
_NO_SPREAD = "its logits barely vary on the validation split (the NLL falls as T shrinks to 0.05)"


@dataclass(frozen=True)
class Decision:
    """A fitted decision. `temperatures`: () for regression, one for binary and multiclass, one
    per label for multilabel. `thresholds`: one for binary, one per label for multilabel, ()
    for multiclass, regression, and binary models saved before thresholds (argmax).
    `shifts`: one per label (multilabel with pos_weight), subtracted from the logits before the
    temperature; () for none. `temperature_in_weights`: the model's output layer already
    applies the shifts and the temperature."""

    task: str
    temperatures: tuple[float, ...] = ()
    thresholds: tuple[float, ...] = ()
    temperature_in_weights: bool = False
    # why a threshold or a temperature kept its default, one line each (for the model card)
    notes: tuple[str, ...] = ()
    shifts: tuple[float, ...] = ()

    @property
    def threshold(self) -> Threshold:
        """The threshold as predict_from_scores and compute_metrics take it."""
        if not self.thresholds:
            return None
        if self.task == "multilabel":
            return np.asarray(self.thresholds, dtype=np.float64)
        return self.thresholds[0]

    def calibrated_logits(self, logits: np.ndarray) -> np.ndarray:
        """(logits - shift) / T, unless the model's output layer already applies them."""
        logits = np.asarray(logits, dtype=np.float64)
        if not self.temperature_in_weights:
            if self.shifts:
                logits = logits - np.asarray(self.shifts)
            if self.temperatures:
                logits = logits / np.asarray(self.temperatures)
        return logits

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (the value for regression) from the model's (n, k) logits."""
        return scores_from_logits(self.calibrated_logits(logits), self.task)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return predict_from_scores(scores, self.task, self.threshold)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "temperatures": list(self.temperatures),
            "thresholds": list(self.thresholds),
            "temperature_in_weights": self.temperature_in_weights,
            "notes": list(self.notes),
            "shifts": list(self.shifts),
        }

    @classmethod
    def from_json(cls, raw: Any, source: str) -> Decision:
        try:
            decision = cls(
                task=str(raw["task"]),
                temperatures=tuple(float(t) for t in raw["temperatures"]),
                thresholds=tuple(float(t) for t in raw["thresholds"]),
                temperature_in_weights=bool(raw["temperature_in_weights"]),
                notes=tuple(str(note) for note in raw.get("notes", [])),
                # a decision saved before shifts existed has none
                shifts=tuple(float(shift) for shift in raw.get("shifts", [])),
            )
        except (KeyError, TypeError, ValueError):
            decision = None
        valid = (
            decision is not None
            and all(math.isfinite(t) and t > 0 for t in decision.temperatures)
            and all(math.isfinite(shift) for shift in decision.shifts)
            and (not decision.shifts or len(decision.shifts) == len(decision.temperatures))
        )
        if not valid or not all(0 < t < 1 for t in decision.thresholds):
            raise UserError(
                f"{source}: not a valid decision (temperatures > 0, thresholds in (0, 1), "
                "finite shifts); "
                "train the model again with dvc repro"
            )
        return decision


def check_decision_params(params: Params, val_rows: int) -> None:
    """What the schema cannot check alone, before any training time is spent."""
    train = params.train
    if train.threshold == "auto" and val_rows == 0:
        raise UserError(
            "train.threshold: auto is fitted on the validation split, which has no rows; "
            "raise split.val_size, or set train.threshold to a number"
        )


def _softmax_nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    log_probabilities = special.log_softmax(logits / temperature, axis=1)
    return float(-log_probabilities[np.arange(len(targets)), targets].mean())


def _sigmoid_nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    # -log sigmoid(z) for positives, -log(1 - sigmoid(z)) for negatives, without overflow
    return float((np.logaddexp(0.0, scaled) - targets * scaled).mean())


def _best_temperature(nll: Any, low_reason: str) -> float | str:
    """The T in TEMPERATURE_BOUNDS that minimises `nll`; when the minimum is on a bound (the
    NLL keeps falling beyond it, so nothing was fitted), the reason instead, as a phrase:
    `low_reason` for the lower bound, _NO_SIGNAL for the upper one."""
    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    result = optimize.minimize_scalar(
        lambda log_t: nll(math.exp(log_t)), bounds=(low, high), method="bounded"
    )
    best = math.exp(float(result.x))
    # a minimum inside the bounds costs less than both bounds do. Where the NLL only falls
    # towards a bound, the search stops short of it, once the NLL is flat to float precision
    # (a separated split's NLL is about 0 well before T = 0.05), so compare the bounds' NLL
    for reason, bound in zip((low_reason, _NO_SIGNAL), TEMPERATURE_BOUNDS, strict=True):
        if nll(bound) <= nll(best) + 1e-9:
            return reason
    return round(best, 6)


def fit_temperatures(logits: np.ndarray, targets: np.ndarray, task: str) -> tuple[float | str, ...]:
    """The temperature(s) that minimise the validation NLL: one (softmax), one per label
    (sigmoid), none for regression or an empty split. A phrase in place of a temperature says
    why none could be fitted (`_best_temperature`)."""
    logits = np.asarray(logits, dtype=np.float64)
    if task == "regression" or len(logits) == 0:
        return ()
    if task == "multilabel":
        targets = np.asarray(targets, dtype=np.float64)
        return tuple(
            _best_temperature(
                lambda t, column=column: _sigmoid_nll(logits[:, column], targets[:, column], t),
                _sigmoid_low_reason(logits[:, column], targets[:, column]),
            )
            for column in range(logits.shape[1])
        )
    targets = np.asarray(targets, dtype=np.int64)
    separated = bool((logits.argmax(axis=1) == targets).all())
    return (
        _best_temperature(
            lambda t: _softmax_nll(logits, targets, t), _SEPARATED if separated else _NO_SPREAD
        ),
    )


def _sigmoid_low_reason(logits: np.ndarray, targets: np.ndarray) -> str:
    """Why one label's NLL would fall below the lowest temperature."""
    positives, negatives = logits[targets == 1], logits[targets == 0]
    if len(positives) == 0:
        return "it has no positive example in the validation split"
    if len(negatives) == 0:
        return "it is on every row of the validation split"
    if positives.min() > 0 > negatives.max():
        return _SEPARATED
    return _NO_SPREAD


def fit_threshold(
    scores: np.ndarray, truth: np.ndarray, target_recall: float | None = None
) -> float | None:
    """The threshold on `scores` (predict positive where score >= threshold) that maximises F1,
    or the highest one whose recall reaches `target_recall`; None without a positive example.

    The threshold is set halfway between the lowest score predicted positive and the next lower
    score, so that the validation decisions are exactly those measured, without the rule sitting
    on one example's score.
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth).astype(bool)
    positives = int(truth.sum())
    if positives == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    ranked, ranked_truth = scores[order], truth[order]
    true_positives = np.cumsum(ranked_truth)
    predicted = np.arange(1, len(ranked) + 1)
    # a cut can only fall after the last of a run of equal scores
    cuts = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    if target_recall is None:
        f1 = 2 * true_positives[cuts] / (predicted[cuts] + positives)
        cut = cuts[int(np.argmax(f1))]  # the first maximum: the highest threshold among ties
    else:
        recall = true_positives[cuts] / positives
        # a float tolerance: 0.3 recall of 10 positives is 3 / 10, not 0.30000000000000004
        cut = cuts[int(np.argmax(recall >= target_recall - 1e-9))]
    lower = ranked[cut + 1] if cut + 1 < len(ranked) else 0.0
    threshold = (ranked[cut] + lower) / 2
    return float(min(max(threshold, np.finfo(np.float64).tiny), np.nextafter(1.0, 0.0)))


def _temperatures_with_notes(
    logits: np.ndarray, targets: np.ndarray, task: str, names: list[str]
) -> tuple[tuple[float, ...], list[str]]:
    """The fitted temperatures, T 1 where none could be fitted, and a note for each of those."""
    temperatures, notes = [], []
    for index, fitted in enumerate(fit_temperatures(logits, targets, task)):
        if isinstance(fitted, str):
            label = f"label '{names[index]}': " if task == "multilabel" else ""
            notes.append(
                f"{label}{fitted}, so no temperature could be fitted: the scores stay unscaled "
                f"(T {DEFAULT_TEMPERATURE:g})"
            )
            fitted = DEFAULT_TEMPERATURE
        temperatures.append(fitted)
    return tuple(temperatures), notes


def _thresholds_with_notes(
    scores: np.ndarray,
    targets: np.ndarray,
    task: str,
    names: list[str],
    threshold: float | str,
    target_recall: float | None,
) -> tuple[tuple[float, ...], list[str]]:
    """One threshold for binary (on the positive class), one per label for multilabel, and a
    note for each that validation could not fit."""
    if task == "binary":
        columns = [(scores[:, 1], np.asarray(targets) == 1, "the positive class")]
    else:
        columns = [
            (scores[:, i], np.asarray(targets)[:, i] == 1, f"label '{names[i]}'")
            for i in range(scores.shape[1])
        ]
    thresholds, notes = [], []
    for column_scores, truth, name in columns:
        fitted = None
        if threshold == "auto":
            fitted = fit_threshold(column_scores, truth, target_recall)
            if fitted is None:
                notes.append(
                    f"{name} has no validation positives: its threshold stays {DEFAULT_THRESHOLD}"
                )
        else:
            fitted = float(threshold)
        # kept as fitted, not rounded: a very confident label's best cut can lie at 1e-9, and
        # rounding it to 1e-6 would decide validation rows otherwise than the fit did
        thresholds.append(DEFAULT_THRESHOLD if fitted is None else fitted)
    return tuple(thresholds), notes


def fit_decision(
    logits: np.ndarray,
    targets: np.ndarray,
    task: str,
    threshold: float | str = "auto",
    target_recall: float | None = None,
    label_names: list[str] | None = None,
    class_weight: Any = None,
) -> Decision:
    """The decision for a model whose validation logits are `logits` ((n, k); (n, 1) for
    regression) and targets `targets`: for multilabel trained with a `class_weight` (BCE's
    pos_weight), the shifts log(pos_weight) first, then temperatures, then thresholds on the
    calibrated probabilities. Another task's class weight moves no logit to undo."""
    names = label_names or [str(i) for i in range(np.shape(logits)[1])]
    shifts: tuple[float, ...] = ()
    if task == "multilabel" and class_weight is not None:
        shifts = tuple(round(float(shift), 6) for shift in np.log(np.asarray(class_weight)))
    unshifted = Decision(task, shifts=shifts).calibrated_logits(logits)
    temperatures, notes = _temperatures_with_notes(unshifted, targets, task, names)
    calibrated = Decision(task, temperatures, notes=tuple(notes), shifts=shifts)
    if task in ("multiclass", "regression"):
        return calibrated
    thresholds, threshold_notes = _thresholds_with_notes(
        calibrated.scores(logits), targets, task, names, threshold, target_recall
    )
    return Decision(
        task, temperatures, thresholds, notes=tuple(notes + threshold_notes), shifts=shifts
    )


def fold_temperature(model: torch.nn.Module, decision: Decision) -> Decision:
    """Subtract the shifts from the output layer's bias, then divide its weight and bias rows by
    the temperature(s), so that the model's logits become (logits - shift) / T; the decision
    returned says so. Without such a layer (or without a bias to take shifts from) the model is
    left as it is, and the decision applies both at scoring time."""
    layer = output_layer(model)
    if not decision.temperatures or decision.temperature_in_weights or layer is None:
        return decision
    if decision.shifts and layer.bias is None:
        return decision
    scale = torch.tensor(decision.temperatures, dtype=torch.float64).reciprocal()
    scale = scale.expand(layer.out_features)  # one temperature for every class, or one per label
    with torch.no_grad():
        if decision.shifts:
            shifts = torch.tensor(decision.shifts, dtype=torch.float64)
            layer.bias.sub_(shifts.to(layer.bias.dtype).to(layer.bias.device))
        layer.weight.mul_(scale.to(layer.weight.dtype).unsqueeze(1).to(layer.weight.device))
        if layer.bias is not None:
            layer.bias.mul_(scale.to(layer.bias.dtype).to(layer.bias.device))
    return dataclasses.replace(decision, temperature_in_weights=True)


def legacy_decision(task: str, trained: dict[str, Any], num_labels: int) -> Decision:
    """The decision of a model folder saved before decision.json: no temperature; multilabel at
    its `train.threshold` (0.5 if absent), binary by argmax as it was evaluated."""
    if task != "multilabel":
        return Decision(task)
    threshold = trained.get("train", {}).get("threshold", DEFAULT_THRESHOLD)
    if not isinstance(threshold, (int, float)):
        threshold = DEFAULT_THRESHOLD
    return Decision(task, thresholds=(float(threshold),) * num_labels)


def read_decision(
    model_dir: str | Path, task: str, trained: dict[str, Any], num_labels: int
) -> Decision:
    """The decision saved in `model_dir`, or the legacy one of an older folder."""
    path = Path(model_dir) / DECISION_FILE
    if not path.is_file():
        return legacy_decision(task, trained, num_labels)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = None
    return Decision.from_json(raw, str(path))


def warn_notes(decision: Decision) -> None:
    for note in decision.notes:
        print(f"warning: {note}", file=sys.stderr)


def decision_card_lines(decision: Decision, label_names: list[str]) -> str:
    """The model card's section on the saved decision: values and how to apply them."""
    if decision.task == "regression":
        return ""
    if decision.task == "multilabel":
        rows = "\n".join(
            f"| `{name}` | {shift} | {temperature} | {threshold} |"
            for name, shift, temperature, threshold in zip(
                label_names,
                decision.shifts or (0,) * len(label_names),
                decision.temperatures or ("-",) * len(label_names),
                decision.thresholds,
                strict=True,
            )
        )
        table = f"| label | shift | temperature | threshold |\n| --- | --- | --- | --- |\n{rows}\n"
        rule = "a label applies where its sigmoid score reaches its threshold"
    else:
        temperature = decision.temperatures[0] if decision.temperatures else "none"
        table = f"- Temperature: {temperature}\n"
        if decision.task == "binary" and decision.thresholds:
            table += f"- Threshold on the score of `{label_names[1]}`: {decision.thresholds[0]}\n"
            rule = f"the label is `{label_names[1]}` where its softmax score reaches the threshold"
        else:
            rule = "the label is the class with the highest softmax score"
    shifted = bool(decision.shifts)
    what = "The shifts and temperatures are" if shifted else "The temperature is"
    applied = "(logit - shift) / temperature" if shifted else "divided by it"
    undo = "Subtract each label's shift from its logit, then divide" if shifted else "Divide"
    folded = (
        f"{what} folded into the saved output layer: the model's logits are already {applied}, "
        "so its softmax/sigmoid scores are the calibrated probabilities."
        if decision.temperature_in_weights
        else f"{undo} the logits by the temperature before the softmax/sigmoid."
    )
    if shifted:
        folded += (
            " A shift is log(pos_weight): the training loss weighted the label's positives, "
            "which raised its logits by that much."
        )
    notes = "".join(f"- Note: {note}\n" for note in decision.notes)
    return (
        "## Decision (fitted on the validation split)\n\n"
        f"{table}{notes}\n{folded} Then {rule}. The same values are in `{DECISION_FILE}` and "
        f"under `{CONFIG_KEY}` in config.json (`model.config.{CONFIG_KEY}`).\n\n"
    )
