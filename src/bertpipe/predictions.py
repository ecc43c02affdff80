"""eval/predictions.csv, the per-example test predictions: the one module that writes and reads it.

One row per test example, in the order of the test split:
- `row_id`: the example's row in the cleaned table;
- `gold` and `predicted`: label names (`|`-joined for multilabel), or numbers for regression;
- `score_<label>`: one column per label, rounded to 6 decimals (none for regression).

The evaluate stage writes it; the metrics gate (`bertpipe gate`) re-scores two revisions from it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bertpipe.files import atomic_path

SCORE_PREFIX = "score_"


def _joined_names(row: np.ndarray, label_names: Sequence[str]) -> str:
    return "|".join(label_names[i] for i in np.flatnonzero(row))


def _frame(
    row_ids: np.ndarray,
    targets: np.ndarray,
    predicted: np.ndarray,
    scores: np.ndarray,
    task: str,
    label_names: Sequence[str],
) -> pd.DataFrame:
    """The file's rows from encoded targets, predictions and (n, labels) scores."""
    frame = pd.DataFrame({"row_id": row_ids})
    if task == "regression":
        frame["gold"] = targets.astype(np.float64)
        frame["predicted"] = predicted.astype(np.float64)
        return frame
    if task == "multilabel":
        frame["gold"] = [_joined_names(row, label_names) for row in targets]
        frame["predicted"] = [_joined_names(row, label_names) for row in predicted]
    else:
        frame["gold"] = [label_names[i] for i in targets]
        frame["predicted"] = [label_names[i] for i in predicted]
    for column, name in enumerate(label_names):
        frame[f"{SCORE_PREFIX}{name}"] = np.round(scores[:, column], 6)
    return frame


def write_predictions(
    path: str | Path,
    row_ids: np.ndarray,
    targets: np.ndarray,
    predicted: np.ndarray,
    scores: np.ndarray,
    task: str,
    label_names: Sequence[str],
) -> None:
    frame = _frame(row_ids, targets, predicted, scores, task, label_names)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def parse_predictions(text: str) -> pd.DataFrame:
    """The file's text as a frame; label names stay strings ("NA" is a label, not missing)."""
    return pd.read_csv(io.StringIO(text), keep_default_na=False)


def label_names_of(predictions: pd.DataFrame) -> list[str]:
    return [
        column.removeprefix(SCORE_PREFIX)
        for column in predictions.columns
        if column.startswith(SCORE_PREFIX)
    ]


def targets_and_scores(predictions: pd.DataFrame, task: str, names: list[str]) -> tuple[Any, Any]:
    """(targets, scores) as compute_metrics takes them, rebuilt from the file."""
    if task == "regression":
        return predictions["gold"].to_numpy(float), predictions["predicted"].to_numpy(float)
    index = {name: i for i, name in enumerate(names)}
    score_columns = [f"{SCORE_PREFIX}{name}" for name in names]
    if task == "multilabel":
        targets = np.zeros((len(predictions), len(names)), dtype=np.int64)
        for row, cell in enumerate(predictions["gold"]):
            for name in filter(None, str(cell).split("|")):
                targets[row, index[name]] = 1
        return targets, predictions[score_columns].to_numpy(float)
    return (
        predictions["gold"].astype(str).map(index).to_numpy(np.int64),
        predictions[score_columns].to_numpy(float),
    )


def predicted_classes(predictions: pd.DataFrame, names: list[str]) -> np.ndarray:
    """(n,) int64: the stored single-label predictions as class indices into `names`."""
    index = {name: i for i, name in enumerate(names)}
    return predictions["predicted"].astype(str).map(index).to_numpy(np.int64)


def same_test_set(old: pd.DataFrame, new: pd.DataFrame) -> bool:
    """The same examples with the same gold labels, in the same order: the two can be paired."""
    return (
        len(old) == len(new)
        and list(old["row_id"]) == list(new["row_id"])
        and list(old["gold"].astype(str)) == list(new["gold"].astype(str))
    )
