"""Cleaning: keep the text and the label, normalise the text, drop what cannot be learned from."""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bertpipe.errors import UserError
from bertpipe.files import atomic_path
from bertpipe.labels import (
    check_classes_repeat,
    check_label_count,
    check_label_spread,
    is_missing,
    label_warnings,
    parse_multilabel,
    parse_number,
    shown_spellings,
    sorted_label_names,
    spelled_alike,
)
from bertpipe.params import CleanParams, DataParams
from bertpipe.tables import UsedColumns, check_columns, shown
from bertpipe.text import clean_text, normalize_text

# the scratch folder beside the output that holds the cleaned chunks until they are joined
SCRATCH_PREFIX = ".clean-"


def used_columns(data: DataParams, extra_columns: tuple[str, ...] = ()) -> UsedColumns:
    """The columns the clean stage reads; it passes split.group_column as the one extra column."""
    other = {column: "data.carry_columns" for column in data.carry_columns}
    for column in extra_columns:
        other.setdefault(column, "split.group_column")
    return UsedColumns(tuple(data.text_columns), data.label_column, other)


def _clean_text_cell(value: Any, mask: bool) -> str:
    return "" if is_missing(value) else clean_text(str(value), mask)


def _parse_labels(
    labels: pd.Series, task: str, separator: str, column: str, source: str = "data"
) -> list[Any]:
    parsed: list[Any] = []
    for row_number, value in zip(labels.index, labels, strict=True):
        if isinstance(value, dict) or (
            task != "multilabel" and isinstance(value, (list, tuple, np.ndarray))
        ):
            raise UserError(
                f"{source}: row {row_number + 1}: label {shown(value)} in column '{column}' is a "
                f"{type(value).__name__}, not one {'label' if task != 'multilabel' else 'list'}; "
                "write one label per cell (a list only with task: multilabel)"
            )
        if is_missing(value):
            parsed.append(None)
        elif task == "multilabel":
            names = parse_multilabel(value, separator)
            # an explicit "[]" is a row where no label applies; anything else empty is missing
            parsed.append(names if names or str(value).strip() == "[]" else None)
        elif task == "regression":
            number = parse_number(value)
            if number is None:
                raise UserError(
                    f"{source}: row {row_number + 1}: label {shown(value)} in column '{column}' is "
                    "not a number; regression needs numeric labels: fix that cell, or set task: "
                    "multiclass if the labels are classes"
                )
            parsed.append(number)
        else:
            parsed.append(normalize_text(str(value)))
    return parsed


@dataclass(frozen=True)
class CleanedChunk:
    """One chunk after the per-row work, before duplicates (which need every chunk) are dropped."""

    frame: pd.DataFrame  # the rows kept so far: text, label, then the carried columns
    dropped: dict[str, int]  # empty_text, too_short, missing_label
    text_keys: np.ndarray  # (n, 2) uint64: a 128-bit hash of each kept row's text
    label_keys: np.ndarray  # (n,) uint64: a hash of each kept row's label


def _carried_columns(
    data: DataParams, text_columns: list[str], extra: tuple[str, ...]
) -> list[str]:
    carry = list(dict.fromkeys([*data.carry_columns, *extra]))
    reserved = sorted({"text", "label", "row_id"} & set(carry) - set(text_columns[:1]))
    if reserved:
        raise UserError(
            f"data.carry_columns: {', '.join(reserved)} would clash with the columns bertpipe "
            "writes (text, label, row_id); rename the column in the data"
        )
    return carry


def _hash(values: pd.Series, key: str) -> np.ndarray:
    return pd.util.hash_pandas_object(values, index=False, hash_key=key).to_numpy()


