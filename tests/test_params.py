"""params.yaml loads into the typed schema; every mistake is an error that names its key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from bertpipe.errors import MAX_MESSAGE_CHARS, UserError
from bertpipe.params import (
    AUTO_BATCH_SIZE,
    Params,
    ignored_settings,
    load_params,
    parse_params,
    resolve_batch_size,
    resolve_task_defaults,
    safe_load_yaml,
)

REPO = Path(__file__).resolve().parents[1]


def test_the_committed_params_load() -> None:
    params = load_params(REPO / "params.yaml")
    assert isinstance(params.lr, float)
    assert params.model == "minilm"
    assert params.task == "multiclass"


def test_dvc_written_float_is_read_as_float(tmp_path: Path) -> None:
    # DVC writes `-S lr=2e-5` as `lr: 2e-05`; plain PyYAML reads that as the string '2e-05'.
    assert yaml.safe_load("lr: 2e-05")["lr"] == "2e-05"
    path = tmp_path / "params.yaml"
    path.write_text("lr: 2e-05\nepochs: 3\nmodel: '1e5'\n")
    params = load_params(path)
    assert params.lr == 2e-5 and isinstance(params.lr, float)
    assert params.epochs == 3 and isinstance(params.epochs, int)
    assert params.model == "1e5"  # a quoted string stays a string


@pytest.mark.parametrize(
    "text",
    ["1e-5", "2e-05", "1.5", ".5", "-3E+2", "1.0e-4"],
)
def test_yaml_floats(text: str) -> None:
    assert safe_load_yaml(f"x: {text}")["x"] == float(text)


def test_yaml_ints_and_strings_unchanged() -> None:
    loaded = safe_load_yaml("a: 42\nb: fast\nc: 1_000\nd: '3.5'\ne: true")
    assert loaded == {"a": 42, "b": "fast", "c": 1000, "d": "3.5", "e": True}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"lrr": 1e-5}, "unknown key 'lrr'"),
        ({"train": {"warmup": 0.1}}, "unknown key 'train.warmup'"),
        ({"lr": "fast"}, "lr: "),
        ({"lr": 0}, "lr: Input should be greater than 0"),
        ({"lr": -1e-5}, "lr: "),
        ({"epochs": 0}, "epochs: Input should be greater than or equal to 1"),
        ({"epochs": 2.5}, "epochs: "),
        ({"epochs": "3"}, "epochs: "),
        ({"split": {"test_size": 1.0}}, "split.test_size: "),
        # no validation split: the message says what it is needed for
        (
            {"split": {"val_size": 0}},
            "split.val_size: Input should be greater than 0 (got 0): "
            "the validation split picks the best epoch and fits the temperature and thresholds",
        ),
        ({"split": {"test_size": 0.6, "val_size": 0.5}}, "split: test_size + val_size"),
        ({"task": "ranking"}, "task: "),
        ({"train": {"precision": "int8"}}, "train.precision: "),
        ({"data": {"text_column": ["a", "b", "c"], "text_pair": True}}, "data: text_pair"),
    ],
)
def test_bad_params_name_the_key(raw: dict, expected: str) -> None:
    with pytest.raises(UserError) as error:
        parse_params(raw)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


def test_several_problems_are_all_reported_on_one_line() -> None:
    with pytest.raises(UserError) as error:
        parse_params({"lr": "fast", "epochs": 0, "nope": 1})
    message = str(error.value)
    assert "lr:" in message and "epochs:" in message and "unknown key 'nope'" in message


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such params file"):
        load_params(tmp_path / "absent.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("lr: [1,\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(broken)
    # a quoted escape beyond Unicode: PyYAML's scanner raises OverflowError (found by the fuzz)
    broken.write_text('lr: "\\U99999999"\n')
    with pytest.raises(UserError, match=r"not valid YAML \(an escape beyond Unicode\)"):
        load_params(broken)


def test_ints_are_accepted_for_floats() -> None:
    params = parse_params({"train": {"weight_decay": 0, "max_grad_norm": 2}})
    assert params.train.weight_decay == 0.0 and params.train.max_grad_norm == 2.0


def _flatten(mapping: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        keys.add(name)
        if isinstance(value, dict):
            keys |= _flatten(value, f"{name}.")
    return keys


def test_every_param_named_in_dvc_yaml_exists_and_loads() -> None:
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    raw = safe_load_yaml((REPO / "params.yaml").read_text())
    defined = _flatten(raw)
    # a `params.yaml:` entry (a mapping) is the whole file: every key, so none is absent
    named = {
        key
        for stage in dvc["stages"].values()
        for key in stage.get("params", [])
        if isinstance(key, str)
    }
    assert named, "dvc.yaml declares no params"
    missing = sorted(named - defined)
    assert not missing, f"dvc.yaml names params absent from params.yaml: {missing}"
    Params.model_validate(raw)


def test_params_yaml_shows_every_schema_key() -> None:
    # params.yaml is the user's list of knobs: every field of the schema appears in it
    raw = safe_load_yaml((REPO / "params.yaml").read_text())
    schema_keys = _flatten(Params().model_dump())
    missing = sorted(schema_keys - _flatten(raw))
    assert not missing, f"params.yaml lacks {missing}"


def _leaf_values(section: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every key of the schema, dotted (`train.lr`), with its value as params.yaml writes it."""
    values: dict[str, Any] = {}
    dumped = section.model_dump(mode="json")
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            values |= _leaf_values(value, f"{prefix}{name}.")
        else:
            values[f"{prefix}{name}"] = dumped[name]
    return values


