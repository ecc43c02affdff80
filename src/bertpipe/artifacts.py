"""The trained model folder: weights, tokenizer, the params it was trained with, a model card."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bertpipe.files import read_json, replace_path

TRAINING_PARAMS = "training_params.json"


@contextlib.contextmanager
def model_folder_lock(folder: str | Path, exclusive: bool = False) -> Iterator[None]:
    """An advisory lock on the model folder: shared to read it, exclusive to replace it.

    The lock is taken on the parent folder, so the swap cannot take it away and no lock file is
    left behind. Windows has no flock: there the swap is not guarded against readers.
    """
    parent = Path(folder).resolve().parent
    if sys.platform == "win32" or not parent.is_dir():  # nothing to guard: no folder yet
        yield
        return
    import fcntl

    descriptor = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def save_model_folder(
    folder: str | Path,
    model: Any,
    tokenizer: Any,
    training_params: dict[str, Any],
    card: str,
) -> None:
    """Write the folder next to its place, then swap it in under the exclusive lock.

    A reader that loads under `model_folder_lock` sees the old folder or the new one, whole:
    the folder's files are read one by one, so a swap between two reads would mix them. The
    folder stays a real folder (a DVC output), never a link.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        tmp = staging / folder.name
        model.save_pretrained(tmp)  # safetensors
        tokenizer.save_pretrained(tmp)
        (tmp / TRAINING_PARAMS).write_text(
            json.dumps(training_params, indent=2) + "\n", encoding="utf-8"
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
        # a rename cannot replace a non-empty folder: the old one is moved aside first, so
        # readers are kept out for the two renames
        with model_folder_lock(folder, exclusive=True):
            replace_path(tmp, folder, replace_folder=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_training_params(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / TRAINING_PARAMS
    return read_json(path) if path.is_file() else {}


def model_card(
    task: str,
    label_names: list[str],
    params: dict[str, Any],
    data_sha256: str | None,
    best_epoch: int,
    validation: dict[str, float],
) -> str:
    labels = ", ".join(f"`{name}`" for name in label_names) or "(a numeric target)"
    metrics = "\n".join(f"| {name} | {value} |" for name, value in validation.items())
    return (
        "# bertpipe model\n\n"
        f"Fine-tuned from `{params.get('model')}` by bertpipe for **{task}** text classification"
        f"{' (regression)' if task == 'regression' else ''}.\n\n"
        f"- Labels (id order): {labels}\n"
        f"- Training data sha256: `{data_sha256 or 'unknown'}`\n"
        f"- Best epoch: {best_epoch}\n\n"
        "## Validation metrics (best epoch)\n\n| metric | value |\n| --- | --- |\n"
        f"{metrics}\n\n"
        "## Params\n\n```json\n" + json.dumps(params, indent=2) + "\n```\n\n"
        'Load it with `bertpipe predict --model <this folder> "some text"`, or with\n'
        "`AutoModelForSequenceClassification.from_pretrained(<this folder>)`.\n"
    )
