"""Tokenized splits: ragged ids without padding, truncation, and the split-folder round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import write_split

from bertpipe.tokens import (
    SplitWriter,
    TokenizedSplit,
    encode_texts,
    read_split,
    tokenize_parquet,
    tokenize_split,
)

LONG = "the patient reports chest pain and shortness of breath " * 20
TEXTS = ["chest pain", LONG, "cough", "patient denies fever and chills"]


@pytest.fixture(scope="module")
def tokenizer(tiny_bert: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def assert_splits_equal(left: TokenizedSplit, right: TokenizedSplit) -> None:
    np.testing.assert_array_equal(left.values, right.values)
    np.testing.assert_array_equal(left.offsets, right.offsets)
    np.testing.assert_array_equal(left.labels, right.labels)
    np.testing.assert_array_equal(left.row_ids, right.row_ids)
    assert left.labels.dtype == right.labels.dtype
    assert left.labels.shape == right.labels.shape
    if left.type_values is None:
        assert right.type_values is None
    else:
        assert right.type_values is not None
        np.testing.assert_array_equal(left.type_values, right.type_values)


def test_no_padding_stored(tokenizer: Any) -> None:
    values, offsets, types = encode_texts(TEXTS, tokenizer, max_length=64)
    assert types is None
    assert values.dtype == np.int32
    assert offsets.dtype == np.int64
    assert offsets[0] == 0 and offsets[-1] == len(values)
    assert tokenizer.pad_token_id not in values.tolist()
    for row, text in enumerate(TEXTS):
        expected = tokenizer(text, truncation=True, max_length=64)["input_ids"]
        assert values[offsets[row] : offsets[row + 1]].tolist() == expected
    lengths = np.diff(offsets)
    assert len(set(lengths.tolist())) > 1  # ragged: each row keeps its own length


def test_truncation_at_max_length(tokenizer: Any) -> None:
    values, offsets, _ = encode_texts(TEXTS, tokenizer, max_length=16)
    lengths = np.diff(offsets)
    assert lengths.max() == 16
    assert lengths[1] == 16  # the long text is cut
    assert lengths[0] < 16  # a short one is not padded up
    long_row = values[offsets[1] : offsets[2]]
    assert long_row[0] == tokenizer.cls_token_id
    assert long_row[-1] == tokenizer.sep_token_id


def test_tokenize_batches_match_one_call(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = encode_texts(TEXTS, tokenizer, max_length=32)
    monkeypatch.setattr("bertpipe.tokens.TOKENIZE_BATCH", 3)
    batched = encode_texts(TEXTS, tokenizer, max_length=32)
    np.testing.assert_array_equal(whole[0], batched[0])
    np.testing.assert_array_equal(whole[1], batched[1])


def test_split_accessors(tokenizer: Any) -> None:
    split = tokenize_split(
        TEXTS, ["a", "b", "a", "b"], np.arange(4), tokenizer, 16, ["a", "b"], "binary"
    )
    assert len(split) == 4
    assert split.lengths.tolist() == np.diff(split.offsets).tolist()
    assert split.ids(2).tolist() == tokenizer("cough")["input_ids"]
    assert split.types(2) is None
    assert split.labels.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("task", "labels", "names", "dtype", "shape"),
    [
        ("multiclass", ["b", "c", "a", "b"], ["a", "b", "c"], np.int64, (4,)),
        ("multilabel", [["a"], [], ["a", "c"], ["b", "c"]], ["a", "b", "c"], np.float32, (4, 3)),
        ("regression", [0.5, -1.0, 2.25, 3.0], [], np.float32, (4,)),
    ],
)
def test_write_read_round_trip(
    tokenizer: Any,
    tmp_path: Path,
    task: str,
    labels: list[Any],
    names: list[str],
    dtype: type,
    shape: tuple[int, ...],
) -> None:
    split = tokenize_split(TEXTS, labels, np.array([9, 3, 5, 0]), tokenizer, 24, names, task)
    write_split(split, tmp_path / "train")
    back = read_split(tmp_path / "train")
    assert_splits_equal(split, back)
    assert back.labels.dtype == dtype
    assert back.labels.shape == shape
    assert back.values.dtype == np.int32
    assert back.row_ids.tolist() == [9, 3, 5, 0]
    for index in range(len(split)):
        assert back.ids(index).tolist() == split.ids(index).tolist()
    # labels and row ids come back writable (torch.from_numpy needs that)
    assert back.labels.flags.writeable
    assert back.row_ids.flags.writeable


def test_sentence_pairs_have_token_types(tokenizer: Any, tmp_path: Path) -> None:
    pairs = [["chest pain", "cough"], ["fever", LONG]]
    split = tokenize_split(
        pairs, ["x", "y"], np.arange(2), tokenizer, 20, ["x", "y"], "binary", pair=True
    )
    assert split.type_values is not None
    assert split.type_values.shape == split.values.shape
    for row, (first, second) in enumerate(pairs):
        expected = tokenizer(first, second, truncation=True, max_length=20)
        assert split.ids(row).tolist() == expected["input_ids"]
        assert split.types(row).tolist() == expected["token_type_ids"]
    assert split.lengths[1] == 20
    first_types = split.types(0).tolist()
    assert first_types[0] == 0 and first_types[-1] == 1  # both segments present
    write_split(split, tmp_path / "pairs")
    assert_splits_equal(split, read_split(tmp_path / "pairs"))


def test_several_columns_without_pair_are_joined_with_sep(tokenizer: Any) -> None:
    values, offsets, types = encode_texts([["chest pain", "cough"]], tokenizer, 32, pair=False)
    assert types is None
    assert offsets.tolist() == [0, len(values)]
    expected = tokenizer("chest pain [SEP] cough", truncation=True, max_length=32)["input_ids"]
    assert values.tolist() == expected
    assert values.tolist().count(tokenizer.sep_token_id) == 2


def test_ids_are_memory_mapped_not_loaded(tokenizer: Any, tmp_path: Path) -> None:
    split = tokenize_split(
        TEXTS, ["a", "b", "a", "b"], np.arange(4), tokenizer, 24, ["a", "b"], "binary"
    )
    write_split(split, tmp_path / "train")
    mapped = read_split(tmp_path / "train")
    assert isinstance(mapped.values, np.memmap)
    assert not mapped.values.flags.writeable  # read-only: a bug cannot corrupt the stage output
    loaded = read_split(tmp_path / "train", mmap=False)
    assert not isinstance(loaded.values, np.memmap)
    assert_splits_equal(mapped, loaded)
    # the files are standard .npy, readable without bertpipe
    assert np.load(tmp_path / "train" / "input_ids.npy").tolist() == split.values.tolist()


def test_writer_in_chunks_equals_one_write(tokenizer: Any, tmp_path: Path) -> None:
    pairs = [[text, TEXTS[-1 - row]] for row, text in enumerate(TEXTS)] * 3
    labels = ["a", "b", "a", "b"] * 3
    whole = tokenize_split(pairs, labels, np.arange(12), tokenizer, 24, ["a", "b"], "binary", True)
    writer = SplitWriter(tmp_path / "chunked")
    for start in range(0, 12, 5):  # 5 + 5 + 2 rows
        rows = slice(start, start + 5)
        writer.add(
            tokenize_split(
                pairs[rows],
                labels[rows],
                np.arange(12)[rows],
                tokenizer,
                24,
                ["a", "b"],
                "binary",
                True,
            )
        )
    writer.close()
    write_split(whole, tmp_path / "whole")
    assert_splits_equal(whole, read_split(tmp_path / "chunked"))
    for name in ("input_ids", "token_type_ids", "offsets", "labels", "row_ids"):
        chunked = (tmp_path / "chunked" / f"{name}.npy").read_bytes()
        assert chunked == (tmp_path / "whole" / f"{name}.npy").read_bytes(), name
    assert not list((tmp_path / "chunked").glob("*.raw"))


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_tokenize_parquet_in_chunks_equals_tokenize_split(
    tokenizer: Any, tmp_path: Path, task: str
) -> None:
    import pandas as pd

    texts = [f"{text} {row}" for row in range(5) for text in TEXTS]  # 20 rows
    labels: list[Any] = (
        [["a"], ["a", "b"], [], ["b"]] * 5 if task == "multilabel" else ["a", "b", "b", "a"] * 5
    )
    row_ids = np.arange(100, 120)
    pd.DataFrame({"row_id": row_ids, "text": texts, "label": labels}).to_parquet(
        tmp_path / "train.parquet"
    )
    summary = tokenize_parquet(
        tmp_path / "train.parquet",
        tmp_path / "train",
        tokenizer,
        16,
        ["a", "b"],
        task,
        chunk_rows=3,
    )
    expected = tokenize_split(texts, labels, row_ids, tokenizer, 16, ["a", "b"], task)
    assert_splits_equal(expected, read_split(tmp_path / "train"))
    assert summary.rows == 20
    assert summary.truncated == int((expected.lengths >= 16).sum()) > 0


def test_an_empty_split_table_gives_an_empty_folder(tokenizer: Any, tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"row_id": np.zeros(0, np.int64), "text": [], "label": []})
    frame.astype({"text": str, "label": str}).to_parquet(tmp_path / "val.parquet")
    tokenize_parquet(tmp_path / "val.parquet", tmp_path / "val", tokenizer, 16, ["a"], "multilabel")
    back = read_split(tmp_path / "val")
    assert len(back) == 0 and back.values.size == 0
    assert back.labels.shape == (0, 1) and back.labels.dtype == np.float32


def test_empty_input(tokenizer: Any) -> None:
    values, offsets, types = encode_texts([], tokenizer, 16)
    assert values.size == 0
    assert offsets.tolist() == [0]
    assert types is None