def _lines_by_key(text: str) -> dict[str, str]:
    """Each key of a block-style YAML file, dotted, with the line that states it."""
    lines: dict[str, str] = {}
    parents: list[tuple[int, str]] = []  # (indent, key) of the sections around a line
    for line in text.splitlines():
        match = re.match(r"( *)(\w+):", line)
        if match is None:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while parents and parents[-1][0] >= indent:
            parents.pop()
        lines[".".join([*(name for _, name in parents), key])] = line
        parents.append((indent, key))
    return lines


def _departures_without_a_reason(text: str, defaults: dict[str, Any]) -> list[str]:
    """The keys of params.yaml `text` whose value is not the default and whose line has no
    comment naming the default."""
    stated = _leaf_values(parse_params(safe_load_yaml(text)))
    lines = _lines_by_key(text)
    departures = []
    for key, default in defaults.items():
        if stated[key] != default and "default" not in lines[key].partition("#")[2]:
            departures.append(f"{key}: {stated[key]!r} (schema default {default!r})")
    return departures


def test_params_yaml_values_are_the_schema_defaults_or_say_why() -> None:
    # the schema is the one source of defaults: params.yaml repeats them, and where it departs
    # (a setting of the bundled sample), the line says why in a comment that names the default
    text = (REPO / "params.yaml").read_text()
    departures = _departures_without_a_reason(text, _leaf_values(Params()))
    assert not departures, f"params.yaml departs from the schema without a comment: {departures}"


def test_a_default_changed_in_one_place_is_caught() -> None:
    text = (REPO / "params.yaml").read_text()
    defaults = _leaf_values(Params())
    line = _lines_by_key(text)["train.weight_decay"]
    assert line.strip().startswith("weight_decay:")
    only_in_yaml = text.replace(line, "  weight_decay: 0.02")
    assert _departures_without_a_reason(only_in_yaml, defaults) == [
        "train.weight_decay: 0.02 (schema default 0.01)"
    ]
    only_in_schema = {**defaults, "lr": 5e-5}
    assert _departures_without_a_reason(text, only_in_schema) == [
        "lr: 0.0001 (schema default 5e-05)"
    ]


@pytest.mark.parametrize(
    ("task", "metric"),
    [
        ("binary", "f1_macro"),
        ("multiclass", "f1_macro"),
        ("multilabel", "f1_macro"),
        ("regression", "mse"),
    ],
)
def test_auto_early_stopping_metric_follows_the_task(
    tmp_path: Path, task: str, metric: str
) -> None:
    # `dvc exp run -S task=regression` alone must not leave a classification metric behind
    assert Params().train.early_stopping_metric == "auto"
    path = tmp_path / "params.yaml"
    path.write_text(f"task: {task}\ntrain:\n  early_stopping_metric: auto\n")
    resolved = load_params(path)
    assert resolved.train.early_stopping_metric == metric
    assert resolve_task_defaults(resolved) == resolved
    # class_weights: auto is resolved in the same place: pos_weight for multilabel only
    balanced = "balanced" if task == "multilabel" else "none"
    assert resolved.train.class_weights == balanced
    # the rest of train is untouched
    resolved_by_task = {"early_stopping_metric", "class_weights"}
    assert resolved.train.model_dump(exclude=resolved_by_task) == Params().train.model_dump(
        exclude=resolved_by_task
    )


