"""Tokenized splits, stored compactly: one flat int32 array of token ids plus row offsets.

A split is a folder of NumPy `.npy` files: input_ids (every row's ids, end to end), offsets
(row i is input_ids[offsets[i]:offsets[i + 1]]), labels, row_ids, and token_type_ids for sentence
pairs. The ids are written chunk by chunk and read memory-mapped, so neither tokenizing nor
training holds the whole corpus's tokens in memory. Nothing is padded on disk; padding happens
per batch (see `batching.Collator`).

A text longer than max_length is cut by a `SequenceLayout`: its start (right truncation), its
start and end (head_tail), or overlapping windows that cover every token. With windows a row is
one window: its label and row_id are its text's, and text_index.npy gives the text (0, 1, ...
in split order) each row belongs to; the windows' logits are pooled back into one prediction
per text (`inference.pool_windows`).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from bertpipe.errors import UserError
from bertpipe.labels import encode_labels

if TYPE_CHECKING:
    from bertpipe.params import Params

TOKENIZE_BATCH = 1024
# head_tail's default share of the head: Sun et al. 2019 ("How to Fine-Tune BERT for Text
# Classification?") found the first 128 and last 382 of 512 tokens best on long reviews
HEAD_SHARE = 128 / 510


@dataclass
class TokenizedSplit:
    """Ragged token ids: row i is `values[offsets[i]:offsets[i + 1]]`."""

    values: np.ndarray  # (total_tokens,) int32
    offsets: np.ndarray  # (n + 1,) int64
    type_values: np.ndarray | None  # token_type_ids for sentence pairs, same layout as values
    labels: np.ndarray  # (n,) int64 | (n, num_labels) float32 | (n,) float32
    row_ids: np.ndarray  # (n,) int64, the row in the split table
    # (n,) int64 with windows: the text each row is a window of, non-decreasing; None: row i is
    # text i
    text_index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_texts(self) -> int:
        if self.text_index is None:
            return len(self)
        return int(self.text_index[-1]) + 1 if len(self.text_index) else 0

    def first_rows(self) -> np.ndarray:
        """The first row of each text, in text order."""
        if self.text_index is None:
            return np.arange(len(self))
        starts = np.ones(len(self.text_index), dtype=bool)
        starts[1:] = self.text_index[1:] != self.text_index[:-1]
        return np.flatnonzero(starts)

    @property
    def text_labels(self) -> np.ndarray:
        """One label per text (its windows share it)."""
        return self.labels if self.text_index is None else self.labels[self.first_rows()]

    @property
    def text_row_ids(self) -> np.ndarray:
        """One split-table row id per text."""
        return self.row_ids if self.text_index is None else self.row_ids[self.first_rows()]

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


@dataclass(frozen=True)
class SequenceLayout:
    """How a text's tokens are fitted into max_length (special tokens included)."""

    max_length: int
    truncation: str = "right"  # right | head_tail
    head_tokens: int | None = None  # head_tail: tokens kept from the start; None: HEAD_SHARE
    stride: int | None = None  # windows: tokens between window starts; None: one sequence

    @property
    def cuts_by_hand(self) -> bool:
        """Whether bertpipe places the pieces itself (the tokenizer only truncates right)."""
        return self.truncation == "head_tail" or self.stride is not None


def sequence_layout(params: Params, split: str) -> SequenceLayout:
    """The layout of `split` ("train", "val", "test" or "predict"): windows everywhere they are
    on, except the train split unless `windows.train`."""
    windows = params.windows.stride is not None and (split != "train" or params.windows.train)
    return SequenceLayout(
        max_length=params.max_length,
        truncation=params.truncation,
        head_tokens=params.tokenize.head_tokens,
        stride=params.windows.stride if windows else None,
    )


