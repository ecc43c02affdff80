"""A seeded train/val/test split: stratified where possible, and group-aware when asked."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.model_selection import train_test_split

from bertpipe.errors import UserError
from bertpipe.params import SplitParams

SPLIT_NAMES = ("train", "val", "test")
# a stratum needs a row in each of the three splits to be stratified
_MIN_PER_STRATUM = 3


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
    """Each group's stratum: its most common one, ties broken by name (so the split is
    deterministic); indexed by group, in sorted order. Vectorised, because a Python function
    called per group makes the split's time grow with the number of groups at interpreter speed."""
    pairs = pd.DataFrame({"group": groups.to_numpy(), "stratum": strata.to_numpy()})
    counts = pairs.value_counts().rename("count").reset_index()
    counts = counts.sort_values(["group", "count", "stratum"], ascending=[True, False, True])
    return counts.drop_duplicates("group").set_index("group")["stratum"].rename(None)


@dataclass
class Assignment:
    codes: np.ndarray  # (n,) int8: the index in SPLIT_NAMES of each row's split
    warnings: list[str] = field(default_factory=list)
    stratified: bool = True


def assign_splits(
    labels: pd.Series, groups: np.ndarray | None, params: SplitParams, task: str, seed: int
) -> Assignment:
    """Which split each row goes to, from its label (and group) alone: no text is needed."""
    labels = labels.reset_index(drop=True)
    strata = strata_for(labels, task)
    row_ids = np.arange(len(labels), dtype=np.int64)
    if groups is not None:
        unit_strata = _group_strata(pd.Series(groups), strata)
        units = unit_strata.index.to_numpy()
        unit_of_row = groups
    else:
        unit_strata = strata
        units = row_ids
        unit_of_row = row_ids

    result = Assignment(codes=np.zeros(0, np.int8))
    counts = unit_strata.value_counts()
    small = sorted(str(name) for name in counts[counts < _MIN_PER_STRATUM].index)
    stratify: np.ndarray | None = unit_strata.to_numpy()
    if small:
        what = "groups" if groups is not None else "rows"
        result.warnings.append(
            f"class(es) {_first_names(small)} have fewer than {_MIN_PER_STRATUM} {what}: "
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

    code_of_unit = pd.Series(
        np.repeat(np.arange(3, dtype=np.int8), [len(train), len(val), len(test)]),
        index=np.concatenate([train, val, test]),
    )
    result.codes = code_of_unit.reindex(unit_of_row).to_numpy(dtype=np.int8)
    _check_labels_in_train(labels, result.codes, task)
    return result


def row_groups(frame_columns: list[str], params: SplitParams, read: Any) -> np.ndarray | None:
    """The group of each row, or None; `read(column)` loads one column of the cleaned table."""
    column = params.group_column
    if column is None:
        return None
    if column not in frame_columns:
        raise UserError(
            f"split.group_column: column '{column}' is not in the cleaned data; "
            "add it to data.carry_columns or fix the name"
        )
    groups = read(column)
    if groups.isna().any():
        raise UserError(f"split.group_column: column '{column}' has empty values")
    return groups.to_numpy()


def split_parquet(
    source: Path, output_dir: Path, params: SplitParams, task: str, seed: int, chunk_rows: int
) -> tuple[Assignment, dict[str, int]]:
    """Split the cleaned Parquet table into output_dir/{train,val,test}.parquet, streaming.

    Only the label and group columns are read whole (to assign the splits); the rows then
    stream through in chunks of `chunk_rows`, each written as a row group of its split.
    """
    table_file = pq.ParquetFile(source)
    columns = table_file.schema_arrow.names

    def read(column: str) -> pd.Series:
        return pq.read_table(source, columns=[column]).column(column).to_pandas()

    groups = row_groups(columns, params, read)
    assignment = assign_splits(read("label"), groups, params, task, seed)

    schema = pa.schema([pa.field("row_id", pa.int64()), *table_file.schema_arrow])
    writers = {
        name: pq.ParquetWriter(output_dir / f"{name}.parquet", schema) for name in SPLIT_NAMES
    }
    sizes = dict.fromkeys(SPLIT_NAMES, 0)
    start = 0
    try:
        for batch in table_file.iter_batches(batch_size=chunk_rows):
            row_ids = pa.array(np.arange(start, start + batch.num_rows, dtype=np.int64))
            table = pa.Table.from_batches([batch]).add_column(0, "row_id", row_ids)
            codes = assignment.codes[start : start + batch.num_rows]
            start += batch.num_rows
            for code, name in enumerate(SPLIT_NAMES):
                part = table.filter(pa.array(codes == code))
                if part.num_rows:
                    writers[name].write_table(part.cast(schema))
                    sizes[name] += part.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    return assignment, sizes


def _label_set(labels: pd.Series, task: str) -> set[str]:
    if task == "multilabel":
        return {name for names in labels for name in names}
    return set(labels.astype(str))


def _first_names(names: list[str], shown: int = 5) -> str:
    """The first `shown` names, and how many more: a warning or an error stays one short line."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _check_labels_in_train(labels: pd.Series, codes: np.ndarray, task: str) -> None:
    if task == "regression":
        return
    seen = _label_set(labels[codes == 0], task)
    # every such label at once, from every split: fixing them one run at a time is slow
    unseen: dict[str, list[str]] = {}
    for code, name in enumerate(SPLIT_NAMES[1:], start=1):
        for label in _label_set(labels[codes == code], task) - seen:
            unseen.setdefault(label, []).append(name)
    if unseen:
        where = [name for name in SPLIT_NAMES[1:] if any(name in n for n in unseen.values())]
        raise UserError(
            f"{len(unseen)} label(s) appear in the {' and '.join(where)} split but not in "
            f"train: {_first_names(sorted(unseen), shown=8)}; add rows of them or remove them "
            "from the data"
        )
