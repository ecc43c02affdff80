"""The medical abstracts the benchmarks run on, read in place from the shared data folder next
to the project (never copied into it): the first rows for the step benchmarks (profile_step.py,
compile_step.py), and seeded, stratified subsets for train_speed.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from bertpipe.model import load_tokenizer
from bertpipe.tokens import TokenizedSplit, tokenize_split

# the one spelling of the shared data path: ../shared/data/medical_abstracts
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "medical_abstracts"
ABSTRACTS_FILE = "medical_abstracts.csv"
LABELS_FILE = "labels.csv"  # condition_label -> condition_name
ABSTRACTS = DATA_DIR / ABSTRACTS_FILE


def first_abstracts(
    rows: int, max_length: int, model: str = "minilm", data_dir: Path = DATA_DIR
) -> tuple[TokenizedSplit, list[str], Any]:
    """(the tokenized split, the label names, the tokenizer of `model`, the packaged MiniLM's
    by default); `data_dir` holds medical_abstracts.csv (a copy, on a machine without ../shared)."""
    frame = pd.read_csv(data_dir / ABSTRACTS_FILE).head(rows)
    names = sorted(frame["condition_label"].astype(str).unique())
    tokenizer = load_tokenizer(model)
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


@dataclass
class Data:
    train_texts: list[str]
    train_labels: list[str]
    val_texts: list[str]
    val_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]
    label_names: list[str]
    full_train_size: int
    full_test_size: int


def _subset(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    if size >= len(frame):
        return frame
    part, _ = train_test_split(
        frame, train_size=size, stratify=frame["condition_label"], random_state=seed
    )
    return part


def load_data(
    train_size: int, test_size: int, val_size: int, seed: int, data_dir: Path = DATA_DIR
) -> Data:
    """The README's split (stratified 80/20, random_state=42), then stratified subsets.

    The val set (bertpipe's fit needs one for its end-of-epoch metrics) comes from the 80% train
    part, outside the train subset, so no contestant trains on anything another one tests on.
    `data_dir` holds medical_abstracts.csv and labels.csv (../shared's, or a copy of them).
    """
    frame = pd.read_csv(data_dir / ABSTRACTS_FILE)
    names = pd.read_csv(data_dir / LABELS_FILE)
    label_of = dict(zip(names["condition_label"], names["condition_name"], strict=True))
    full_train, full_test = train_test_split(
        frame, test_size=0.2, stratify=frame["condition_label"], random_state=42
    )
    train = _subset(full_train, train_size, seed)
    rest = full_train.drop(index=train.index)
    val = _subset(rest, val_size, seed)
    test = _subset(full_test, test_size, seed)

    def texts(part: pd.DataFrame) -> list[str]:
        return part["medical_abstract"].astype(str).tolist()

    def labels(part: pd.DataFrame) -> list[str]:
        return [label_of[value] for value in part["condition_label"]]

    return Data(
        train_texts=texts(train),
        train_labels=labels(train),
        val_texts=texts(val),
        val_labels=labels(val),
        test_texts=texts(test),
        test_labels=labels(test),
        label_names=[label_of[key] for key in sorted(label_of)],
        full_train_size=len(full_train),
        full_test_size=len(full_test),
    )