def clean_chunk(
    frame: pd.DataFrame,
    data: DataParams,
    clean: CleanParams,
    task: str,
    source: str = "data",
    extra_columns: tuple[str, ...] = (),
) -> CleanedChunk:
    """Select, normalise and filter the rows of one chunk; the frame's index is the file's row."""
    text_columns = data.text_columns
    carry = _carried_columns(data, text_columns, extra_columns)
    check_columns(list(frame.columns), used_columns(data, extra_columns).by_column(), source)

    texts = [
        frame[column].map(lambda value: _clean_text_cell(value, clean.mask_phi))
        for column in text_columns
    ]
    labels = _parse_labels(
        frame[data.label_column], task, data.label_separator, data.label_column, source
    )

    out = (
        pd.DataFrame({"text": texts[0].to_numpy()})
        if len(texts) == 1
        else pd.DataFrame({"text": [list(parts) for parts in zip(*texts, strict=True)]})
    )
    out["label"] = pd.Series(labels, dtype=object)
    cleaned_columns = dict(zip(text_columns, texts, strict=True))
    for column in carry:
        if column == "text":
            continue  # the text column itself (see _carried_columns): out["text"] is its cleaning
        # a carried text column (data.carry_columns or split.group_column naming it) is a copy
        # of its cleaned text, never the raw cell: with clean.mask_phi a raw copy would write
        # back the PHI the mask took out
        source_column = cleaned_columns.get(column, frame[column])
        out[column] = source_column.to_numpy()

    lengths = sum(text.str.len().to_numpy() for text in texts)
    empty = lengths == 0
    too_short = ~empty & (lengths < clean.min_chars)
    no_label = out["label"].map(lambda value: value is None).to_numpy() & ~empty & ~too_short
    kept = ~(empty | too_short | no_label)
    for column in extra_columns:  # split.group_column: a kept row without a group has no split
        blank = frame[column].map(is_missing).to_numpy() & kept
        if blank.any():
            raise UserError(
                f"{source}: row {int(frame.index[np.argmax(blank)]) + 1}: column "
                f"{shown(column)} (split.group_column) is empty; every row needs its group "
                "(a patient id, say), which keeps the group's rows in one split: fill it in, "
                "or remove the row"
            )
    out = out[kept].reset_index(drop=True)

    # Duplicates are found by hash, so that only 24 bytes per row stay in memory across chunks;
    # two 64-bit hashes with different keys make a text collision (~n^2 / 2^129) negligible.
    text_key = out["text"].map(
        lambda value: value if isinstance(value, str) else "\x1f".join(value)
    )
    label_key = out["label"].map(
        lambda value: "\x1f".join(value) if isinstance(value, list) else repr(value)
    )
    return CleanedChunk(
        frame=out,
        dropped={
            "empty_text": int(empty.sum()),
            "too_short": int(too_short.sum()),
            "missing_label": int(no_label.sum()),
        },
        text_keys=np.column_stack(
            [_hash(text_key, "bertpipe-text-00"), _hash(text_key, "bertpipe-text-01")]
        ),
        label_keys=_hash(label_key, "bertpipe-label-0"),
    )


