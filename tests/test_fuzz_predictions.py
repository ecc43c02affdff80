"""Fuzzing the predictions reader: any text in eval/predictions.csv gives checked predictions that
the gate can score, or one UserError, nothing else.

The gate reads a revision's file as text (`git show`), so the inputs are texts: random ones, and
random CSV tables built from the file's own columns and values near the ones it holds.
"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bertpipe.errors import MAX_MESSAGE_CHARS, UserError

TASKS = ("binary", "multiclass", "multilabel", "regression")
SOURCE = "HEAD:eval/predictions.csv"
FILE_COLUMNS = ["row_id", "gold", "predicted", "score_a", "score_b", "threshold", "label_separator"]
COLUMNS = st.sampled_from([*FILE_COLUMNS, "score_NA", "score_", "extra"]) | st.text(max_size=6)
CELLS = (
    st.sampled_from(["a", "b", "NA", "", "a|b", "|", "a;b", "nan", "inf", "-1", "0.5", "1e400"])
    | st.integers(-5, 5).map(str)
    | st.sampled_from(["0", "1", "2"])
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.text(max_size=6)
)


@st.composite
def csv_tables(draw: st.DrawFn) -> str:
    # mostly the file's own columns, so that most tables get past the header checks
    optional = st.sampled_from([*FILE_COLUMNS[3:], "score_NA"])
    shaped = st.lists(optional, unique=True, max_size=4).map(
        lambda extra: [*FILE_COLUMNS[:3], *extra]
    )
    header = draw(
        shaped | shaped.flatmap(st.permutations) | st.lists(COLUMNS, min_size=1, max_size=7)
    )
    widths = st.integers(max(0, len(header) - 1), len(header) + 1)  # a missing or extra field
    rows = draw(st.lists(widths.flatmap(lambda n: st.lists(CELLS, min_size=n, max_size=n))))
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue()


def _assert_usable_or_one_user_error(text: str, task: str) -> None:
    from bertpipe.predictions import read_predictions, same_test_set

    try:
        predictions = read_predictions(text, task, SOURCE, 0.5)
    except UserError as error:
        message = str(error)
        assert "\n" not in message and len(message) <= MAX_MESSAGE_CHARS, message
        return
    # what the gate does with a file it accepted must not fail either
    predictions.targets_and_scores(task)
    if task in ("binary", "multiclass"):
        predictions.predicted_classes()
    assert same_test_set(predictions, predictions, task)


@pytest.mark.parametrize("task", TASKS)
@given(text=st.text(max_size=300))
@example(text="")
@example(text="row_id,gold,predicted\n")
@example(text='row_id,gold,predicted,score_a\n1,a,a,"0.5\n')
def test_any_text_gives_predictions_or_one_user_error(task: str, text: str) -> None:
    _assert_usable_or_one_user_error(text, task)


@pytest.mark.parametrize("task", TASKS)
@given(text=csv_tables())
@example(text="row_id,gold,predicted,score_a,label_separator\n1,a,a,0.5,\n")
@example(text="row_id,gold,predicted,score_a\n1.5,a,a,0.5\n")
@example(text="row_id,gold,predicted,score_a,score_a\n1,a,a,0.5,0.5\n")
def test_any_csv_table_gives_predictions_or_one_user_error(task: str, text: str) -> None:
    _assert_usable_or_one_user_error(text, task)
