"""The seeded, stratified, group-aware train/val/test split."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from helpers import SplitResult, clean_frame, split_frame

from bertpipe.errors import UserError
from bertpipe.params import CleanParams, DataParams, SplitParams
from bertpipe.split import SPLIT_NAMES, strata_for


@pytest.fixture(scope="module")
def cleaned_sample(sample_frame: pd.DataFrame) -> pd.DataFrame:
    data = DataParams(carry_columns=["note_id", "patient_id"])
    return clean_frame(sample_frame, data, CleanParams(), "multiclass").frame


def labelled(counts: dict[str, int]) -> pd.DataFrame:
    labels = [name for name, count in counts.items() for _ in range(count)]
    return pd.DataFrame({"text": [f"note {i}" for i in range(len(labels))], "label": labels})


def sizes(result: SplitResult) -> dict[str, int]:
    return {name: len(result.frames[name]) for name in SPLIT_NAMES}


def assert_partition(result: SplitResult, n: int) -> None:
    ids = [set(result.frames[name]["row_id"]) for name in SPLIT_NAMES]
    assert sum(len(part) for part in ids) == n
    assert set.union(*ids) == set(range(n))


def test_same_seed_same_split(cleaned_sample: pd.DataFrame) -> None:
    first = split_frame(cleaned_sample, SplitParams(), "multiclass", seed=7)
    second = split_frame(cleaned_sample.copy(), SplitParams(), "multiclass", seed=7)
    for name in SPLIT_NAMES:
        pd.testing.assert_frame_equal(first.frames[name], second.frames[name])


def test_other_seed_other_split(cleaned_sample: pd.DataFrame) -> None:
    first = split_frame(cleaned_sample, SplitParams(), "multiclass", seed=7)
    other = split_frame(cleaned_sample, SplitParams(), "multiclass", seed=8)
    assert set(first.frames["test"]["row_id"]) != set(other.frames["test"]["row_id"])


def test_row_ids_partition_the_input_and_keep_the_rows(cleaned_sample: pd.DataFrame) -> None:
    result = split_frame(cleaned_sample, SplitParams(), "multiclass", seed=42)
    assert_partition(result, len(cleaned_sample))
    for name in SPLIT_NAMES:
        frame = result.frames[name]
        assert list(frame.columns) == ["row_id", *cleaned_sample.columns]
        original = cleaned_sample.iloc[frame["row_id"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(frame.drop(columns="row_id"), original)
    assert "row_id" not in cleaned_sample.columns  # the input is not modified


def test_sizes_follow_test_and_val_size(cleaned_sample: pd.DataFrame) -> None:
    n = len(cleaned_sample)
    result = split_frame(cleaned_sample, SplitParams(test_size=0.2, val_size=0.1), "multiclass", 0)
    assert abs(sizes(result)["test"] - 0.2 * n) <= 2
    assert abs(sizes(result)["val"] - 0.1 * n) <= 2
    result = split_frame(cleaned_sample, SplitParams(test_size=0.3, val_size=0.15), "multiclass", 0)
    assert abs(sizes(result)["test"] - 0.3 * n) <= 2
    assert abs(sizes(result)["val"] - 0.15 * n) <= 2


def test_stratified_class_proportions(cleaned_sample: pd.DataFrame) -> None:
    result = split_frame(cleaned_sample, SplitParams(), "multiclass", seed=42)
    assert result.stratified
    assert result.warnings == []
    overall = cleaned_sample["label"].value_counts(normalize=True)
    for name in SPLIT_NAMES:
        share = result.frames[name]["label"].value_counts(normalize=True)
        gap = (share.reindex(overall.index, fill_value=0) - overall).abs().max()
        assert gap < 0.02, name


def test_stratified_beats_chance_on_a_skewed_toy_set() -> None:
    frame = labelled({"common": 90, "rare": 10})
    result = split_frame(frame, SplitParams(test_size=0.2, val_size=0.1), "multiclass", seed=3)
    counts = {name: int((f["label"] == "rare").sum()) for name, f in result.frames.items()}
    assert counts == {"train": 7, "val": 1, "test": 2}


def test_group_column_keeps_each_patient_in_one_split(cleaned_sample: pd.DataFrame) -> None:
    params = SplitParams(group_column="patient_id")
    result = split_frame(cleaned_sample, params, "multiclass", seed=42)
    groups = {name: set(result.frames[name]["patient_id"]) for name in SPLIT_NAMES}
    assert groups["train"].isdisjoint(groups["val"])
    assert groups["train"].isdisjoint(groups["test"])
    assert groups["val"].isdisjoint(groups["test"])
    assert set.union(*groups.values()) == set(cleaned_sample["patient_id"])
    assert_partition(result, len(cleaned_sample))
    # the sample has patients with several notes, so this is a real constraint
    assert cleaned_sample["patient_id"].duplicated().any()
    # and the split is still roughly the asked size and stratified
    n = len(cleaned_sample)
    assert abs(sizes(result)["test"] / n - 0.2) < 0.03
    assert abs(sizes(result)["val"] / n - 0.1) < 0.03
    overall = cleaned_sample["label"].value_counts(normalize=True)
    for name in SPLIT_NAMES:
        share = result.frames[name]["label"].value_counts(normalize=True)
        assert (share.reindex(overall.index, fill_value=0) - overall).abs().max() < 0.05


def test_group_split_is_seeded(cleaned_sample: pd.DataFrame) -> None:
    params = SplitParams(group_column="patient_id")
    first = split_frame(cleaned_sample, params, "multiclass", seed=1)
    again = split_frame(cleaned_sample, params, "multiclass", seed=1)
    for name in SPLIT_NAMES:
        assert first.frames[name]["row_id"].tolist() == again.frames[name]["row_id"].tolist()


def test_group_column_not_in_data() -> None:
    with pytest.raises(UserError, match="'patient_id' is not in the cleaned data"):
        split_frame(
            labelled({"a": 10, "b": 10}), SplitParams(group_column="patient_id"), "binary", 0
        )


def test_group_column_with_empty_values() -> None:
    frame = labelled({"a": 10, "b": 10})
    frame["patient"] = ["p"] * 19 + [None]
    with pytest.raises(UserError, match="'patient' has empty values"):
        split_frame(frame, SplitParams(group_column="patient"), "binary", 0)


def test_too_few_rows() -> None:
    with pytest.raises(UserError, match="only 2 rows"):
        split_frame(labelled({"a": 1, "b": 1}), SplitParams(), "binary", 0)


def test_small_class_warns_and_falls_back_to_unstratified() -> None:
    frame = labelled({"big": 20, "mid": 18, "tiny": 2})
    result = split_frame(frame, SplitParams(), "multiclass", seed=0)
    assert not result.stratified
    assert len(result.warnings) == 1
    assert "tiny" in result.warnings[0]
    assert "big" not in result.warnings[0]
    assert "unstratified" in result.warnings[0]
    assert_partition(result, len(frame))


def test_many_small_classes_are_named_five_and_counted() -> None:
    frame = labelled({"big": 60, **{f"rare{i:02d}": 2 for i in range(12)}})
    warnings = []
    for seed in range(20):
        try:
            warnings += split_frame(frame, SplitParams(), "multiclass", seed).warnings
        except UserError as error:
            # every such label at once, whichever split it fell into
            named = r"(\d+) label\(s\) appear in the (val|test|val and test) split but not in "
            named += r"train: (rare\d\d, ){0,7}rare\d\d( and \d+ more)?; add rows"
            found = re.match(named, str(error))
            assert found, str(error)
            listed = str(error).split(": ", 1)[1].split(";")[0]
            more = re.search(r" and (\d+) more", listed)
            count = listed.count("rare") + (int(more.group(1)) if more else 0)
            assert count == int(found.group(1))
    assert warnings
    for warning in warnings:
        assert warning.startswith("class(es) rare00, rare01, rare02, rare03, rare04 and 7 more ")


def test_label_only_in_val_or_test_is_an_error() -> None:
    frame = labelled({"a": 20, "b": 20, "lonely": 1})
    lonely_row = int(frame.index[frame["label"] == "lonely"][0])
    raised = 0
    for seed in range(20):
        try:
            result = split_frame(frame, SplitParams(), "multiclass", seed)
        except UserError as error:
            raised += 1
            assert "lonely" in str(error)
            assert "but not in train" in str(error)
            assert "val split" in str(error) or "test split" in str(error)
        else:
            assert lonely_row in set(result.frames["train"]["row_id"])
    assert 0 < raised < 20  # the seeds cover both outcomes


def test_regression_split() -> None:
    frame = pd.DataFrame({"text": [f"n{i}" for i in range(100)], "label": np.linspace(0, 1, 100)})
    result = split_frame(frame, SplitParams(), "regression", seed=0)
    assert result.stratified
    assert sizes(result) == {"train": 70, "val": 10, "test": 20}
    assert_partition(result, 100)
    # quantile strata: each split spans the whole range
    for name in SPLIT_NAMES:
        labels = result.frames[name]["label"]
        assert labels.min() < 0.2 and labels.max() > 0.8, name


def test_regression_strata_are_quantile_bins() -> None:
    strata = strata_for(pd.Series(np.arange(10, dtype=float)), "regression")
    assert strata.nunique() == 5
    assert strata.value_counts().tolist() == [2, 2, 2, 2, 2]


def test_multilabel_split() -> None:
    labels = [["a", "b"], ["a"], ["b"], [], ["a", "c"]] * 12
    frame = pd.DataFrame({"text": [f"n{i}" for i in range(60)], "label": labels})
    result = split_frame(frame, SplitParams(), "multilabel", seed=0)
    assert_partition(result, 60)
    assert sum(sizes(result).values()) == 60
    train_names = {name for names in result.frames["train"]["label"] for name in names}
    assert train_names == {"a", "b", "c"}


def test_multilabel_strata_use_the_rarest_label() -> None:
    labels = pd.Series([["a", "b"], ["a"], ["a", "c"], [], ["b"]])
    assert strata_for(labels, "multilabel").tolist() == ["b", "a", "c", "(none)", "b"]
