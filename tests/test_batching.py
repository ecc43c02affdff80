"""Length-grouped, seeded batches; per-batch padding to a multiple of 8."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertpipe.batching import (
    Collator,
    IndexDataset,
    LengthGroupedBatchSampler,
    pad_batch,
    padded_length,
    sorted_batches,
)
from bertpipe.tokens import TokenizedSplit

PAD = 0


def random_lengths(n: int = 1000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 256, size=n)


def split_of(rows: list[list[int]], types: list[list[int]] | None = None) -> TokenizedSplit:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(row) for row in rows], out=offsets[1:])
    values = np.concatenate([np.asarray(row, dtype=np.int32) for row in rows])
    type_values = None
    if types is not None:
        type_values = np.concatenate([np.asarray(row, dtype=np.int8) for row in types])
    return TokenizedSplit(
        values=values,
        offsets=offsets,
        type_values=type_values,
        labels=np.arange(len(rows), dtype=np.int64),
        row_ids=np.arange(len(rows), dtype=np.int64),
    )


def mean_padding(batches: list[list[int]], lengths: np.ndarray) -> float:
    waste = [
        int(lengths[batch].max()) * len(batch) - int(lengths[batch].sum()) for batch in batches
    ]
    return sum(waste) / int(lengths.sum())


# --- LengthGroupedBatchSampler -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "batch_size", "group_size"), [(1000, 16, 4), (37, 8, 2), (5, 16, 50)]
)
def test_every_index_exactly_once_per_epoch(n: int, batch_size: int, group_size: int) -> None:
    sampler = LengthGroupedBatchSampler(
        random_lengths(n), batch_size, seed=1, group_size=group_size
    )
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(index for batch in batches for index in batch) == list(range(n))
        assert all(0 < len(batch) <= batch_size for batch in batches)
        assert len(batches) == len(sampler) == -(-n // batch_size)


def test_at_most_one_short_batch() -> None:
    sampler = LengthGroupedBatchSampler(random_lengths(1000), 16, seed=0, group_size=4)
    short = [batch for batch in sampler.batches() if len(batch) < 16]
    assert [len(batch) for batch in short] == [1000 % 16]


class DropLastSampler(LengthGroupedBatchSampler):
    """The sampler with its one short batch dropped, as a DataLoader's drop_last would: a
    fixed-shape variant that training does not use, kept here to show the batches compose."""

    def batches(self) -> list[list[int]]:
        return [batch for batch in super().batches() if len(batch) == self.batch_size]

    def __len__(self) -> int:
        return len(self.lengths) // self.batch_size


def test_drop_last() -> None:
    sampler = DropLastSampler(random_lengths(1000), 16, seed=0, group_size=4)
    batches = sampler.batches()
    assert len(batches) == len(sampler) == 1000 // 16
    assert all(len(batch) == 16 for batch in batches)
    seen = [index for batch in batches for index in batch]
    assert len(seen) == len(set(seen)) == 1000 - 1000 % 16


def test_drop_last_keeps_an_exact_multiple() -> None:
    sampler = DropLastSampler(random_lengths(64), 16, seed=0, group_size=50)
    assert len(sampler.batches()) == len(sampler) == 4


def test_same_seed_and_epoch_same_batches() -> None:
    lengths = random_lengths()
    first = LengthGroupedBatchSampler(lengths, 16, seed=5, group_size=4)
    second = LengthGroupedBatchSampler(lengths, 16, seed=5, group_size=4)
    first.set_epoch(3)
    second.set_epoch(3)
    assert first.batches() == second.batches()
    assert first.batches() == first.batches()  # iterating twice does not advance anything


def test_epochs_and_seeds_differ() -> None:
    lengths = random_lengths()
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=5, group_size=4)
    epoch0 = sampler.batches()
    sampler.set_epoch(1)
    epoch1 = sampler.batches()
    assert epoch0 != epoch1
    assert {tuple(batch) for batch in epoch0} != {tuple(batch) for batch in epoch1}
    other_seed = LengthGroupedBatchSampler(lengths, 16, seed=6, group_size=4).batches()
    assert other_seed != epoch0


def test_resumed_sampler_repeats_the_epoch() -> None:
    lengths = random_lengths()
    trained = LengthGroupedBatchSampler(lengths, 16, seed=5, group_size=50)
    trained.set_epoch(2)
    resumed = LengthGroupedBatchSampler(lengths, 16, seed=5, group_size=50)
    resumed.set_epoch(2)
    assert trained.batches() == resumed.batches()


def test_batches_are_length_homogeneous() -> None:
    lengths = random_lengths(2000)
    grouped = LengthGroupedBatchSampler(lengths, 16, seed=0, group_size=50).batches()
    order = np.random.default_rng(0).permutation(len(lengths))
    shuffled = [order[i : i + 16].tolist() for i in range(0, len(order), 16)]
    assert mean_padding(grouped, lengths) < 0.1 * mean_padding(shuffled, lengths)


def test_batch_order_is_shuffled_not_sorted() -> None:
    lengths = np.arange(1600)  # 100 batches: 2 groups of 50, unshuffled they would come sorted
    batches = LengthGroupedBatchSampler(lengths, 16, seed=0, group_size=50).batches()
    longest = [int(lengths[batch].max()) for batch in batches]
    assert longest != sorted(longest, reverse=True)
    assert longest != sorted(longest)
    # inside each batch the lengths are close: sorted within the group, then cut
    spread = [int(lengths[batch].max() - lengths[batch].min()) for batch in batches]
    assert np.median(spread) < 60  # 16 of 800 random lengths out of 1600: about 2 * 15 apart


def test_small_data_gets_new_batches_every_epoch() -> None:
    # 25 batches: one group of 50 would give the same 25 sorted batches every epoch; with at
    # least 4 groups an epoch, group membership (so batch composition) changes between epochs
    lengths = np.arange(400)
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=0, group_size=50)
    assert sampler.batches_per_group() == 6
    sampler.set_epoch(1)
    first = {frozenset(batch) for batch in sampler.batches()}
    sampler.set_epoch(2)
    second = {frozenset(batch) for batch in sampler.batches()}
    assert len(first & second) <= 2
    # large data keeps the configured group size
    assert (
        LengthGroupedBatchSampler(np.arange(16_000), 16, 0, group_size=50).batches_per_group() == 50
    )


def test_group_size_one_is_plain_shuffled_batches() -> None:
    lengths = np.arange(100)
    sampler = LengthGroupedBatchSampler(lengths, 10, seed=0, group_size=1)
    batches = sampler.batches()
    assert sorted(index for batch in batches for index in batch) == list(range(100))
    # each batch is sorted longest first, but batches mix lengths across the whole range
    assert all(list(lengths[batch]) == sorted(lengths[batch], reverse=True) for batch in batches)
    assert mean_padding(batches, lengths + 1) > 0.3


# --- padding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("longest", "expected"), [(1, 8), (7, 8), (8, 8), (9, 16), (16, 16), (17, 24), (129, 136)]
)
def test_padded_length(longest: int, expected: int) -> None:
    assert padded_length(longest) == expected


def test_pad_batch_to_a_multiple_of_eight() -> None:
    rows = [[101, 5, 6, 102], [101, *range(10, 19), 102], [101, 102]]  # lengths 4, 11, 2
    split = split_of(rows)
    batch = pad_batch(split, [1, 0, 2], pad_token_id=PAD)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].shape == (3, 16)
    assert batch["input_ids"].dtype == torch.int64
    assert batch["attention_mask"].dtype == torch.int64
    for row, index in enumerate([1, 0, 2]):
        length = len(rows[index])
        assert batch["input_ids"][row, :length].tolist() == rows[index]
        assert batch["input_ids"][row, length:].tolist() == [PAD] * (16 - length)
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (16 - length)


def test_pad_batch_uses_the_pad_id() -> None:
    batch = pad_batch(split_of([[7, 7, 7]]), [0], pad_token_id=99)
    assert batch["input_ids"].tolist() == [[7, 7, 7, 99, 99, 99, 99, 99]]


def test_pad_batch_exact_multiple_adds_nothing() -> None:
    batch = pad_batch(split_of([list(range(1, 9)), [1, 2]]), [0, 1], pad_token_id=PAD)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].sum().item() == 10


def test_pad_batch_sentence_pairs() -> None:
    rows = [[101, 5, 102, 6, 7, 102], [101, 8, 102, 9, 102]]
    types = [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1]]
    batch = pad_batch(split_of(rows, types), [0, 1], pad_token_id=PAD)
    assert batch["token_type_ids"].tolist() == [
        [0, 0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 1, 1, 0, 0, 0],
    ]


def test_collator_adds_labels() -> None:
    split = split_of([[1, 2], [1, 2, 3], [4]])
    batch = Collator(split, pad_token_id=PAD)([2, 0])
    assert batch["labels"].tolist() == [2, 0]
    # the model's inputs and the labels, nothing else: train_step passes all but labels on
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[4, *[PAD] * 7], [1, 2, *[PAD] * 6]]


def test_index_dataset() -> None:
    dataset = IndexDataset(3)
    assert len(dataset) == 3
    assert [dataset[i] for i in range(3)] == [0, 1, 2]


# --- sorted_batches ------------------------------------------------------------------------------


def test_sorted_batches_cover_all_indices_longest_first() -> None:
    lengths = random_lengths(103)
    batches = sorted_batches(lengths, 10)
    assert [len(batch) for batch in batches] == [10] * 10 + [3]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(103))
    assert list(lengths[flat]) == sorted(lengths, reverse=True)


def test_sorted_batches_keeps_ties_in_input_order() -> None:
    batches = sorted_batches(np.array([3, 5, 3, 5]), 2)
    assert [batch.tolist() for batch in batches] == [[1, 3], [0, 2]]


def test_a_mask_of_ones_is_dropped_only_when_asked_and_only_then() -> None:
    exact = split_of([list(range(1, 9)), list(range(11, 19))])  # both 8 tokens: no padding
    assert "attention_mask" in pad_batch(exact, [0, 1], pad_token_id=PAD)
    assert set(pad_batch(exact, [0, 1], PAD, drop_full_mask=True)) == {"input_ids"}
    padded = split_of([list(range(1, 9)), [1, 2]])
    kept = pad_batch(padded, [0, 1], PAD, drop_full_mask=True)
    assert kept["attention_mask"].sum().item() == 10
    collated = Collator(exact, pad_token_id=PAD, drop_full_mask=True)([1, 0])
    assert set(collated) == {"input_ids", "labels"}