def test_a_chosen_early_stopping_metric_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("task: regression\ntrain:\n  early_stopping_metric: r2\n")
    assert load_params(path).train.early_stopping_metric == "r2"


@pytest.mark.parametrize("seed", [-1, 2**32, 2**40])
def test_a_seed_outside_unsigned_32_bits_is_refused(seed: int) -> None:
    # numpy and torch take seeds in [0, 2**32): anything else crashed the split stage
    with pytest.raises(UserError, match=f"seed: .*got {seed}"):
        parse_params({"seed": seed})


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_the_ends_of_the_seed_range_are_accepted(seed: int) -> None:
    assert parse_params({"seed": seed}).seed == seed


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "params.yaml"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed: 1\nlr: 0.1\nseed: 2\n", "duplicate key 'seed' at line 3 (first given at line 1)"),
        (
            "train:\n  patience: 1\n  threshold: 0.4\n  patience: 3\n",
            "duplicate key 'patience' at line 4 (first given at line 2)",
        ),
    ],
)
def test_a_duplicate_key_is_refused_with_its_lines(
    tmp_path: Path, text: str, expected: str
) -> None:
    # YAML would keep the last value silently; the user meant one of the two
    with pytest.raises(UserError) as error:
        load_params(_write(tmp_path, text.encode()))
    assert expected in str(error.value) and "keep one of them" in str(error.value)


def test_a_merge_key_may_override_what_it_merges(tmp_path: Path) -> None:
    text = "base: &base {patience: 1, threshold: 0.4}\n"
    assert safe_load_yaml(text + "train: {<<: *base, patience: 3}\n")["train"] == {
        "patience": 3,
        "threshold": 0.4,
    }


def test_a_file_that_is_not_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    path = _write(tmp_path, "seed: 1\nmodel: café\n".encode("latin-1"))
    with pytest.raises(UserError) as error:
        load_params(path)
    assert str(error.value) == (
        f"{path}: not valid UTF-8 (byte 0xe9 at offset 18, line 2); save the file as UTF-8"
    )


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    assert load_params(_write(tmp_path, "\ufeffseed: 7\n".encode())).seed == 7


@pytest.mark.parametrize("content", [b"", b"\n\n", b"# only a comment\n", b"~\n"])
def test_a_file_without_params_is_refused(tmp_path: Path, content: bytes) -> None:
    # DVC refuses it for the keys dvc.yaml names; `bertpipe params` must not call it fine
    with pytest.raises(UserError, match="holds no params"):
        load_params(_write(tmp_path, content))


VERDICT_FILES = {
    "valid": b"seed: 3\n",
    "empty": b"",
    "latin-1": "model: caf\xe9\n".encode("latin-1"),
    "duplicate-key": b"seed: 1\nseed: 2\n",
    "not-a-mapping": b"- 1\n- 2\n",
}


