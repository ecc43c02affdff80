"""Tokenized splits, stored compactly: one flat int32 array of token ids plus row offsets.

A split is a folder of NumPy `.npy` files: input_ids (every row's ids, end to end), offsets
(row i is input_ids[offsets[i]:offsets[i + 1]]), labels, row_ids, and token_type_ids for sentence
pairs. The ids are written chunk by chunk and read memory-mapped, so neither tokenizing nor
training holds the whole corpus's tokens in memory. Nothing is padded on disk; padding happens
per batch (see `batching.Collator`).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
    # RoBERTa and DistilBERT take no token_type_ids: their pairs are told apart by separators only
    with_types = second is not None and "token_type_ids" in tokenizer.model_input_names
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
            return_token_type_ids=with_types,
        )
        ids = encoded["input_ids"]
        batch_lengths = [len(row) for row in ids]
        count = sum(batch_lengths)
        # one flat array per batch; np.asarray per row cost more than the tokenizer on short texts
        value_parts.append(np.fromiter(itertools.chain.from_iterable(ids), np.int32, count))
        lengths.extend(batch_lengths)
        if with_types:
            types = itertools.chain.from_iterable(encoded["token_type_ids"])
            type_parts.append(np.fromiter(types, np.int8, count))
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


_FILES = ("input_ids", "offsets", "labels", "row_ids", "token_type_ids")


def _write_npy_from_raw(raw: Path, target: Path, dtype: np.dtype, count: int) -> None:
    """A standard .npy file from a header and the raw bytes streamed to `raw`, in blocks."""
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": (count,),
    }
    with target.open("wb") as out, raw.open("rb") as source:
        np.lib.format.write_array_header_1_0(out, header)
        shutil.copyfileobj(source, out, 1 << 24)
    raw.unlink()


class SplitWriter:
    """Writes a tokenized split folder chunk by chunk: ids stream to disk, per-row arrays
    (offsets, labels, row ids: 16-24 bytes a row) stay in memory until `close`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._ids = (self.folder / "input_ids.raw").open("wb")
        self._types: Any = None
        self._lengths: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._row_ids: list[np.ndarray] = []
        self._count = 0

    def add(self, split: TokenizedSplit) -> None:
        np.ascontiguousarray(split.values, dtype=np.int32).tofile(self._ids)
        if split.type_values is not None:
            if self._types is None:
                if self._count:
                    raise ValueError("token_type_ids must be given for every chunk or none")
                self._types = (self.folder / "token_type_ids.raw").open("wb")
            np.ascontiguousarray(split.type_values, dtype=np.int8).tofile(self._types)
        self._count += int(split.offsets[-1] - split.offsets[0])
        self._lengths.append(np.diff(split.offsets))
        self._labels.append(split.labels)
        self._row_ids.append(np.asarray(split.row_ids, dtype=np.int64))

    def close(self, label_shape: tuple[int, ...] = (0,), label_dtype: Any = np.int64) -> None:
        """Finish the folder; `label_shape`/`label_dtype` describe labels when no row was added."""
        self._ids.close()
        _write_npy_from_raw(
            self.folder / "input_ids.raw",
            self.folder / "input_ids.npy",
            np.dtype(np.int32),
            self._count,
        )
        if self._types is not None:
            self._types.close()
            _write_npy_from_raw(
                self.folder / "token_type_ids.raw",
                self.folder / "token_type_ids.npy",
                np.dtype(np.int8),
                self._count,
            )
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        labels = (
            np.concatenate(self._labels)
            if self._labels
            else np.zeros(label_shape, dtype=label_dtype)
        )
        row_ids = np.concatenate(self._row_ids) if self._row_ids else np.zeros(0, np.int64)
        np.save(self.folder / "offsets.npy", offsets)
        np.save(self.folder / "labels.npy", labels)
        np.save(self.folder / "row_ids.npy", row_ids)


def read_split(folder: str | Path, mmap: bool = True) -> TokenizedSplit:
    """A split folder; with `mmap` the token ids stay on disk and are paged in as rows are read."""
    folder = Path(folder)
    mode: Any = "r" if mmap else None
    types_path = folder / "token_type_ids.npy"
    return TokenizedSplit(
        values=np.load(folder / "input_ids.npy", mmap_mode=mode),
        offsets=np.load(folder / "offsets.npy"),
        type_values=np.load(types_path, mmap_mode=mode) if types_path.is_file() else None,
        labels=np.load(folder / "labels.npy"),
        row_ids=np.load(folder / "row_ids.npy"),
    )


def split_files(folder: str | Path) -> list[Path]:
    """The files of a split folder, in a fixed order (for fingerprints)."""
    folder = Path(folder)
    return [folder / f"{name}.npy" for name in _FILES if (folder / f"{name}.npy").is_file()]


@dataclass(frozen=True)
class TokenizeSummary:
    rows: int
    truncated: int


def tokenize_parquet(
    source: str | Path,
    folder: str | Path,
    tokenizer: Any,
    max_length: int,
    label_names: Sequence[str],
    task: str,
    pair: bool = False,
    chunk_rows: int = 100_000,
) -> TokenizeSummary:
    """Tokenize a split table into a split folder, `chunk_rows` rows at a time."""
    table_file = pq.ParquetFile(source)
    writer = SplitWriter(folder)
    rows = truncated = 0
    for batch in table_file.iter_batches(
        batch_size=chunk_rows, columns=["row_id", "text", "label"]
    ):
        frame = batch.to_pandas()
        split = tokenize_split(
            frame["text"].tolist(),
            frame["label"].tolist(),
            frame["row_id"].to_numpy(),
            tokenizer,
            max_length,
            label_names,
            task,
            pair,
        )
        writer.add(split)
        rows += len(split)
        truncated += int((split.lengths >= max_length).sum())
    empty_labels = encode_labels([], label_names, task)
    writer.close(empty_labels.shape, empty_labels.dtype)
    return TokenizeSummary(rows, truncated)