def layout_from_training_params(trained: dict[str, Any], default_length: int) -> SequenceLayout:
    """The inference layout recorded in a model folder's training_params.json (a model trained
    before these settings existed: right truncation, no windows)."""
    return SequenceLayout(
        max_length=int(trained.get("max_length", default_length)),
        truncation=trained.get("truncation", "right"),
        head_tokens=trained.get("tokenize", {}).get("head_tokens"),
        stride=trained.get("windows", {}).get("stride"),
    )


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after one text ([CLS] / [SEP], <s> / </s>, ...)."""
    probe = "hello world"
    content = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe)["input_ids"]
    for start in range(len(full) - len(content) + 1):
        if full[start : start + len(content)] == content:
            return full[:start], full[start + len(content) :]
    raise UserError("the tokenizer's special tokens could not be told from the text's tokens")


def _pieces(ids: list[int], content: int, layout: SequenceLayout, head: int) -> list[list[int]]:
    """The token runs of one text that become its rows."""
    if len(ids) <= content:
        return [ids]
    if layout.stride is not None:
        last = len(ids) - content
        starts = [*range(0, last, layout.stride), last]  # the last window ends at the end
        return [ids[start : start + content] for start in starts]
    if layout.truncation == "head_tail":
        return [ids[:head] + ids[len(ids) - (content - head) :]]
    return [ids[:content]]


def _check_layout(layout: SequenceLayout, content: int, specials: int) -> int:
    """The head size for head_tail; one line when the layout cannot fit the model's specials."""
    if content < 1:
        raise UserError(
            f"max_length: {layout.max_length} leaves no room for text after the model's "
            f"{specials} special tokens"
        )
    if layout.stride is not None and layout.stride > content:
        raise UserError(
            f"windows.stride: {layout.stride} is more than the {content} text tokens a window "
            f"holds (max_length {layout.max_length} minus {specials} special tokens), so windows "
            "would skip tokens; lower it"
        )
    head = layout.head_tokens
    if head is None:
        return round(content * HEAD_SHARE)
    if head > content:
        raise UserError(
            f"tokenize.head_tokens: {head} is more than the {content} text tokens max_length "
            f"{layout.max_length} holds after {specials} special tokens; lower it"
        )
    return head


def _encode_by_hand(
    texts: list[Any], tokenizer: Any, layout: SequenceLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, row lengths, the text of each row) for head_tail and windows."""
    before, after = special_tokens(tokenizer)
    content = layout.max_length - len(before) - len(after)
    head = _check_layout(layout, content, len(before) + len(after))
    value_parts: list[np.ndarray] = []
    length_parts: list[np.ndarray] = []
    text_parts: list[np.ndarray] = []
    for start in range(0, len(texts), TOKENIZE_BATCH):
        batch = texts[start : start + TOKENIZE_BATCH]
        # whole texts: the layout decides what is kept
        encoded = tokenizer(batch, add_special_tokens=False, truncation=False, verbose=False)
        rows: list[list[int]] = []
        text_of_row: list[int] = []
        for offset, ids in enumerate(encoded["input_ids"]):
            for piece in _pieces(ids, content, layout, head):
                rows.append(before + piece + after)
                text_of_row.append(start + offset)
        # one flat array per batch, as in encode_texts: Python lists of a whole chunk's ids
        # would take tens of bytes a token
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        count = int(lengths.sum())
        value_parts.append(np.fromiter(itertools.chain.from_iterable(rows), np.int32, count))
        length_parts.append(lengths)
        text_parts.append(np.asarray(text_of_row, dtype=np.int64))
    if not value_parts:
        empty = np.zeros(0, np.int64)
        return np.zeros(0, np.int32), empty, empty
    return np.concatenate(value_parts), np.concatenate(length_parts), np.concatenate(text_parts)


def encode_rows(
    texts: Sequence[Any],
    tokenizer: Any,
    layout: int | SequenceLayout,
    pair: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Tokenize by `layout` (a plain max_length: right truncation): (values, offsets,
    type_values, text_index), text_index None unless the layout makes windows."""
    layout = layout if isinstance(layout, SequenceLayout) else SequenceLayout(layout)
    if not layout.cuts_by_hand:
        return (*encode_texts(texts, tokenizer, layout.max_length, pair), None)
    first, second = _as_inputs(texts, tokenizer, pair)
    if second is not None:
        raise UserError("head_tail truncation and windows need one text, not a sentence pair")
    values, lengths, text_of_row = _encode_by_hand(first, tokenizer, layout)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return values, offsets, None, text_of_row if layout.stride else None


