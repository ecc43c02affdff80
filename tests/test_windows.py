"""Long texts: head_tail truncation, overlapping windows, and windows pooled back per text."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_tiny_bert
from test_tokens import assert_splits_equal

from bertpipe.errors import UserError
from bertpipe.inference import pool_windows, predict_logits
from bertpipe.labels import encode_labels
from bertpipe.params import parse_params
from bertpipe.tokens import (
    SequenceLayout,
    encode_rows,
    read_split,
    sequence_layout,
    tokenize_parquet,
    tokenize_split,
)

WORDS = [f"w{i}" for i in range(60)]


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every word w0..w59 one token, so positions can be read off by hand."""
    from transformers import AutoTokenizer

    folder = build_tiny_bert(tmp_path_factory.mktemp("words"), WORDS)
    return AutoTokenizer.from_pretrained(folder)


def tokens_of(tokenizer: Any, values: np.ndarray, offsets: np.ndarray, row: int) -> list[str]:
    return tokenizer.convert_ids_to_tokens(values[offsets[row] : offsets[row + 1]].tolist())


def test_head_tail_by_hand(word_tokenizer: Any) -> None:
    text = " ".join(WORDS[:20])
    layout = SequenceLayout(max_length=8, truncation="head_tail", head_tokens=2)
    values, offsets, types, text_index = encode_rows([text, "w7 w8"], word_tokenizer, layout)
    # 8 = [CLS] + 2 head + 4 tail + [SEP]
    assert tokens_of(word_tokenizer, values, offsets, 0) == [
        "[CLS]", "w0", "w1", "w16", "w17", "w18", "w19", "[SEP]",
    ]  # fmt: skip
    assert tokens_of(word_tokenizer, values, offsets, 1) == ["[CLS]", "w7", "w8", "[SEP]"]
    assert types is None and text_index is None


def test_head_tail_default_head_is_a_quarter(word_tokenizer: Any) -> None:
    text = " ".join(WORDS)
    layout = SequenceLayout(max_length=42, truncation="head_tail")  # 40 text tokens
    values, offsets, _, _ = encode_rows([text], word_tokenizer, layout)
    tokens = tokens_of(word_tokenizer, values, offsets, 0)
    assert tokens[1:11] == WORDS[:10]  # round(40 * 128 / 510) = 10 from the start
    assert tokens[11:-1] == WORDS[-30:]


def test_head_tail_leaves_short_texts_and_right_alone(word_tokenizer: Any) -> None:
    texts = ["w1 w2 w3", " ".join(WORDS)]
    right = encode_rows(texts, word_tokenizer, SequenceLayout(16))
    expected = [word_tokenizer(t, truncation=True, max_length=16)["input_ids"] for t in texts]
    assert [right[0][right[1][i] : right[1][i + 1]].tolist() for i in range(2)] == expected
    head_tail = encode_rows(texts, word_tokenizer, SequenceLayout(16, "head_tail", 4))
    assert head_tail[0][: head_tail[1][1]].tolist() == expected[0]


@pytest.mark.parametrize("stride", [1, 3, 5, 6])
@pytest.mark.parametrize("length", [0, 1, 6, 7, 13, 59])
def test_windows_cover_every_token(word_tokenizer: Any, stride: int, length: int) -> None:
    text = " ".join(WORDS[:length])
    layout = SequenceLayout(max_length=8, stride=stride)  # 6 text tokens a window
    values, offsets, _, text_index = encode_rows(["w0", text, "w1"], word_tokenizer, layout)
    assert text_index is not None
    assert np.all(np.diff(text_index) >= 0) and set(text_index.tolist()) == {0, 1, 2}
    rows = np.flatnonzero(text_index == 1)
    windows = [tokens_of(word_tokenizer, values, offsets, int(row)) for row in rows]
    seen: list[str] = []
    for window in windows:
        assert window[0] == "[CLS]" and window[-1] == "[SEP]" and len(window) <= 8
        seen.extend(window[1:-1])
    assert set(seen) == set(WORDS[:length])  # every token is in a window
    starts = [WORDS.index(window[1]) for window in windows if len(window) > 2]
    if length > 6:
        # windows start `stride` apart; the last one ends at the text's end
        assert starts[:-1] == list(range(0, length - 6, stride))
        assert windows[-1][1:-1] == WORDS[length - 6 : length]
        assert all(len(window) == 8 for window in windows)
    else:
        assert len(windows) == 1


def test_windows_keep_labels_and_row_ids_of_their_text(word_tokenizer: Any) -> None:
    texts = [" ".join(WORDS[:20]), "w1", " ".join(WORDS[:9])]
    split = tokenize_split(
        texts, ["b", "a", "b"], np.array([7, 3, 5]), word_tokenizer,
        SequenceLayout(8, stride=4), ["a", "b"], "multiclass",
    )  # fmt: skip
    assert split.num_texts == 3 and len(split) > 3
    counts = np.bincount(split.text_index).tolist()
    assert counts == [5, 1, 2]  # 20 tokens: starts 0 4 8 12 14; 9 tokens: starts 0 3
    assert split.row_ids.tolist() == [7] * 5 + [3] + [5] * 2
    assert split.labels.tolist() == [1] * 5 + [0] + [1] * 2
    assert split.text_row_ids.tolist() == [7, 3, 5]
    assert split.text_labels.tolist() == [1, 0, 1]