@pytest.mark.parametrize("name", list(VERDICT_FILES))
def test_bertpipe_params_and_the_stages_agree(tmp_path: Path, name: str) -> None:
    """The same file gets the same verdict (and the same line) from both."""
    path = _write(tmp_path, VERDICT_FILES[name])
    shown = subprocess.run(
        [sys.executable, "-m", "bertpipe.cli", "params", str(path)],
        capture_output=True,
        text=True,
    )
    # the split stage reads params first; its input does not exist, so valid params fail later
    paths = ["--input", str(tmp_path / "absent.parquet"), "--output-dir", str(tmp_path / "out")]
    stage = subprocess.run(
        [sys.executable, "-m", "stages.split", "--params", str(path), *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if name == "valid":
        assert shown.returncode == 0, shown.stderr
        assert "no cleaned table" in stage.stderr
    else:
        assert shown.returncode == stage.returncode == 1
        assert shown.stderr == stage.stderr
        assert shown.stderr.startswith(f"error: {path}: ")


def test_a_missing_accelerate_config_is_refused_before_launching(tmp_path: Path) -> None:
    from bertpipe.launch import relaunch_command

    missing = str(tmp_path / "accelerate.yaml")
    with pytest.raises(UserError, match="accelerate_config: no such file"):
        relaunch_command("stages.train", [], 1, missing, cuda=False)
    Path(missing).write_text("num_processes: 2\n")
    assert relaunch_command("stages.train", [], 1, missing, cuda=False) is not None


def _dotted_keys(mapping: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in mapping.items():
        if isinstance(value, dict) and key != "tolerance":
            keys |= _dotted_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_the_medical_abstracts_params_are_a_complete_params_file() -> None:
    # `cp benchmarks/medical_abstracts.params.yaml params.yaml && dvc repro` must run: every key
    # of the schema is given, and the file loads with the stages' loader
    path = REPO / "benchmarks" / "medical_abstracts.params.yaml"
    params = load_params(path)
    assert params.data.path == "../shared/data/medical_abstracts/medical_abstracts.csv"
    given = _dotted_keys(safe_load_yaml(path.read_text()))
    assert given == _dotted_keys(Params().model_dump(mode="json"))


def test_settings_without_effect_are_named_and_the_defaults_have_none() -> None:
    assert ignored_settings(load_params(REPO / "params.yaml")) == []
    inert = parse_params(
        {
            "task": "multiclass",
            "train": {"target_recall": 0.9},
            "tokenize": {"head_tokens": 16},
            "windows": {"train": True},
        }
    )
    lines = ignored_settings(inert)
    assert [line.split(":")[0] for line in lines] == [
        "train.target_recall",
        "tokenize.head_tokens",
        "windows.train",
    ]
    # each has its effect once the setting it needs is there: no line
    live = parse_params(
        {
            "task": "binary",
            "truncation": "head_tail",
            "train": {"target_recall": 0.9},
            "tokenize": {"head_tokens": 16},
            "windows": {"train": True, "stride": 32},
        }
    )
    assert ignored_settings(live) == []


def test_batch_size_auto_as_dvc_writes_it_resolves_per_device(tmp_path: Path) -> None:
    # `dvc exp run -S batch_size=auto` writes `batch_size: auto`: the string, loaded as given
    path = tmp_path / "params.yaml"
    path.write_text("batch_size: auto\n")
    params = load_params(path)
    assert params.batch_size == "auto"
    assert resolve_batch_size(params, "cpu").batch_size == AUTO_BATCH_SIZE["cpu"] == 16
    assert resolve_batch_size(params, "cuda").batch_size == AUTO_BATCH_SIZE["cuda"] == 64
    chosen = parse_params({"batch_size": 24})
    assert resolve_batch_size(chosen, "cuda").batch_size == 24


@pytest.mark.parametrize("value", [0, -8, "big", True, 16.0, None])
def test_a_batch_size_neither_auto_nor_a_count_is_one_message(value: Any) -> None:
    with pytest.raises(UserError) as caught:
        parse_params({"batch_size": value})
    assert str(caught.value) == (
        f"params.yaml: batch_size: must be auto or a whole number of 1 or more (got {value!r})"
    )


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (
            {"task": "binary", "train": {"early_stopping_metric": "mse"}},
            "train.early_stopping_metric: 'mse' is not a metric of task binary; use one of",
        ),
        (
            {"task": "regression", "train": {"class_weights": "balanced"}},
            "train.class_weights: balanced needs classes; use none for regression",
        ),
        (
            {"train": {"threshold": 0.5, "target_recall": 0.9}},
            "train.target_recall: 0.9 needs train.threshold: auto (it is 0.5); set one of them",
        ),
        ({"data": {"encoding": "nonsense"}}, "data.encoding: unknown encoding 'nonsense'"),
    ],
)
def test_settings_train_or_clean_would_refuse_are_refused_at_load(
    given: dict[str, Any], words: str, tmp_path: Path
) -> None:
    # `bertpipe params` and every stage refuse them, before clean, split and tokenize have run
    with pytest.raises(UserError, match=re.escape(words)):
        parse_params(given)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(given))
    done = subprocess.run(
        [sys.executable, "-m", "bertpipe.cli", "params", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and words in done.stderr, done.stderr
    assert parse_params({"task": "regression", "train": {"early_stopping_metric": "r2"}})


def test_several_problems_name_every_key_before_the_cut() -> None:
    given = {
        "seed": -1,
        "task": "foo",
        "lr": "abc",
        "epochs": 2.5,
        "batch_size": 0,
        "train": {"precision": "fp64"},
    }
    with pytest.raises(UserError) as raised:
        parse_params(given)
    message = str(raised.value)
    assert len(message) <= MAX_MESSAGE_CHARS  # cut in the middle
    assert message.startswith(
        "params.yaml: 6 problems (seed, task, lr, epochs, batch_size, train.precision): "
    ), message


def test_compile_is_a_boolean() -> None:
    assert parse_params({"train": {"compile": True}}).train.compile is True
    with pytest.raises(UserError, match=r"train\.compile: Input should be a valid boolean"):
        parse_params({"train": {"compile": "yes"}})