def encode_texts(
    texts: Sequence[Any], tokenizer: Any, max_length: int, pair: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Tokenize in batches with the fast tokenizer, truncating right: (values, offsets,
    type_values)."""
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
    max_length: int | SequenceLayout,
    label_names: Sequence[str],
    task: str,
    pair: bool = False,
) -> TokenizedSplit:
    values, offsets, types, text_index = encode_rows(texts, tokenizer, max_length, pair)
    encoded_labels = encode_labels(labels, label_names, task)
    row_ids = np.asarray(row_ids, dtype=np.int64)
    if text_index is not None:  # a row per window, with its text's label and row id
        encoded_labels, row_ids = encoded_labels[text_index], row_ids[text_index]
    return TokenizedSplit(
        values=values,
        offsets=offsets,
        type_values=types,
        labels=encoded_labels,
        row_ids=row_ids,
        text_index=text_index,
    )


_FILES = ("input_ids", "offsets", "labels", "row_ids", "token_type_ids", "text_index")


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
        self._text_index: list[np.ndarray] = []
        self._texts = 0
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
        if split.text_index is not None:
            if len(self._text_index) != len(self._lengths) - 1:
                raise ValueError("text_index must be given for every chunk or none")
            self._text_index.append(split.text_index + self._texts)
        self._texts += split.num_texts

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
        if self._text_index:
            np.save(self.folder / "text_index.npy", np.concatenate(self._text_index))


def read_split(folder: str | Path, mmap: bool = True) -> TokenizedSplit:
    """A split folder; with `mmap` the token ids stay on disk and are paged in as rows are read."""
    folder = Path(folder)
    mode: Any = "r" if mmap else None
    types_path = folder / "token_type_ids.npy"
    text_index_path = folder / "text_index.npy"
    return TokenizedSplit(
        values=np.load(folder / "input_ids.npy", mmap_mode=mode),
        offsets=np.load(folder / "offsets.npy"),
        type_values=np.load(types_path, mmap_mode=mode) if types_path.is_file() else None,
        labels=np.load(folder / "labels.npy"),
        row_ids=np.load(folder / "row_ids.npy"),
        text_index=np.load(text_index_path) if text_index_path.is_file() else None,
    )


def split_files(folder: str | Path) -> list[Path]:
    """The files of a split folder, in a fixed order (for fingerprints)."""
    folder = Path(folder)
    return [folder / f"{name}.npy" for name in _FILES if (folder / f"{name}.npy").is_file()]


@dataclass(frozen=True)
class TokenizeSummary:
    rows: int  # texts
    truncated: int  # texts longer than one sequence: cut, or split into windows
    sequences: int  # rows written: one per text, or one per window


def tokenize_parquet(
    source: str | Path,
    folder: str | Path,
    tokenizer: Any,
    layout: int | SequenceLayout,
    label_names: Sequence[str],
    task: str,
    pair: bool = False,
    chunk_rows: int = 100_000,
) -> TokenizeSummary:
    """Tokenize a split table into a split folder, `chunk_rows` rows at a time."""
    layout = layout if isinstance(layout, SequenceLayout) else SequenceLayout(layout)
    table_file = pq.ParquetFile(source)
    writer = SplitWriter(folder)
    texts = truncated = sequences = 0
    for batch in table_file.iter_batches(
        batch_size=chunk_rows, columns=["row_id", "text", "label"]
    ):
        frame = batch.to_pandas()
        split = tokenize_split(
            frame["text"].tolist(),
            frame["label"].tolist(),
            frame["row_id"].to_numpy(),
            tokenizer,
            layout,
            label_names,
            task,
            pair,
        )
        writer.add(split)
        texts += split.num_texts
        sequences += len(split)
        if split.text_index is not None:
            truncated += int((np.bincount(split.text_index, minlength=split.num_texts) > 1).sum())
        else:
            # a full-length row may be exactly max_length long, or cut: either way it filled it
            truncated += int((split.lengths >= layout.max_length).sum())
    empty_labels = encode_labels([], label_names, task)
    writer.close(empty_labels.shape, empty_labels.dtype)
    return TokenizeSummary(texts, truncated, sequences)