def test_pool_windows_mean_and_max() -> None:
    logits = np.array([[1, 0], [3, -2], [5, 5], [0, 4], [2, 2]], dtype=np.float32)
    text_index = np.array([0, 0, 1, 2, 2])
    np.testing.assert_allclose(pool_windows(logits, text_index, "mean"), [[2, -1], [5, 5], [1, 3]])
    np.testing.assert_allclose(pool_windows(logits, text_index, "max"), [[3, 0], [5, 5], [2, 4]])
    assert pool_windows(logits, None, "max") is logits


class TokenSum(torch.nn.Module):
    """A stand-in model whose logits are (sum of ids, number of real tokens) per row."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(num_labels=2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> Any:
        mask = attention_mask.float()
        logits = torch.stack([(input_ids * attention_mask).sum(1).float(), mask.sum(1)], dim=1)
        return SimpleNamespace(logits=logits)


def test_pooled_logits_map_back_to_texts_in_input_order(word_tokenizer: Any) -> None:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(n))) for n in rng.integers(0, 40, size=25)]
    split = tokenize_split(
        texts, ["a"] * 25, np.arange(25), word_tokenizer,
        SequenceLayout(10, stride=5), ["a"], "multiclass",
    )  # fmt: skip
    # batches run longest first, in an order unlike the texts'
    pooled = predict_logits(TokenSum(), split, 3, 0, pooling="mean")
    assert pooled.shape == (25, 2)
    for text, row in zip(texts, pooled, strict=True):
        windows = encode_rows([text], word_tokenizer, SequenceLayout(10, stride=5))
        sums = [
            windows[0][windows[1][i] : windows[1][i + 1]].sum() for i in range(len(windows[1]) - 1)
        ]
        assert row[0] == pytest.approx(np.mean(sums))


def labels_of(task: str, rng: np.random.Generator, count: int) -> list[Any]:
    if task == "multilabel":
        label_sets = [[], ["a"], ["b"], ["a", "b"]]
        return [label_sets[i] for i in rng.integers(0, 4, size=count)]
    if task == "regression":
        return rng.normal(size=count).round(3).tolist()
    return rng.choice(["a", "b"], size=count).tolist()


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_chunked_windows_equal_the_whole_split(
    task: str, word_tokenizer: Any, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, size=int(n))) for n in rng.integers(0, 30, size=23)]
    labels = labels_of(task, rng, 23)
    frame = pd.DataFrame({"row_id": np.arange(23) * 2, "text": texts, "label": labels})
    frame.to_parquet(tmp_path / "train.parquet")
    layout = SequenceLayout(8, stride=3)
    summary = tokenize_parquet(
        tmp_path / "train.parquet", tmp_path / "train", word_tokenizer, layout,
        ["a", "b"], task, chunk_rows=4,
    )  # fmt: skip
    whole = tokenize_split(
        texts, labels, frame["row_id"].to_numpy(), word_tokenizer, layout, ["a", "b"], task
    )
    chunked = read_split(tmp_path / "train")
    assert_splits_equal(chunked, whole)
    np.testing.assert_array_equal(chunked.text_index, whole.text_index)
    assert summary.rows == 23 and summary.sequences == len(whole)
    assert summary.truncated == int((np.bincount(whole.text_index) > 1).sum())
    # every window carries its own text's label: a multi-hot row, a class id or a target
    per_text = encode_labels(labels, ["a", "b"], task)
    np.testing.assert_array_equal(chunked.labels, per_text[chunked.text_index])
    np.testing.assert_array_equal(chunked.text_labels, per_text)


def test_layout_of_each_split() -> None:
    params = parse_params({"max_length": 64, "truncation": "head_tail", "windows": {"stride": 32}})
    assert sequence_layout(params, "train").stride is None  # windows.train: false
    assert sequence_layout(params, "val") == SequenceLayout(64, "head_tail", None, 32)
    assert sequence_layout(params, "predict").stride == 32
    trained = params.model_copy(
        update={"windows": params.windows.model_copy(update={"train": True})}
    )
    assert sequence_layout(trained, "train").stride == 32


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_length": 64, "tokenize": {"head_tokens": 64}}, "must be below max_length (64)"),
        ({"max_length": 64, "windows": {"stride": 0}}, "windows.stride: Input should be greater"),
        ({"max_length": 64, "windows": {"stride": -3}}, "windows.stride: Input should be greater"),
        ({"max_length": 64, "windows": {"stride": 64}}, "windows.stride (64) must be below"),
        ({"windows": {"pooling": "median"}}, "windows.pooling: Input should be 'mean' or 'max'"),
        ({"truncation": "left"}, "truncation: Input should be 'right' or 'head_tail'"),
        (
            {"truncation": "head_tail", "data": {"text_column": ["a", "b"], "text_pair": True}},
            "with data.text_pair: true use truncation: right",
        ),
    ],
)
def test_bad_layout_params_are_one_line(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_params(raw)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (SequenceLayout(8, stride=7), "windows.stride: 7 is more than the 6 text tokens"),
        (SequenceLayout(8, "head_tail", head_tokens=7), "tokenize.head_tokens: 7 is more than"),
    ],
)
def test_layouts_that_do_not_fit_the_models_special_tokens(
    word_tokenizer: Any, layout: SequenceLayout, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        encode_rows(["w1 w2"], word_tokenizer, layout)
