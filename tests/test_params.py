"""params.yaml loads into the typed schema; every mistake is an error that names its key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bertpipe.errors import UserError
from bertpipe.params import Params, load_params, parse_params, safe_load_yaml

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
    named = {key for stage in dvc["stages"].values() for key in stage.get("params", [])}
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
