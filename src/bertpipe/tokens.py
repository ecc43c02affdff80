"""Tokenized splits, stored compactly: one flat int32 array of token ids plus row offsets.

Nothing is padded on disk; padding happens per batch (see `batching.pad_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bertpipe.labels import encode_labels

TOKENIZE_BATCH = 1024


@dataclass
class TokenizedSplit:
    """Ragged token ids: row i is `values[offsets[i]:offsets[i + 1]]`."""

    values: np.ndarray  # (total_tokens,) int32
    offsets: np.ndarray  # (n + 1,) int64
    type_values: np.ndarray | None  # token_type_ids for sentence pairs, same layout as values
    labels: np.ndarray  # (n,) int64 | (n, num_labels) float32 | (n,) float32
    row_ids: np.ndarray  # (n,) int64, the row in the split table

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def ids(self, index: int) -> np.ndarray:
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    def types(self, index: int) -> np.ndarray | None:
        if self.type_values is None:
            return None
        return self.type_values[self.offsets[index] : self.offsets[index + 1]]


def _as_inputs(
    texts: Sequence[Any], tokenizer: Any, pair: bool
) -> tuple[list[Any], list[Any] | None]:
    """Plain texts; a (first, second) pair; or several columns joined with the separator token."""
    if not texts or isinstance(texts[0], str):
        return list(texts), None
    if pair:
        return [parts[0] for parts in texts], [parts[1] for parts in texts]
    separator = f" {tokenizer.sep_token} " if tokenizer.sep_token else " "
    return [separator.join(parts) for parts in texts], None


def encode_texts(
    texts: Sequence[Any], tokenizer: Any, max_length: int, pair: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Tokenize in batches with the fast tokenizer: (values, offsets, type_values)."""
    first, second = _as_inputs(texts, tokenizer, pair)
    value_parts: list[np.ndarray] = []
    type_parts: list[np.ndarray] = []
    lengths: list[int] = []
    for start in range(0, len(first), TOKENIZE_BATCH):
        encoded = tokenizer(
            first[start : start + TOKENIZE_BATCH],
            second[start : start + TOKENIZE_BATCH] if second is not None else None,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=second is not None,
        )
        for row, ids in enumerate(encoded["input_ids"]):
            value_parts.append(np.asarray(ids, dtype=np.int32))
            lengths.append(len(ids))
            if second is not None:
                type_parts.append(np.asarray(encoded["token_type_ids"][row], dtype=np.int8))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(value_parts) if value_parts else np.zeros(0, np.int32)
    types = np.concatenate(type_parts) if type_parts else None
    return values, offsets, types


def tokenize_split(
    texts: Sequence[Any],
    labels: Sequence[Any],
    row_ids: np.ndarray,
    tokenizer: Any,
    max_length: int,
    label_names: Sequence[str],
    task: str,
    pair: bool = False,
) -> TokenizedSplit:
    values, offsets, types = encode_texts(texts, tokenizer, max_length, pair)
    return TokenizedSplit(
        values=values,
        offsets=offsets,
        type_values=types,
        labels=encode_labels(labels, label_names, task),
        row_ids=np.asarray(row_ids, dtype=np.int64),
    )


def _list_array(values: np.ndarray, offsets: np.ndarray) -> pa.ListArray:
    return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(values))


def to_arrow(split: TokenizedSplit) -> pa.Table:
    columns: dict[str, pa.Array] = {
        "row_id": pa.array(split.row_ids),
        "input_ids": _list_array(split.values, split.offsets),
    }
    if split.type_values is not None:
        columns["token_type_ids"] = _list_array(split.type_values, split.offsets)
    if split.labels.ndim == 2:
        width = split.labels.shape[1]
        columns["labels"] = pa.FixedSizeListArray.from_arrays(
            pa.array(split.labels.reshape(-1)), width
        )
    else:
        columns["labels"] = pa.array(split.labels)
    return pa.table(columns)


def write_split(split: TokenizedSplit, path: str | Path) -> None:
    pq.write_table(to_arrow(split), path)


def _flat(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    array = column.combine_chunks()
    offsets = array.offsets.to_numpy().astype(np.int64)
    values = array.values.to_numpy()
    # a sliced array keeps its parent's offsets; rebase so that row 0 starts at 0
    return values[offsets[0] : offsets[-1]], offsets - offsets[0]


def read_split(path: str | Path) -> TokenizedSplit:
    table = pq.read_table(path)
    values, offsets = _flat(table.column("input_ids"))
    type_values = None
    if "token_type_ids" in table.column_names:
        type_values, _ = _flat(table.column("token_type_ids"))
    labels_column = table.column("labels").combine_chunks()
    if pa.types.is_fixed_size_list(labels_column.type):
        width = labels_column.type.list_size
        labels = labels_column.flatten().to_numpy().reshape(-1, width)
    else:
        labels = labels_column.to_numpy()
    # copies: Arrow's buffers are read-only, and torch.from_numpy wants writable arrays
    return TokenizedSplit(
        values=values.astype(np.int32, copy=False),
        offsets=offsets,
        type_values=type_values,
        labels=np.array(labels, copy=True),
        row_ids=np.array(table.column("row_id").to_numpy(), copy=True),
    )
