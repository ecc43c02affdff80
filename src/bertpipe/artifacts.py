"""The trained model folder: weights, tokenizer, the params it was trained with, a model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bertpipe.files import atomic_path, read_json

TRAINING_PARAMS = "training_params.json"


def save_model_folder(
    folder: str | Path,
    model: Any,
    tokenizer: Any,
    training_params: dict[str, Any],
    card: str,
) -> None:
    """Written to a temporary folder first; the rename makes it appear complete or not at all."""
    with atomic_path(folder, replace_folder=True) as tmp:
        model.save_pretrained(tmp)  # safetensors
        tokenizer.save_pretrained(tmp)
        (tmp / TRAINING_PARAMS).write_text(
            json.dumps(training_params, indent=2) + "\n", encoding="utf-8"
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")


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
