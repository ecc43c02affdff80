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

from bertpipe.decision import CONFIG_KEY, DECISION_FILE, Decision, decision_card_lines
from bertpipe.errors import UserError
from bertpipe.files import read_json, replace_path
from bertpipe.labels import problem_type
from bertpipe.model import pad_token_id

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


def check_base_is_not_output(model: str, output_dir: str | Path) -> None:
    """Refuse `model:` naming the folder the train stage writes: the run would replace its own
    base model, and no rerun could start from the same weights again."""
    base, output = Path(model), Path(output_dir)
    if base.exists() and output.exists() and os.path.samefile(base, output):
        raise UserError(
            f"model: {model} is the folder this stage writes, which training replaces; copy it "
            f"first (cp -r {output_dir} models/base/<name>) and point model: at the copy"
        )


def save_model_folder(
    folder: str | Path,
    model: Any,
    tokenizer: Any,
    training_params: dict[str, Any],
    card: str,
    decision: Decision | None = None,
) -> None:
    """Write the folder next to its place, then swap it in under the exclusive lock.

    A reader that loads under `model_folder_lock` sees the old folder or the new one, whole:
    the folder's files are read one by one, so a swap between two reads would mix them. The
    folder stays a real folder (a DVC output), never a link. The saved tokenizer's
    model_max_length is the trained max_length, so that
    `pipeline("text-classification", model=folder, truncation=True)` truncates as training did.
    The decision (temperatures and thresholds) goes into decision.json and config.json; a folder
    saved without one is read as bertpipe.decision.legacy_decision.
    """
    if "max_length" in training_params:
        tokenizer.model_max_length = int(training_params["max_length"])
    if tokenizer.pad_token is None:
        # a tokenizer without a pad token was padded with id 0 (model.pad_token_id); named as
        # its pad token, so that plain transformers pads a batch the same way
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_token_id(tokenizer))
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        tmp = staging / folder.name
        if decision is not None:
            setattr(model.config, CONFIG_KEY, decision.to_json())
        model.save_pretrained(tmp)  # safetensors
        tokenizer.save_pretrained(tmp)
        (tmp / TRAINING_PARAMS).write_text(
            json.dumps(training_params, indent=2) + "\n", encoding="utf-8"
        )
        if decision is not None:
            (tmp / DECISION_FILE).write_text(
                json.dumps(decision.to_json(), indent=2) + "\n", encoding="utf-8"
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
    if not path.is_file():
        return {}
    try:
        trained = read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{path}: not valid JSON ({exc}); train the model again with dvc repro, "
            "or restore the file from the model's DVC cache"
        ) from None
    if not isinstance(trained, dict):
        raise UserError(
            f"{path}: expected a JSON object of params, got {type(trained).__name__}; "
            "train the model again with dvc repro"
        )
    return trained


# the tasks a training record may name (params.Task), without importing pydantic here
TASKS = ("binary", "multiclass", "multilabel", "regression")


