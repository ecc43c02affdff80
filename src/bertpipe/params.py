"""The typed schema of params.yaml, and the one loader every stage uses.

Headline hyperparameters sit at the top level so that `dvc exp run -S lr=2e-5` works as written;
the rest are grouped by the stage that reads them.
"""

from __future__ import annotations

import codecs
import difflib
import math
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bertpipe.errors import UserError
from bertpipe.metric_names import METRICS_BY_TASK, reported_metrics

Task = Literal["binary", "multiclass", "multilabel", "regression"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Truncation = Literal["right", "head_tail"]
Pooling = Literal["mean", "max"]


class _Strict(BaseModel):
    # strict: "3" is not an int and "fast" is not a float; extra="forbid": a typo is an error.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataParams(_Strict):
    path: str = "data/raw/notes.csv"
    text_column: str | list[str] = "text"
    label_column: str = "label"
    # several text columns: a sentence pair (exactly two) or joined with the tokenizer's separator
    text_pair: bool = False
    label_separator: str = Field("|", min_length=1)
    encoding: str = "utf-8"
    on_bad_lines: Literal["error", "skip", "warn"] = "error"
    # extra columns carried untouched through clean and split (ids, a patient column, ...)
    carry_columns: list[str] = Field(default_factory=list)
    # rows read, cleaned, split and tokenized at a time: memory stays bounded by a chunk, so a
    # table larger than memory goes through; the outputs do not depend on it
    chunk_rows: int = Field(100_000, ge=1)

    @property
    def text_columns(self) -> list[str]:
        return [self.text_column] if isinstance(self.text_column, str) else list(self.text_column)

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding '{encoding}'") from None
        return encoding

    @model_validator(mode="after")
    def _check_text_columns(self) -> DataParams:
        if not self.text_columns:
            raise ValueError("text_column: give at least one column")
        if self.text_pair and len(self.text_columns) != 2:
            raise ValueError("text_pair: true needs exactly two entries in text_column")
        return self


class CleanParams(_Strict):
    mask_phi: bool = False
    min_chars: int = Field(1, ge=1)


class SplitParams(_Strict):
    test_size: float = Field(0.2, gt=0, lt=1)
    val_size: float = Field(0.1, gt=0, lt=1)
    group_column: str | None = None

    @model_validator(mode="after")
    def _check_sizes(self) -> SplitParams:
        if self.test_size + self.val_size >= 1:
            raise ValueError("test_size + val_size must be below 1, leaving rows to train on")
        return self


class TrainParams(_Strict):
    precision: Precision = "auto"
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    grad_accum_steps: int = Field(1, ge=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    # balanced: n / (k * count) per class, pos_weight (negatives / positives) per label;
    # auto: balanced for multilabel, none otherwise (resolve_task_defaults; BENCHMARKS.md)
    class_weights: Literal["auto", "none", "balanced"] = "auto"
    # a validation metric of the task, or "loss"; auto: resolve_task_defaults picks the task's
    early_stopping_metric: str = "auto"
    # epochs without improvement before stopping; null never stops early
    patience: int | None = Field(2, ge=1)
    # the decision threshold on the calibrated positive-class (binary) or per-label (multilabel)
    # probability; auto: fitted on the validation split after training (bertpipe.decision)
    threshold: float | Literal["auto"] = "auto"
    # with threshold auto: the highest threshold whose validation recall reaches this, in
    # place of the one that maximises validation F1
    target_recall: float | None = Field(None, gt=0, le=1)
    # inference batch for the val pass (BENCHMARKS.md compares batch sizes)
    eval_batch_size: int = Field(32, ge=1)
    num_processes: int = Field(1, ge=1)
    # an `accelerate config` file for multi-GPU, multi-node, DeepSpeed or FSDP runs
    accelerate_config: str | None = None
    # length-grouped batches: this many batches are sorted by length together, then shuffled
    # (fewer on small data: at least 4 groups an epoch)
    group_size: int = Field(50, ge=1)
    # dropout on the attention probabilities; null keeps the model's own (0.1 for BERT). 0 lets
    # SDPA use its fused kernel instead of the "math" one, which trains faster on long sequences
    # (figures and the quality check in BENCHMARKS.md). The hidden dropout stays.
    attention_dropout: float | None = Field(0.0, ge=0, lt=1)
    # a checkpoint inside an epoch every N optimizer steps; null: only at the end of epochs.
    # 1500: about 10 minutes of work at the measured CPU speed of the defaults (40 samples/s,
    # batch 16: 2.5 steps/s, BENCHMARKS.md), so a kill costs at most that much
    checkpoint_every_steps: int | None = Field(1500, ge=1)
    # torch.compile the model's training steps (training.compile_for_training); false: eager
    compile: bool = False

    @field_validator("threshold", mode="before")
    @classmethod
    def _check_threshold(cls, threshold: Any) -> Any:
        # one message for every wrong value, in place of one per member of the union
        is_number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
        if threshold != "auto" and not (is_number and 0 < threshold < 1):
            raise ValueError(f"must be auto or a number between 0 and 1 (got {threshold!r})")
        return threshold


class TokenizeParams(_Strict):
    # truncation: head_tail keeps this many tokens from the start of a long text and fills the
    # rest of max_length from its end; null: a quarter of them (see tokens.HEAD_SHARE)
    head_tokens: int | None = Field(None, ge=0)


class WindowsParams(_Strict):
    # tokens between the starts of consecutive windows; a text longer than max_length becomes
    # overlapping windows of max_length, so every token counts. null: one sequence per text
    stride: int | None = Field(None, ge=1)
    # how the windows' logits become the text's: their mean, or their maximum per label
    pooling: Pooling = "mean"
    # true: train on every window too (each with its text's label); false: windows at
    # validation, evaluation and predict only, training on one truncated sequence per text
    train: bool = False


class EvaluateParams(_Strict):
    batch_size: int = Field(32, ge=1)


class GateParams(_Strict):
    # largest tolerated drop per metric before the gate may call it a regression; `auto`: the
    # task's headline metrics (AUTO_GATE_TOLERANCE), so that `-S task=...` keeps a working gate
    tolerance: dict[str, float] | Literal["auto"] = "auto"
    confidence: float = Field(0.95, gt=0.5, lt=1)
    n_bootstrap: int = Field(2000, ge=100)

    @field_validator("tolerance")
    @classmethod
    def _check_tolerances(
        cls, tolerance: dict[str, float] | Literal["auto"]
    ) -> dict[str, float] | Literal["auto"]:
        if tolerance == "auto":
            return tolerance
        # a nan compares false with every drop, so it would let any fall pass
        bad = [name for name, value in tolerance.items() if not math.isfinite(value) or value < 0]
        if bad:
            raise ValueError(f"{', '.join(bad)}: a tolerance must be a finite number >= 0")
        return tolerance


# numpy's and torch's seeds are unsigned 32-bit integers
SEED_LIMIT = 2**32


class Params(_Strict):
    seed: int = Field(42, ge=0, lt=SEED_LIMIT)
    model: str = Field("minilm", min_length=1)
    task: Task = "multiclass"
    lr: float = Field(1e-4, gt=0, lt=1, allow_inf_nan=False)  # nan: "a finite number"
    epochs: int = Field(4, ge=1)
    # auto: AUTO_BATCH_SIZE for the device the train stage runs on (resolve_batch_size)
    batch_size: int | Literal["auto"] = 16
    max_length: int = Field(128, ge=8, le=8192)
    # how a text longer than max_length is cut: keep its start (right), or its start and end
    truncation: Truncation = "right"

    data: DataParams = DataParams()
    clean: CleanParams = CleanParams()
    split: SplitParams = SplitParams()
    tokenize: TokenizeParams = TokenizeParams()
    windows: WindowsParams = WindowsParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    gate: GateParams = GateParams()

    @field_validator("batch_size", mode="before")
    @classmethod
    def _check_batch_size(cls, batch_size: Any) -> Any:
        # one message for every wrong value, in place of one per member of the union
        is_int = isinstance(batch_size, int) and not isinstance(batch_size, bool)
        if batch_size != "auto" and not (is_int and batch_size >= 1):
            raise ValueError(f"must be auto or a whole number of 1 or more (got {batch_size!r})")
        return batch_size

    @model_validator(mode="after")
    def _check_lengths(self) -> Params:
        head = self.tokenize.head_tokens
        if head is not None and head >= self.max_length:
            raise ValueError(
                f"tokenize.head_tokens ({head}) must be below max_length ({self.max_length}), "
                "leaving room for the tail"
            )
        stride = self.windows.stride
        if stride is not None and stride >= self.max_length:
            raise ValueError(
                f"windows.stride ({stride}) must be below max_length ({self.max_length}), "
                "or windows would skip tokens"
            )
        if self.data.text_pair and (self.truncation != "right" or stride is not None):
            raise ValueError(
                "truncation: head_tail and windows work on one text; with data.text_pair: true "
                "use truncation: right and windows.stride: null"
            )
        return self

    @model_validator(mode="after")
    def _check_train_options(self) -> Params:
        # at load, so that every stage and `bertpipe params` refuse them, not train after the
        # stages before it have run
        conflict = train_option_conflict(self)
        if conflict:
            raise ValueError(conflict)
        return self

    @model_validator(mode="after")
    def _check_gated_metrics(self) -> Params:
        # a misspelled name would be a metric no run has, which the gate cannot judge: that
        # metric would silently leave the gate
        tolerance = self.gate.tolerance
        if tolerance == "auto":
            return self
        if not tolerance:
            raise ValueError("gate.tolerance: {} gates nothing; name at least one metric, or auto")
        for name in tolerance:
            problem = unknown_metric(name, self.task)
            if problem:
                raise ValueError(f"gate.tolerance: {problem}")
        return self


def train_option_conflict(params: Params) -> str | None:
    """Why the train options do not fit the task or each other, in words; None where they do."""
    train = params.train
    allowed = (*METRICS_BY_TASK[params.task], "loss")
    if train.early_stopping_metric not in (*allowed, "auto"):
        return (
            f"train.early_stopping_metric: '{train.early_stopping_metric}' is not a metric of "
            f"task {params.task}; use one of {', '.join(allowed)}"
        )
    if train.class_weights == "balanced" and params.task == "regression":
        return "train.class_weights: balanced needs classes; use none for regression"
    if train.target_recall is not None and train.threshold != "auto":
        return (
            f"train.target_recall: {train.target_recall} needs train.threshold: auto "
            f"(it is {train.threshold}); set one of them"
        )
    return None


def unknown_metric(name: str, task: str) -> str | None:
    """Why `name` is not a metric that the task's runs report, in words; None where it is."""
    known = reported_metrics(task)
    if name in known:
        return None
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{name!r} is not a metric of task {task}{hint}; its metrics: {', '.join(known)}"


# YAML 1.1 wants a dot in a float, so PyYAML reads DVC's `lr: 2e-05` as the string '2e-05'.
# This resolver reads every YAML 1.2 float (1e-5, 2e-05, 1.5, .5) as a float.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that gives the same key twice: YAML would silently keep the last value."""


class _FloatFixLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` overrides on purpose
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, Hashable) and key in first_line:
                raise DuplicateKeyError(
                    problem=f"duplicate key {_quote(key)} at line {line} "
                    f"(first given at line {first_line[key]})",
                    problem_mark=key_node.start_mark,
                )
            if isinstance(key, Hashable):
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


_FloatFixLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_FloatFixLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _quote(key: Any) -> str:
    return f"'{key}'" if isinstance(key, str) else repr(key)


def safe_load_yaml(text: str) -> Any:
    """yaml.safe_load, but reading `2e-05` as the float DVC meant, and refusing a duplicate key."""
    return yaml.load(text, Loader=_FloatFixLoader)


def _sibling_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed next to the one at `loc`: the fields of the section it sits in."""
    section: type[BaseModel] = Params
    for part in loc[:-1]:
        field = section.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        section = annotation
    return list(section.model_fields)


# why a bound holds, where the bound alone would puzzle a user
_WHY: dict[str, str] = {
    "split.val_size": "the validation split picks the best epoch and fits the temperature and "
    "thresholds",
}


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        # a typo is the usual cause: name the key it was probably meant to be
        loc = tuple(error["loc"])
        close = difflib.get_close_matches(str(loc[-1]), _sibling_keys(loc), n=1)
        prefix = "".join(f"{part}." for part in loc[:-1])
        hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
        return f"unknown key '{key}'{hint}: fix or remove it"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error":
        # a check across sections names its keys itself
        return f"{key}: {message}" if error["loc"] else message
    why = f": {_WHY[key]}" if key in _WHY else ""
    return f"{key}: {message} (got {error['input']!r}){why}"


# what `train.early_stopping_metric: auto` means for each task
AUTO_EARLY_STOPPING_METRIC: dict[str, str] = {
    "binary": "f1_macro",
    "multiclass": "f1_macro",
    "multilabel": "f1_macro",
    "regression": "mse",
}


# what `train.class_weights: auto` means for each task: pos_weight for multilabel, where plain
# BCE drives every sigmoid of a rare label down (the measurement is in BENCHMARKS.md)
AUTO_CLASS_WEIGHTS: dict[str, str] = {
    "binary": "none",
    "multiclass": "none",
    "multilabel": "balanced",
    "regression": "none",
}


# what `gate.tolerance: auto` means for each task: the headline metrics, each allowed to drop
# 0.02 before the paired bootstrap is asked whether the drop is real. Regression gates r2, not
# mse: r2 has no unit, so one tolerance fits every label scale.
AUTO_GATE_TOLERANCE: dict[str, dict[str, float]] = {
    "binary": {"accuracy": 0.02, "f1_macro": 0.02},
    "multiclass": {"accuracy": 0.02, "f1_macro": 0.02},
    "multilabel": {"f1_macro": 0.02, "f1_micro": 0.02},
    "regression": {"r2": 0.02},
}


# what `batch_size: auto` means on each device type. CPU: 16, the measured default (BENCHMARKS.md).
# CUDA: 64, from the first run on one H200 (MiniLM, 128 tokens, bf16: 259 samples/s at batch
# 16, 860 at 64, 1,204 at 64 over 3 epochs); to be measured again now that the step no longer
# waits for the host.
AUTO_BATCH_SIZE: dict[str, int] = {"cpu": 16, "cuda": 64}


def resolve_batch_size(params: Params, device_type: str) -> Params:
    """`params` with `batch_size: auto` replaced by AUTO_BATCH_SIZE[device_type] ("cpu" or
    "cuda"): unlike the task's defaults it depends on the device, so the train stage resolves
    it once it knows where it trains, and the trained model's training_params.json records it."""
    if params.batch_size != "auto":
        return params
    return params.model_copy(update={"batch_size": AUTO_BATCH_SIZE[device_type]})


def resolve_gate(gate: GateParams, task: str) -> GateParams:
    """`gate` with `tolerance: auto` replaced by the task's tolerances."""
    if gate.tolerance != "auto":
        return gate
    return gate.model_copy(update={"tolerance": dict(AUTO_GATE_TOLERANCE[task])})


def resolve_task_defaults(params: Params) -> Params:
    """`params` with every `auto` setting replaced by the task's value: the one place that
    decides them, so that `-S task=...` alone switches the task and the trained model's
    training_params.json records what was used. Resolving twice changes nothing."""
    train = params.train
    if train.class_weights == "auto":
        class_weights = AUTO_CLASS_WEIGHTS[params.task]
        train = train.model_copy(update={"class_weights": class_weights})
    if train.early_stopping_metric == "auto":
        metric = AUTO_EARLY_STOPPING_METRIC[params.task]
        train = train.model_copy(update={"early_stopping_metric": metric})
    return params.model_copy(
        update={"train": train, "gate": resolve_gate(params.gate, params.task)}
    )


def ignored_settings(params: Params) -> list[str]:
    """One line for each setting that is given but has no effect with the others: the run goes
    on (a `-S task=...` must not fail on a key meant for another task), but says so."""
    lines = []
    if params.train.target_recall is not None and params.task not in ("binary", "multilabel"):
        lines.append(
            f"train.target_recall: {params.train.target_recall} has no effect on a {params.task} "
            "task (it sets the threshold of binary and multilabel tasks)"
        )
    if params.tokenize.head_tokens is not None and params.truncation != "head_tail":
        lines.append(
            f"tokenize.head_tokens: {params.tokenize.head_tokens} has no effect with truncation: "
            f"{params.truncation} (it is the head of head_tail)"
        )
    if params.windows.train and params.windows.stride is None:
        lines.append(
            "windows.train: true has no effect while windows.stride is null (windows are off)"
        )
    return lines


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate a loaded mapping; every problem names its key, all on one line."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of keys to values at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(_describe(error) for error in errors)
        if len(errors) > 1:
            # the keys first: a long line is cut in its middle, and each key must still show
            keys = dict.fromkeys(".".join(map(str, e["loc"])) or "params" for e in errors)
            problems = f"{len(errors)} problems ({', '.join(keys)}): {problems}"
        raise UserError(f"{source}: {problems}") from None


def decode_params_text(data: bytes, source: str) -> str:
    """The file's bytes as text: UTF-8 (a byte-order mark allowed), or one line naming the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{source}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}, "
            f"line {line}); save the file as UTF-8"
        ) from None


def parse_params_text(text: str, source: str = "params.yaml") -> Params:
    """Params from the text of a params file: the one verdict every reader of the file gets."""
    try:
        raw = safe_load_yaml(text)
    except DuplicateKeyError as exc:
        raise UserError(f"{source}: {exc.problem}; keep one of them") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{source}: not valid YAML{where}") from None
    except RecursionError:
        raise UserError(f"{source}: not valid YAML (nested too deeply)") from None
    except (OverflowError, ValueError):
        # PyYAML's scanner passes an escape such as "\U99999999" to chr(), which raises these
        raise UserError(f"{source}: not valid YAML (an escape beyond Unicode)") from None
    if raw is None:
        # DVC refuses a params file without the keys dvc.yaml names, so `bertpipe params` does too
        raise UserError(f"{source}: holds no params (an empty file?); write them in it")
    return parse_params(raw, source=source)


def load_params(path: str | Path = "params.yaml") -> Params:
    """params.yaml as checked params, its `auto` settings resolved for the task: what every
    stage and `bertpipe params` read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such params file; run from the project root")
    params = parse_params_text(decode_params_text(path.read_bytes(), str(path)), str(path))
    return resolve_task_defaults(params)
