"""eval/predictions.csv, the per-example test predictions: the one module that writes and reads it.

One row per test example, in the order of the test split:
- `row_id`: the example's row in the cleaned table;
- `gold` and `predicted`: label names (joined with `label_separator` for multilabel), or numbers
  for regression;
- multilabel only: the score at or above which a label was predicted: `threshold_<label>`, one
  column per label (or `threshold`, one for all), and `label_separator`, the string that joins
  the names in `gold` and `predicted` (the same value on every row, so that the file stays one
  plain CSV that any tool reads);
- binary with a fitted decision: `threshold`, the score of the positive class (label index 1)
  at or above which it was predicted (none: argmax);
- `score_<label>`: one column per label, rounded to 6 decimals (none for regression).

The evaluate stage writes it; the metrics gate (`bertpipe check-metrics`) re-scores two
revisions from it. Files written before `threshold` and `label_separator` were recorded are still
read: their separator was always `|`, their multilabel threshold was that revision's
`train.threshold`, and binary decided by argmax.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bertpipe.errors import UserError
from bertpipe.files import atomic_path
from bertpipe.metrics import Threshold

SCORE_PREFIX = "score_"
THRESHOLD_PREFIX = "threshold_"
# what files written before the separator was recorded joined multilabel names with
LEGACY_LABEL_SEPARATOR = "|"
REQUIRED_COLUMNS = ("row_id", "gold", "predicted")
# row ids above 2**53 have no exact float64, so they cannot be told apart once read
MAX_ROW_ID = 2**53


def _joined_names(row: np.ndarray, label_names: Sequence[str], separator: str) -> str:
    return separator.join(label_names[i] for i in np.flatnonzero(row))


def write_predictions(
    path: str | Path,
    row_ids: np.ndarray,
    targets: np.ndarray,
    predicted: np.ndarray,
    scores: np.ndarray,
    task: str,
    label_names: Sequence[str],
    threshold: Threshold,
    label_separator: str,
) -> None:
    """The file's rows from encoded targets, predictions and (n, labels) scores, written
    atomically."""
    frame = pd.DataFrame({"row_id": row_ids})
    if task == "regression":
        frame["gold"] = targets.astype(np.float64)
        frame["predicted"] = predicted.astype(np.float64)
    else:
        if task == "multilabel":
            frame["gold"] = [_joined_names(row, label_names, label_separator) for row in targets]
            frame["predicted"] = [
                _joined_names(row, label_names, label_separator) for row in predicted
            ]
            if np.ndim(threshold) == 1:
                for name, value in zip(label_names, np.asarray(threshold), strict=True):
                    frame[f"{THRESHOLD_PREFIX}{name}"] = float(value)
            else:
                frame["threshold"] = 0.5 if threshold is None else float(threshold)
            frame["label_separator"] = label_separator
        else:
            if task == "binary" and threshold is not None:
                frame["threshold"] = float(threshold)
            frame["gold"] = [label_names[i] for i in targets]
            frame["predicted"] = [label_names[i] for i in predicted]
        for column, name in enumerate(label_names):
            frame[f"{SCORE_PREFIX}{name}"] = np.round(scores[:, column], 6)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


@dataclass
class Predictions:
    """A checked predictions file: its rows, label names, threshold (one number, one per label
    for multilabel, or None: binary by argmax) and label separator."""

    frame: pd.DataFrame
    label_names: list[str]
    threshold: Threshold
    label_separator: str

    def targets_and_scores(self, task: str) -> tuple[np.ndarray, np.ndarray]:
        """(targets, scores) as compute_metrics takes them, rebuilt from the file."""
        if task == "regression":
            return self.frame["gold"].to_numpy(float), self.frame["predicted"].to_numpy(float)
        scores = self.frame[[f"{SCORE_PREFIX}{name}" for name in self.label_names]].to_numpy(float)
        if task == "multilabel":
            return self._label_sets("gold"), scores
        index = {name: i for i, name in enumerate(self.label_names)}
        return self.frame["gold"].map(index).to_numpy(np.int64), scores

    def predicted_classes(self) -> np.ndarray:
        """(n,) int64: the stored single-label predictions as class indices into label_names."""
        index = {name: i for i, name in enumerate(self.label_names)}
        return self.frame["predicted"].map(index).to_numpy(np.int64)

    def predicted_sets(self) -> np.ndarray:
        """(n, labels) 0/1: the stored multilabel predictions."""
        return self._label_sets("predicted")

    def _label_sets(self, column: str) -> np.ndarray:
        """(n, labels) 0/1 from a column of joined label names."""
        index = {name: i for i, name in enumerate(self.label_names)}
        sets = np.zeros((len(self.frame), len(self.label_names)), dtype=np.int64)
        for row, cell in enumerate(self.frame[column]):
            for name in filter(None, cell.split(self.label_separator)):
                sets[row, index[name]] = 1
        return sets


def _constant(frame: pd.DataFrame, column: str, source: str) -> object:
    values = frame[column].unique()
    if len(values) != 1:
        raise UserError(
            f"{source}: column '{column}' must hold one value on every row; "
            "rerun the evaluate stage"
        )
    return values[0]


def _check_labels(
    frame: pd.DataFrame, column: str, names: list[str], separator: str | None, source: str
) -> None:
    known = set(names)
    for position, cell in enumerate(frame[column]):
        parts = filter(None, cell.split(separator)) if separator is not None else [cell]
        unknown = [part for part in parts if part not in known]
        if unknown:
            raise UserError(
                f"{source}: row {position + 2}: {column} label '{unknown[0]}' has no score_ "
                f"column (labels: {', '.join(names)}); rerun the evaluate stage"
            )


def _threshold(frame: pd.DataFrame, column: str, source: str) -> float:
    if column not in frame.columns:
        raise UserError(
            f"{source}: no column '{column}' beside the other threshold_ columns; "
            "rerun the evaluate stage"
        )
    try:
        threshold = float(str(_constant(frame, column, source)))
    except ValueError:
        threshold = math.nan
    if not 0 < threshold < 1:
        raise UserError(
            f"{source}: {column} must be a number between 0 and 1; rerun the evaluate stage"
        )
    return threshold


def read_predictions(text: str, task: str, source: str, legacy_threshold: float) -> Predictions:
    """Parse and check the file's text; `legacy_threshold` serves files that predate `threshold`.

    Every problem is a UserError naming `source`: a file the gate cannot trust is never scored.
    """
    try:
        # label names stay strings: "NA" is a label, not missing
        frame = pd.read_csv(io.StringIO(text), keep_default_na=False, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(
            f"{source}: not a readable CSV ({' '.join(str(exc).split())}); rerun the evaluate stage"
        ) from None
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise UserError(
            f"{source}: missing column(s) {', '.join(missing)}; rerun the evaluate stage"
        )
    if frame.columns.duplicated().any():
        raise UserError(f"{source}: duplicated column names; rerun the evaluate stage")
    if frame.empty:
        raise UserError(f"{source}: no rows; rerun the evaluate stage")
    numeric = ["row_id"]
    names = [c.removeprefix(SCORE_PREFIX) for c in frame.columns if c.startswith(SCORE_PREFIX)]
    if task == "regression":
        numeric += ["gold", "predicted"]
    elif not names:
        raise UserError(
            f"{source}: no score_<label> columns for task {task}; rerun the evaluate stage"
        )
    numeric += [f"{SCORE_PREFIX}{name}" for name in names]
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
        if not np.isfinite(values).all():
            raise UserError(
                f"{source}: column '{column}' holds values that are not finite numbers; "
                "rerun the evaluate stage"
            )
        # the checked numbers replace the text, so that every later use reads what was checked
        frame[column] = values
    row_ids = frame["row_id"].to_numpy(float)
    if not ((row_ids >= 0) & (row_ids < MAX_ROW_ID) & (row_ids == np.floor(row_ids))).all():
        raise UserError(
            f"{source}: column 'row_id' must hold whole numbers from 0 (rows of the cleaned "
            "table); rerun the evaluate stage"
        )
    frame["row_id"] = row_ids.astype(np.int64)
    separator = LEGACY_LABEL_SEPARATOR
    threshold: Threshold = legacy_threshold
    if task == "multilabel":
        if "label_separator" in frame.columns:
            separator = str(_constant(frame, "label_separator", source))
            if not separator:
                raise UserError(
                    f"{source}: column 'label_separator' is empty; rerun the evaluate stage"
                )
        per_label = [f"{THRESHOLD_PREFIX}{name}" for name in names]
        if any(column.startswith(THRESHOLD_PREFIX) for column in frame.columns):
            threshold = np.asarray([_threshold(frame, column, source) for column in per_label])
        elif "threshold" in frame.columns:
            threshold = _threshold(frame, "threshold", source)
    elif task == "binary":
        threshold = _threshold(frame, "threshold", source) if "threshold" in frame.columns else None
    if task != "regression":
        joined_by = separator if task == "multilabel" else None
        _check_labels(frame, "gold", names, joined_by, source)
        _check_labels(frame, "predicted", names, joined_by, source)
    return Predictions(frame, names, threshold, separator)


def same_test_set(old: Predictions, new: Predictions, task: str) -> bool:
    """The same examples with the same gold labels, in the same order: the two can be paired."""
    if len(old.frame) != len(new.frame) or old.label_names != new.label_names:
        return False
    if not np.array_equal(old.frame["row_id"], new.frame["row_id"]):
        return False
    old_targets, _ = old.targets_and_scores(task)
    new_targets, _ = new.targets_and_scores(task)
    return bool(np.array_equal(old_targets, new_targets))
