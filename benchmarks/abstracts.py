"""The first rows of the medical abstracts, tokenized for the step benchmarks (profile_step.py,
compile_step.py): read from ../shared/data, never copied into the project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bertpipe.model import load_tokenizer
from bertpipe.tokens import TokenizedSplit, tokenize_split

DATA = Path(__file__).resolve().parents[2] / "shared/data/medical_abstracts/medical_abstracts.csv"


def first_abstracts(rows: int, max_length: int) -> tuple[TokenizedSplit, list[str], Any]:
    """(the tokenized split, the label names, the packaged MiniLM's tokenizer)."""
    frame = pd.read_csv(DATA).head(rows)
    names = sorted(frame["condition_label"].astype(str).unique())
    tokenizer = load_tokenizer("minilm")
    split = tokenize_split(
        frame["medical_abstract"].tolist(),
        frame["condition_label"].astype(str).tolist(),
        np.arange(len(frame)),
        tokenizer,
        max_length,
        names,
        "multiclass",
    )
    return split, names, tokenizer
