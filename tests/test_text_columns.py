"""Several text columns: joined with the tokenizer's separator, or a sentence pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import clean_frame
from transformers import AutoTokenizer

from bertpipe.decision import Decision
from bertpipe.params import CleanParams, DataParams, parse_params
from bertpipe.predict import Predictor
from bertpipe.tokens import encode_texts

FRAME = pd.DataFrame(
    {
        "title": ["Chest pain", "Headache", "Chest pain"],
        "body": ["ecg  changes", "seizure\u00a0today", "ecg changes"],
        "label": ["cardio", "neuro", "cardio"],
    }
)


def test_clean_keeps_each_column_normalised_and_dedupes_on_all_of_them() -> None:
    data = DataParams(text_column=["title", "body"], carry_columns=[])
    result = clean_frame(FRAME, data, CleanParams(), "multiclass")
    assert result.frame["text"].tolist() == [
        ["Chest pain", "ecg changes"],
        ["Headache", "seizure today"],
    ]
    assert result.report["dropped"]["duplicate"] == 1


@pytest.fixture(scope="module")
def tokenizer(tiny_bert: Path):
    return AutoTokenizer.from_pretrained(tiny_bert)


def test_joined_columns_are_separated_by_the_sep_token(tokenizer) -> None:
    values, offsets, types = encode_texts([["chest pain", "ecg"]], tokenizer, 32, pair=False)
    ids = values[offsets[0] : offsets[1]].tolist()
    sep = tokenizer.sep_token_id
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == sep
    assert ids.count(sep) == 2  # the joint and the end
    assert types is None


def test_a_sentence_pair_gets_token_type_ids(tokenizer) -> None:
    values, offsets, types = encode_texts([["chest pain", "ecg"]], tokenizer, 32, pair=True)
    assert types is not None
    row_types = types[offsets[0] : offsets[1]].tolist()
    assert row_types[0] == 0 and row_types[-1] == 1 and set(row_types) == {0, 1}
    assert np.count_nonzero(values[offsets[0] : offsets[1]] == tokenizer.sep_token_id) == 2


def test_pair_needs_exactly_two_columns() -> None:
    from bertpipe.errors import UserError

    with pytest.raises(UserError, match="text_pair"):
        parse_params({"data": {"text_column": ["a"], "text_pair": True}})


def test_predictor_cleans_as_training_did() -> None:
    # mask_phi=True as saved in training_params.json: prediction masks what training masked
    predictor = Predictor(
        None, None, "multiclass", ["a"], 32, Decision("multiclass"), True, False, "fp32"
    )
    assert predictor.clean("call 555-123-4567\u00a0now") == "call [PHONE] now"
