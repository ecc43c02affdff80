"""Batches of similar length, padded per batch to a multiple of 8."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from bertpipe.tokens import TokenizedSplit

PAD_MULTIPLE = 8  # tensor-core and oneDNN kernels like shapes that are multiples of 8
MIN_GROUPS = 4  # length groups per epoch, at least


class LengthGroupedBatchSampler:
    """Seeded batches of examples of similar length, in shuffled order.

    Each epoch: shuffle all indices, cut them into groups of `group_size` batches, sort each group
    by length, cut it into batches, and shuffle the batches. Every example appears exactly once
    per epoch, and padding stays small. `set_epoch` makes epoch k the same on a resumed run.

    An epoch has at least 4 groups (fewer batches per group on small data, as Trainer's
    group_by_length does). With a whole small dataset in one group, the sort would make the same
    batches every epoch, and batches of the shortest (or longest) texts, which may share a class.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int,
        group_size: int,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_size = group_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        span = self.batch_size * self.batches_per_group()
        batches: list[list[int]] = []
        for start in range(0, len(order), span):
            group = order[start : start + span]
            # longest first inside a group; stable so equal lengths keep the shuffled order
            group = group[np.argsort(-self.lengths[group], kind="stable")]
            batches.extend(
                group[i : i + self.batch_size].tolist()
                for i in range(0, len(group), self.batch_size)
            )
        return [batches[i] for i in rng.permutation(len(batches))]

    def batches_per_group(self) -> int:
        return min(self.group_size, max(1, len(self) // MIN_GROUPS))

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


def padded_length(longest: int, multiple: int = PAD_MULTIPLE) -> int:
    return -(-longest // multiple) * multiple


def pad_batch(
    split: TokenizedSplit,
    indices: Sequence[int],
    pad_token_id: int,
    drop_full_mask: bool = False,
    boolean_mask: bool = False,
) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask (token_type_ids for pairs): (batch, seq_len), seq_len % 8 == 0.

    `drop_full_mask`: no attention_mask when no row is padded. A mask of ones changes nothing
    (transformers drops it itself), but to find that out transformers reads the mask back
    (`padding_mask.all()` in masking_utils): on a GPU, a wait for the device every forward
    pass. Here the lengths are on the host, so nothing waits.

    `boolean_mask`: the mask as SDPA takes it, (batch, 1, 1, seq_len) booleans, True where a
    token is attended (for a model that `takes_boolean_mask`). transformers passes a 4-D mask
    to the attention as it is, so it never reads a padded batch's mask back either."""
    lengths = split.lengths[list(indices)]
    seq_len = padded_length(int(lengths.max()))
    input_ids = np.full((len(indices), seq_len), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(indices), seq_len), dtype=np.int64)
    token_types = np.zeros((len(indices), seq_len), dtype=np.int64)
    for row, index in enumerate(indices):
        length = lengths[row]
        input_ids[row, :length] = split.ids(index)
        attention_mask[row, :length] = 1
        types = split.types(index)
        if types is not None:
            token_types[row, :length] = types
    batch = {"input_ids": torch.from_numpy(input_ids)}
    if not (drop_full_mask and bool((lengths == seq_len).all())):
        mask = torch.from_numpy(attention_mask)
        batch["attention_mask"] = mask.bool()[:, None, None, :] if boolean_mask else mask
    if split.type_values is not None:
        batch["token_type_ids"] = torch.from_numpy(token_types)
    return batch


class Collator:
    """Turns a batch of indices into padded tensors plus labels (a DataLoader collate_fn)."""

    def __init__(
        self,
        split: TokenizedSplit,
        pad_token_id: int,
        drop_full_mask: bool = False,
        boolean_mask: bool = False,
    ) -> None:
        self.split = split
        self.pad_token_id = pad_token_id
        self.drop_full_mask = drop_full_mask  # see pad_batch
        self.boolean_mask = boolean_mask

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        batch = pad_batch(
            self.split, indices, self.pad_token_id, self.drop_full_mask, self.boolean_mask
        )
        batch["labels"] = torch.from_numpy(self.split.labels[indices])
        return batch


class IndexDataset(torch.utils.data.Dataset[int]):
    """Yields indices; the Collator reads the tokens, so nothing is copied per example."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Inference batches, longest first, so each batch pads to almost nothing."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
