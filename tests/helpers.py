"""In-memory forms of the streaming stages, for tests only, built from the package's functions.

The stages stream (`clean_chunks`, `split_parquet`, `tokenize_parquet`); these do the same work
on one frame in memory, which keeps unit tests short. test_chunked.py checks that the streaming
functions give what these give.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bertpipe.clean import clean_chunk, duplicate_flags, make_report
from bertpipe.labels import check_label_count, sorted_label_names
from bertpipe.params import CleanParams, DataParams, SplitParams
from bertpipe.split import SPLIT_NAMES, assign_splits, row_groups
from bertpipe.tokens import SplitWriter, TokenizedSplit


@dataclass(frozen=True)
class CleanResult:
    frame: pd.DataFrame  # columns: text, label, then the carried columns
    report: dict[str, Any]


def clean_frame(
    frame: pd.DataFrame,
    data: DataParams,
    clean: CleanParams,
    task: str,
    source: str = "data",
    extra_columns: tuple[str, ...] = (),
) -> CleanResult:
    """Clean a whole table in memory; the report counts every row dropped, by reason."""
    frame = frame.reset_index(drop=True)
    chunk = clean_chunk(frame, data, clean, task, source, extra_columns)
    conflicting, duplicate = duplicate_flags(chunk.text_keys, chunk.label_keys)
    out = chunk.frame[~conflicting & ~duplicate].reset_index(drop=True)
    check_label_count(sorted_label_names(out["label"], task), task, data.label_column)
    dropped = {
        **chunk.dropped,
        "duplicate": int(duplicate.sum()),
        "conflicting_duplicate": int(conflicting.sum()),
    }
    return CleanResult(out, make_report(len(frame), len(out), dropped))


@dataclass
class SplitResult:
    frames: dict[str, pd.DataFrame]
    warnings: list[str] = field(default_factory=list)
    stratified: bool = True


def split_frame(frame: pd.DataFrame, params: SplitParams, task: str, seed: int) -> SplitResult:
    """Split rows (or whole groups of rows) into train, val and test, in memory."""
    frame = frame.reset_index(drop=True)
    frame.insert(0, "row_id", np.arange(len(frame), dtype=np.int64))
    groups = row_groups(list(frame.columns), params, lambda column: frame[column])
    assignment = assign_splits(frame["label"], groups, params, task, seed)
    result = SplitResult(frames={}, warnings=assignment.warnings, stratified=assignment.stratified)
    for code, name in enumerate(SPLIT_NAMES):
        result.frames[name] = frame[assignment.codes == code].reset_index(drop=True)
    return result


def write_split(split: TokenizedSplit, folder: str | Path) -> None:
    """A split folder holding one tokenized split, as the tokenize stage writes it."""
    writer = SplitWriter(folder)
    writer.add(split)
    writer.close()


def set_dropout(model: torch.nn.Module, probability: float) -> None:
    """Every dropout of a BERT model (hidden, attention, classifier) to `probability`."""
    model.config.hidden_dropout_prob = probability
    model.config.attention_probs_dropout_prob = probability
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = probability


def bertpipe_imports(path: Path) -> set[str]:
    """Modules of bertpipe that a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bertpipe"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from bertpipe import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "bertpipe" and len(parts) > 1:
                    found.add(parts[1])
    return found


def import_closure(script: Path) -> set[str]:
    """The bertpipe modules `script` imports, directly or through each other."""
    package = Path(__file__).resolve().parents[1] / "src" / "bertpipe"
    todo, seen = list(bertpipe_imports(script)), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(bertpipe_imports(package / f"{module}.py"))
    return seen


# a progress line of `bertpipe predict` where stderr is no terminal (bertpipe.progress.LogProgress)
PREDICT_PROGRESS = re.compile(r"predict: batch \d+(/\d+)?, \d+\.\d s$")


def without_progress(stderr: str) -> list[str]:
    """The lines of `stderr` that are messages, not predict's progress."""
    return [line for line in stderr.strip().splitlines() if not PREDICT_PROGRESS.match(line)]
