"""A seeded train/val/test split: stratified where possible, and group-aware when asked."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from bertpipe.errors import UserError
from bertpipe.params import SplitParams

SPLIT_NAMES = ("train", "val", "test")
# a stratum needs a row in each of the three splits to be stratified
_MIN_PER_STRATUM = 3


@dataclass
class SplitResult:
    frames: dict[str, pd.DataFrame]
    warnings: list[str] = field(default_factory=list)
    stratified: bool = True


def strata_for(labels: pd.Series, task: str) -> pd.Series:
    """What to stratify on: the class; the rarest label of a multi-label row; a quantile bin."""
    if task == "regression":
        bins = pd.qcut(labels.astype(float), q=min(5, labels.nunique()), duplicates="drop")
        return bins.astype(str)
    if task == "multilabel":
        frequency = Counter(name for names in labels for name in names)
        return labels.map(
            lambda names: min(names, key=lambda n: (frequency[n], n)) if len(names) else "(none)"
        )
    return labels.astype(str)


def _split_keys(
    keys: np.ndarray, strata: np.ndarray | None, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    return train_test_split(keys, test_size=test_size, random_state=seed, stratify=strata)


def _group_strata(groups: pd.Series, strata: pd.Series) -> pd.Series:
    # a group's stratum is its most common one (ties broken by name, so the split is deterministic)
    def majority(values: pd.Series) -> str:
        counts = values.value_counts()
        return sorted(counts[counts == counts.max()].index)[0]

    return strata.groupby(groups.to_numpy()).agg(majority)


def split_frame(frame: pd.DataFrame, params: SplitParams, task: str, seed: int) -> SplitResult:
    """Split rows (or whole groups of rows) into train, val and test."""
    frame = frame.reset_index(drop=True)
    frame.insert(0, "row_id", np.arange(len(frame), dtype=np.int64))
    strata = strata_for(frame["label"], task)

    if params.group_column is not None:
        column = params.group_column
        if column not in frame.columns:
            raise UserError(
                f"split.group_column: column '{column}' is not in the cleaned data; "
                "add it to data.carry_columns or fix the name"
            )
        if frame[column].isna().any():
            raise UserError(f"split.group_column: column '{column}' has empty values")
        unit_strata = _group_strata(frame[column], strata)
        units = unit_strata.index.to_numpy()
        unit_of_row = frame[column].to_numpy()
    else:
        unit_strata = strata
        units = frame["row_id"].to_numpy()
        unit_of_row = units

    result = SplitResult(frames={})
    counts = unit_strata.value_counts()
    small = sorted(str(name) for name in counts[counts < _MIN_PER_STRATUM].index)
    stratify: np.ndarray | None = unit_strata.to_numpy()
    if small:
        what = "groups" if params.group_column else "rows"
        result.warnings.append(
            f"class(es) {', '.join(small)} have fewer than {_MIN_PER_STRATUM} {what}: "
            "too few to stratify, so the split falls back to unstratified"
        )
        stratify = None

    if len(units) < 3:
        raise UserError(f"only {len(units)} rows (or groups) to split; need at least 3")
    try:
        rest, test = _split_keys(units, stratify, params.test_size, seed)
        # unit_strata is indexed by unit (row id or group), so .loc follows the first cut
        rest_strata = None if stratify is None else unit_strata.loc[rest].to_numpy()
        val_share = params.val_size / (1 - params.test_size)
        train, val = _split_keys(rest, rest_strata, val_share, seed)
    except ValueError as exc:
        if stratify is None:
            raise UserError(f"cannot split {len(units)} rows: {exc}") from None
        result.warnings.append(f"stratified split impossible ({exc}); falling back to unstratified")
        result.stratified = False
        rest, test = _split_keys(units, None, params.test_size, seed)
        train, val = _split_keys(rest, None, params.val_size / (1 - params.test_size), seed)
    result.stratified = result.stratified and stratify is not None

    assignment = {
        "train": set(train.tolist()),
        "val": set(val.tolist()),
        "test": set(test.tolist()),
    }
    for name in SPLIT_NAMES:
        mask = np.fromiter((unit in assignment[name] for unit in unit_of_row), bool, len(frame))
        result.frames[name] = frame[mask].reset_index(drop=True)
    _check_labels_in_train(result.frames, task)
    return result


def _label_set(frame: pd.DataFrame, task: str) -> set[str]:
    if task == "multilabel":
        return {name for names in frame["label"] for name in names}
    return set(frame["label"].astype(str))


def _check_labels_in_train(frames: dict[str, pd.DataFrame], task: str) -> None:
    if task == "regression":
        return
    seen = _label_set(frames["train"], task)
    for name in ("val", "test"):
        unseen = sorted(_label_set(frames[name], task) - seen)
        if unseen:
            raise UserError(
                f"label(s) {', '.join(unseen)} appear in the {name} split but not in train; "
                "add rows of them or remove them from the data"
            )
