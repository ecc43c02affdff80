"""Label order, encoding and parsing for the four tasks."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bertpipe.errors import UserError
from bertpipe.labels import (
    check_label_count,
    encode_labels,
    is_missing,
    label_warnings,
    num_model_outputs,
    parse_multilabel,
    parse_number,
    problem_type,
    sorted_label_names,
)

# --- sorted_label_names --------------------------------------------------------------------------


def test_sorted_label_names_alphabetical_and_unique() -> None:
    labels = ["neuro", "cardio", "gastro", "cardio", "neuro"]
    assert sorted_label_names(labels, "multiclass") == ["cardio", "gastro", "neuro"]


def test_sorted_label_names_ignores_input_order() -> None:
    labels = ["b", "c", "a", "b"]
    expected = sorted_label_names(labels, "multiclass")
    assert sorted_label_names(list(reversed(labels)), "multiclass") == expected
    assert sorted_label_names(set(labels), "multiclass") == expected


def test_sorted_label_names_numeric_aware() -> None:
    labels = ["10", "2", "1", "-1", "2.5", "b", "a"]
    assert sorted_label_names(labels, "multiclass") == ["-1", "1", "2", "2.5", "10", "a", "b"]


def test_sorted_label_names_stringifies_numbers() -> None:
    assert sorted_label_names([10, 2, 1, 2], "binary") == ["1", "2", "10"]


def test_sorted_label_names_multilabel_unions_the_sets() -> None:
    labels = [["y", "x"], [], ["z"], ["x"]]
    assert sorted_label_names(labels, "multilabel") == ["x", "y", "z"]


def test_sorted_label_names_regression_is_empty() -> None:
    assert sorted_label_names([1.0, 2.0], "regression") == []


def _names_under_hash_seed(seed: int, labels: list[str]) -> str:
    code = (
        "from bertpipe.labels import sorted_label_names; "
        f"print(sorted_label_names({labels!r}, 'multiclass'))"
    )
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_sorted_label_names_same_across_processes() -> None:
    labels = ["neuro", "cardio", "10", "2", "gastro"]
    orders = {_names_under_hash_seed(seed, labels) for seed in range(4)}
    assert orders == {"['2', '10', 'cardio', 'gastro', 'neuro']"}


def test_sorted_label_names_same_across_processes_for_equal_numbers() -> None:
    labels = ["1", "1.0", "01", "2"]
    orders = {_names_under_hash_seed(seed, labels) for seed in range(8)}
    assert len(orders) == 1


# --- check_label_count ---------------------------------------------------------------------------


def test_check_label_count() -> None:
    check_label_count(["a", "b"], "binary", "label")
    check_label_count(["a", "b", "c"], "multiclass", "label")
    check_label_count(["a"], "multilabel", "label")
    check_label_count([], "regression", "label")
    with pytest.raises(UserError, match="no labels"):
        check_label_count([], "multiclass", "label")
    with pytest.raises(UserError, match="only 'a'"):
        check_label_count(["a"], "binary", "label")
    with pytest.raises(UserError, match="3 classes"):
        check_label_count(["a", "b", "c"], "binary", "label")
    with pytest.raises(UserError, match="no labels after cleaning"):
        check_label_count([], "multilabel", "tags")


# --- encode_labels -------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_encode_labels_classification(task: str) -> None:
    names = ["2", "10", "neg"]
    encoded = encode_labels(["10", "neg", "2", "10"], names, task)
    assert encoded.dtype == np.int64
    assert encoded.tolist() == [1, 2, 0, 1]


def test_encode_labels_classification_accepts_numbers() -> None:
    assert encode_labels([1, 0, 1], ["0", "1"], "binary").tolist() == [1, 0, 1]


def test_encode_labels_unknown_class_fails() -> None:
    with pytest.raises(KeyError):
        encode_labels(["a", "c"], ["a", "b"], "multiclass")


def test_encode_labels_multilabel_multi_hot() -> None:
    encoded = encode_labels([["b"], [], ["a", "c"], ["c", "b", "a"]], ["a", "b", "c"], "multilabel")
    assert encoded.dtype == np.float32
    assert encoded.shape == (4, 3)
    assert encoded.tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 1], [1, 1, 1]]


def test_encode_labels_multilabel_empty_split_keeps_width() -> None:
    assert encode_labels([], ["a", "b"], "multilabel").shape == (0, 2)


def test_encode_labels_regression() -> None:
    encoded = encode_labels([1.5, -2.0, 0.25], [], "regression")
    assert encoded.dtype == np.float32
    assert encoded.tolist() == [1.5, -2.0, 0.25]


def test_num_model_outputs_and_problem_type() -> None:
    assert num_model_outputs(["a", "b", "c"], "multiclass") == 3
    assert num_model_outputs(["a", "b"], "multilabel") == 2
    assert num_model_outputs([], "regression") == 1
    assert problem_type("binary") == problem_type("multiclass") == "single_label_classification"
    assert problem_type("multilabel") == "multi_label_classification"
    assert problem_type("regression") == "regression"


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a|b", ["a", "b"]),
        ("b | a |b", ["a", "b"]),
        ("single", ["single"]),
        ('["b", "a"]', ["a", "b"]),
        ("[1, 2]", ["1", "2"]),
        ("[]", []),
        ("", []),
        (" | ", []),
        ("[not json", ["[not json"]),
        # a Python list, as pandas writes a column of lists to CSV; never run as code
        ("['b', 'a', 'b']", ["a", "b"]),
        ("['cardiology', \"crohn's\"]", ["cardiology", "crohn's"]),
        ("[__import__('os').system('true')]", ["[__import__('os').system('true')]"]),
        ("[['a'], 'b']", ["[['a'], 'b']"]),  # nested: no list of labels
        ("['a', ('b', 'c')]", ["['a', ('b', 'c')]"]),
        # NumPy prints a list without commas; Python would join the strings into one
        ("['cardio' 'neuro']", ["cardio", "neuro"]),
        ("[1, -2]", ["-2", "1"]),
        ("['a' b]", ["['a' b]"]),
        ("[-'a']", ["[-'a']"]),  # not a literal: one odd label, not a crash
        ("[f'{x}', 'y']", ["[f'{x}', 'y']"]),
        ("['a', -]", ["['a', -]"]),
        ('{"a": 1}', ['{"a": 1}']),
        (["y", "x", "y"], ["x", "y"]),
        (("x",), ["x"]),
        (np.array(["b", "a"]), ["a", "b"]),
    ],
)
def test_parse_multilabel(value: object, expected: list[str]) -> None:
    assert parse_multilabel(value, "|") == expected


def test_parse_multilabel_other_separator() -> None:
    assert parse_multilabel("a;b|c", ";") == ["a", "b|c"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.5", 1.5),
        (" 2 ", 2.0),
        ("-3e-1", -0.3),
        (4, 4.0),
        ("nan", None),
        ("inf", None),
        ("+.5", 0.5),
        ("7.", 7.0),
        (2.5, 2.5),
        (float("nan"), None),
    ],
)
def test_parse_number(value: object, expected: float | None) -> None:
    assert parse_number(value) == expected


@pytest.mark.parametrize(
    "value", ["high", "", "1,5", "1_000", "\u0663", "0x10", "1e400", "+-1", ".", "1e"]
)
def test_parse_number_rejects_text(value: str) -> None:
    assert parse_number(value) is None


@pytest.mark.parametrize(
    ("value", "missing"),
    [(None, True), (float("nan"), True), ("", True), (" \t", True), ("x", False), (0, False)],
)
def test_is_missing(value: object, missing: bool) -> None:
    assert is_missing(value) is missing


def test_labels_spelled_two_ways_or_spelling_a_missing_value_are_warned_about() -> None:
    names = ["billing", "BILLING", "Billing  dept", "billing dept", "1", "1.0", "2", "N/A", "x"]
    spellings, missing = label_warnings(names, "multiclass", "category")
    assert spellings.startswith("column 'category': 3 label(s) spelled in several ways")
    assert "'BILLING' and 'billing'" in spellings
    assert "'Billing  dept' and 'billing dept'" in spellings
    assert "'1' and '1.0'" in spellings
    assert "'2'" not in spellings
    assert missing.startswith("column 'category': label(s) 'N/A' look like a missing value")
    assert label_warnings(["a", "b", "1", "2"], "multilabel", "tags") == []
    assert label_warnings(["1", "1.0"], "regression", "score") == []
    # codes that are numbers written apart (ICD, zip codes), and words that are real classes
    codes = ["0", "00", "250", "250.0", "250.00", "-", "none", "?", "unknown", "010", "10"]
    assert label_warnings(codes, "multiclass", "code") == []
    assert len(label_warnings(["-1", "-1.0", "0", "0.0", "nan", "#N/A"], "binary", "y")) == 2
    # half-star ratings are numbers, not codes: 5 and 5.0 are still one label spelled twice
    (ratings,) = label_warnings(["1", "2", "3", "4", "5", "4.5", "5.0"], "multiclass", "stars")
    assert "'5' and '5.0'" in ratings
    # one label written with Unicode's two forms of é, or with a zero-width space pasted in
    names = ["caf\u00e9", "cafe\u0301", "tea\u200b", "tea", "te"]
    (unicode,) = label_warnings(names, "multiclass", "y")
    assert unicode.startswith("column 'y': 2 label(s) spelled in several ways")
    assert "('cafe\\u0301' and 'caf\u00e9'; 'tea' and 'tea\\u200b')" in unicode


def test_a_label_column_of_mostly_unique_values_is_refused() -> None:
    from bertpipe.labels import check_classes_repeat

    ids = {str(i): 1 for i in range(30)}
    with pytest.raises(UserError, match=r"^column 'note_id' has 30 distinct labels in 30 rows, 30"):
        check_classes_repeat(ids, "multiclass", "note_id")
    mostly = {**{str(i): 1 for i in range(11)}, "a": 9}
    with pytest.raises(UserError, match=r"Set data.label_column, or task: regression for numbers"):
        check_classes_repeat(mostly, "multiclass", "score")
    # a long tail of rare classes beside large ones: 11 classes in 20 rows, 2 of them single
    check_classes_repeat({**{f"c{i}": 2 for i in range(9)}, "x": 1, "y": 1}, "multiclass", "y")
    check_classes_repeat({str(i): 1 for i in range(19)}, "multiclass", "label")  # a toy table
    check_classes_repeat(ids, "regression", "price")
    check_classes_repeat(ids, "multilabel", "tags")  # label sets, not classes


def test_labels_that_join_other_labels_are_warned_about() -> None:
    (warning,) = label_warnings(["a", "b", "a;b", "c"], "multiclass", "topics")
    assert warning == (
        "column 'topics': label(s) 'a;b' join other labels with ';' and are classes of their "
        "own; if a row may have several labels, set task: multilabel and "
        "data.label_separator: ';'"
    )
    # multi-label with '|' as the separator, but the data joins with ','
    (warning,) = label_warnings(["billing", "billing,tech", "tech"], "multilabel", "tags")
    assert warning.endswith("set data.label_separator: ','")
    # a comma inside a label whose parts are not labels
    assert label_warnings(["cardiology, general", "neurology"], "multiclass", "dept") == []
    assert label_warnings(["a/b", "c"], "multiclass", "route") == []


@example(["-'a'", "]"])  # a sign before a string
@example(["f'{x}'", "]"])  # an f-string: a STRING token that is no literal
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["[", "]", ",", "-", "'", '"', "(", ")", " ", "f", "1", "e9", "a"]),
            st.text(max_size=4),
        ),
        max_size=12,
    )
)
def test_a_cell_that_looks_like_a_list_never_breaks_the_parser(parts: list[str]) -> None:
    # whatever a spreadsheet left in the cell: labels (strings), never an exception
    labels = parse_multilabel("[" + "".join(parts), "|")
    assert labels == sorted(set(labels)) and all(isinstance(label, str) for label in labels)