def duplicate_flags(text_keys: np.ndarray, label_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(conflicting, duplicate) masks over rows in file order.

    The same text with the same label twice is one example: later copies are duplicates. The
    same text with different labels is noise: every copy is conflicting.
    """
    keys = pd.DataFrame({"a": text_keys[:, 0], "b": text_keys[:, 1], "label": label_keys})
    labels_per_text = keys.groupby(["a", "b"], sort=False)["label"].transform("nunique")
    conflicting = labels_per_text.to_numpy() > 1
    duplicate = ~conflicting & keys.duplicated(["a", "b"], keep="first").to_numpy()
    return conflicting, duplicate


def make_report(rows_in: int, rows_out: int, dropped: dict[str, int]) -> dict[str, Any]:
    return {
        "rows_in": int(rows_in),
        "rows_out": int(rows_out),
        "dropped": {
            key: int(dropped.get(key, 0))
            for key in (
                "empty_text",
                "too_short",
                "missing_label",
                "duplicate",
                "conflicting_duplicate",
            )
        },
    }


def clean_chunks(
    chunks: Iterable[pd.DataFrame],
    output: Path,
    data: DataParams,
    clean: CleanParams,
    task: str,
    source: str = "data",
    extra_columns: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Clean a table chunk by chunk into the Parquet file `output`; returns the report.

    Two passes with memory bounded by one chunk (plus 24 bytes a row of hashes for duplicates):
    the first cleans each chunk into a scratch Parquet file and keeps the rows' hashes; then the
    duplicate flags are computed over all rows, and the second pass filters each scratch file
    into `output`, one row group per chunk. Chunk boundaries do not change the result.
    """
    output = Path(output)
    # the scratch files go next to the output (the data may not fit a small /tmp); folders made
    # for them are removed again on failure, so a failed stage leaves nothing behind
    made = [folder for folder in (output.parent, *output.parent.parents) if not folder.exists()]
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _clean_chunks(chunks, output, data, clean, task, source, extra_columns)
    except BaseException:
        for folder in made:  # the deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _clean_chunks(
    chunks: Iterable[pd.DataFrame],
    output: Path,
    data: DataParams,
    clean: CleanParams,
    task: str,
    source: str,
    extra_columns: tuple[str, ...],
) -> dict[str, Any]:
    dropped: Counter[str] = Counter()
    text_keys: list[np.ndarray] = []
    label_keys: list[np.ndarray] = []
    rows_in = 0
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=output.parent) as scratch:
        parts: list[tuple[Path, int]] = []
        schemas: list[pa.Schema] = []
        for number, frame in enumerate(chunks):
            rows_in += len(frame)
            chunk = clean_chunk(frame, data, clean, task, source, extra_columns)
            dropped.update(chunk.dropped)
            text_keys.append(chunk.text_keys)
            label_keys.append(chunk.label_keys)
            part = Path(scratch) / f"{number:06d}.parquet"
            table = _write_part(chunk.frame, part, source)
            parts.append((part, len(chunk.frame)))
            schemas.append(table.schema)

        all_text_keys = np.concatenate(text_keys) if text_keys else np.zeros((0, 2), np.uint64)
        all_label_keys = np.concatenate(label_keys) if label_keys else np.zeros(0, np.uint64)
        conflicting, duplicate = duplicate_flags(all_text_keys, all_label_keys)
        keep = ~conflicting & ~duplicate
        dropped["duplicate"] = int(duplicate.sum())
        dropped["conflicting_duplicate"] = int(conflicting.sum())

        # A column that is empty in one chunk reads as type null there; the unified schema
        # gives every chunk the type the column has where it holds values.
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
        names: set[str] = set()
        groups: set[str] = set()  # split.group_column's values, for their spellings
        rows_per_class: Counter[str] = Counter()
        spread: set[float] = set()  # regression: up to two distinct labels, to know they vary
        rows_out = start = 0
        with atomic_path(output) as tmp:
            writer = pq.ParquetWriter(tmp, schema) if schema is not None else None
            try:
                for part, size in parts:
                    mask = keep[start : start + size]
                    start += size
                    table = pq.read_table(part).filter(pa.array(mask)).cast(schema)
                    if table.num_rows == 0:
                        continue
                    names.update(sorted_label_names(table.column("label").to_pylist(), task))
                    for column in extra_columns:
                        groups.update(map(str, pc.unique(table.column(column)).to_pylist()))
                    if task in ("binary", "multiclass"):
                        for entry in pc.value_counts(table.column("label")).to_pylist():
                            rows_per_class[str(entry["values"])] += entry["counts"]
                    if task == "regression" and len(spread) < 2:
                        spread.update(pc.unique(table.column("label")).to_pylist()[:2])
                    rows_out += table.num_rows
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
            if rows_out == 0:
                _explain_no_rows(dict(dropped), data, source)
            check_label_count(sorted(names), task, data.label_column)
            check_classes_repeat(rows_per_class, task, data.label_column)
            if task == "regression":
                check_label_spread(spread, data.label_column)
    report = make_report(rows_in, rows_out, dict(dropped))
    warnings = [f"{source}: {line}" for line in label_warnings(names, task, data.label_column)]
    alike = spelled_alike(groups)
    if alike:
        warnings.append(
            f"{source}: column {shown(extra_columns[0])} (split.group_column): {len(alike)} "
            f"group(s) spelled in several ways are separate groups, which may fall into "
            f"different splits ({shown_spellings(alike)}); write each group one way if they are "
            "one"
        )
    return {**report, "warnings": warnings} if warnings else report


def _write_part(frame: pd.DataFrame, part: Path, source: str) -> pa.Table:
    """Write one cleaned chunk; a carried column Arrow cannot store is named."""
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, part)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        column = next(
            (name for name in frame.columns if not _storable(frame[name])), frame.columns[-1]
        )
        raise UserError(
            f"{source}: carried column {shown(column)} holds values Parquet cannot store in one "
            f"type ({str(exc)[:80]}); make the column one type, or stop carrying it"
        ) from None
    return table


def _storable(values: pd.Series) -> bool:
    try:
        pq.write_table(
            pa.table({"column": pa.array(values, from_pandas=True)}), pa.BufferOutputStream()
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    return True


def _explain_no_rows(dropped: dict[str, int], data: DataParams, source: str) -> None:
    """No row was kept: blame what dropped most of them, not the label column by default."""
    texts = dropped.get("empty_text", 0) + dropped.get("too_short", 0)
    if texts and texts >= dropped.get("missing_label", 0):
        raise UserError(
            f"{source}: every text in column(s) {', '.join(map(shown, data.text_columns))} is "
            "empty or shorter than clean.min_chars; check data.text_column"
        )
    if dropped.get("missing_label", 0):
        raise UserError(
            f"{source}: every row's label in column {shown(data.label_column)} is missing; "
            "check data.label_column"
        )