def check_model_folder(folder: str | Path) -> dict[str, Any]:
    """The folder's training params, once it is known to be a model folder bertpipe trained.

    That is: a config.json, and a training_params.json (written only by the train stage) that
    names the task and the label names, which match the model's outputs. A folder that decided
    its thresholds (config.json records the decision) must still hold decision.json. Anything
    else, such as a base model or another tool's classifier, would be scored with a random or
    foreign head and without the cleaning, truncation and task of training: it is refused.
    Reads JSON only, so a wrong folder costs no time.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UserError(f"{folder}: not a trained model folder (no config.json); run dvc repro")
    if not (folder / TRAINING_PARAMS).is_file():
        raise UserError(
            f"{folder}: not a trained model folder (no {TRAINING_PARAMS}); bertpipe predicts "
            "with models its train stage wrote, which record their cleaning, truncation and "
            "task: run dvc repro (other models: transformers' pipeline())"
        )
    trained = read_training_params(folder)
    try:
        config = read_json(config_path)
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict):
        raise UserError(f"{config_path}: not a JSON object of settings; run dvc repro")
    task, names = trained.get("task"), trained.get("label_names")
    source = folder / TRAINING_PARAMS
    if task not in TASKS:
        raise UserError(
            f"{source}: no task of bertpipe's (found {task!r}), so not a record of the train "
            "stage; train the model again with dvc repro"
        )
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise UserError(
            f"{source}: no list of label_names, so not a record of the train stage; "
            "train the model again with dvc repro"
        )
    id2label = config.get("id2label")
    # a config without either has transformers' default of two outputs
    outputs = len(id2label) if isinstance(id2label, dict) else config.get("num_labels", 2)
    expected = 1 if task == "regression" else len(names)
    kind = config.get("problem_type")
    if outputs != expected or kind not in (None, problem_type(task)):
        raise UserError(
            f"{folder}: config.json has {outputs} outputs ({kind}), but {TRAINING_PARAMS} says "
            f"task {task} with {expected}; the files come from different models: "
            "train the model again with dvc repro"
        )
    if CONFIG_KEY in config and not (folder / DECISION_FILE).is_file():
        raise UserError(
            f"{folder}: no {DECISION_FILE}, though config.json says the model was saved with "
            "one (its thresholds and temperature); restore the folder (dvc checkout) or train "
            "again with dvc repro"
        )
    return trained


def model_card(
    task: str,
    label_names: list[str],
    params: dict[str, Any],
    data_sha256: str | None,
    best_epoch: int,
    validation: dict[str, float],
    base_model: str | None,
    decision: Decision | None = None,
    base_family: str | None = None,
    base_origin: str | None = None,
) -> str:
    """A Hugging Face model card: YAML metadata (base_model, pipeline_tag, the validation metrics
    as eval_results, the data hash) and a short text. Test metrics are not in it: evaluate
    runs after the model folder is written and never writes into it."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    data_path = str(params.get("data", {}).get("path", "the training data"))
    eval_results = [
        EvalResult(
            task_type="text-classification",
            dataset_type="bertpipe-local",
            dataset_name=f"{data_path} (validation split)",
            dataset_split="validation",
            metric_type=name,
            metric_value=value,
        )
        for name, value in validation.items()
    ]
    card_data = ModelCardData(
        base_model=base_model,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["bertpipe", "text-classification", task],
        model_name="bertpipe model",
        eval_results=eval_results or None,
        training_data_sha256=data_sha256,
        base_model_family=base_family,
        base_model_origin=base_origin,
    )
    labels = ", ".join(f"`{name}`" for name in label_names) or "(a numeric target)"
    long_texts = ""
    if params.get("truncation", "right") != "right" or params.get("windows", {}).get("stride"):
        # pipeline() truncates right only: it cannot apply head_tail or windows
        long_texts = (
            "\nThis model was trained and evaluated with `truncation: "
            f"{params.get('truncation')}` and `windows: {json.dumps(params.get('windows'))}`:\n"
            "`bertpipe predict` fits long texts the same way; `pipeline()` sees only their first\n"
            "max_length tokens, so its predictions on long texts differ.\n"
        )
    metrics = "\n".join(f"| {name} | {value} |" for name, value in validation.items())
    body = (
        "# bertpipe model\n\n"
        f"Fine-tuned from `{base_model or params.get('model')}` by bertpipe for **{task}** "
        f"text classification{' (regression)' if task == 'regression' else ''}.\n\n"
        + (f"- Base model family: {base_family}\n" if base_family else "")
        + (f"- Base model from: {base_origin}\n" if base_origin else "")
        + f"- Labels (id order): {labels}\n"
        f"- Training data sha256: `{data_sha256 or 'unknown'}`\n"
        f"- Best epoch: {best_epoch}\n\n"
        "## Validation metrics (best epoch)\n\n| metric | value |\n| --- | --- |\n"
        f"{metrics}\n\n"
        + (decision_card_lines(decision, label_names) if decision is not None else "")
        + "## Params\n\n```json\n"
        + json.dumps(params, indent=2)
        + "\n```\n\n"
        "## Use\n\n"
        'Load it with `bertpipe predict --model <this folder> "some text"`, or with\n'
        '`pipeline("text-classification", model=<this folder>, truncation=True)`:\n'
        "the tokenizer's model_max_length is the trained max_length, so `truncation=True` cuts\n"
        "long texts where training did. bertpipe predict also cleans texts as training did, and\n"
        "applies the decision above; `pipeline()` gives the calibrated scores, to which you apply\n"
        "the threshold(s) yourself (`top_k=None` returns every label's score).\n" + long_texts
    )
    return str(ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}"))
