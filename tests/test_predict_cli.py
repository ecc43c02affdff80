"""`bertpipe predict` on a model trained in-process from the tiny BERT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner

from bertpipe.artifacts import save_model_folder
from bertpipe.cli import app
from bertpipe.labels import sorted_label_names
from bertpipe.model import load_classifier
from bertpipe.params import Params
from bertpipe.predict import Predictor
from bertpipe.tokens import tokenize_split
from bertpipe.training import fit

runner = CliRunner()


@pytest.fixture(scope="module")
def trained_model(tiny_bert: Path, sample_frame: pd.DataFrame, tmp_path_factory) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    frame = sample_frame.dropna(subset=["text"]).head(120)
    names = sorted_label_names(frame["label"], "multiclass")

    def make(part: pd.DataFrame):
        return tokenize_split(
            part["text"].tolist(),
            part["label"].tolist(),
            np.arange(len(part)),
            tokenizer,
            64,
            names,
            "multiclass",
        )

    model = load_classifier(str(tiny_bert), len(names), "single_label_classification", names)
    settings = Params.model_validate(
        {"lr": 3e-3, "epochs": 1, "batch_size": 16, "seed": 0, "train": {"patience": None}}
    )
    fit(model, make(frame.iloc[:100]), make(frame.iloc[100:]), settings, 0, progress=False)
    folder = tmp_path_factory.mktemp("trained") / "model"
    params = Params(max_length=64).model_dump(mode="json")
    save_model_folder(folder, model, tokenizer, {**params, "label_names": names}, "# card\n")
    return folder


@pytest.mark.slow  # the trained_model fixture trains a model
def test_texts_as_arguments_give_one_json_line_each(trained_model: Path) -> None:
    result = runner.invoke(
        app, ["predict", "--model", str(trained_model), "chest pain", "headache"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["text"] for line in lines] == ["chest pain", "headache"]
    for line in lines:
        assert line["label"] in line["scores"]
        assert sum(line["scores"].values()) == pytest.approx(1.0, abs=1e-4)
        assert line["label"] == max(line["scores"], key=line["scores"].get)


@pytest.mark.slow  # the trained_model fixture trains a model
def test_stdin(trained_model: Path) -> None:
    result = runner.invoke(app, ["predict", "--model", str(trained_model)], input="one\n\ntwo\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["text"] for x in result.stdout.strip().splitlines()] == ["one", "two"]


@pytest.mark.slow  # the trained_model fixture trains a model
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_files_in_and_out(trained_model: Path, tmp_path: Path, suffix: str) -> None:
    source = pd.DataFrame({"id": [1, 2, 3], "note": ["chest pain", "cough and wheeze", "rash"]})
    input_path = tmp_path / f"in{suffix}"
    output_path = tmp_path / f"out{suffix}"
    {
        ".csv": lambda: source.to_csv(input_path, index=False),
        ".jsonl": lambda: source.to_json(input_path, orient="records", lines=True),
        ".parquet": lambda: source.to_parquet(input_path),
    }[suffix]()
    result = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(trained_model),
            "--input",
            str(input_path),
            "--text-column",
            "note",
            "--output",
            str(output_path),
        ],
    )
    assert result.exit_code == 0, result.output
    read = {
        ".csv": pd.read_csv,
        ".parquet": pd.read_parquet,
        ".jsonl": lambda p: pd.read_json(p, lines=True),
    }[suffix]
    out = read(output_path)
    assert list(out["id"]) == [1, 2, 3] and list(out["note"]) == list(source["note"])
    direct = Predictor.load(trained_model).predict(source["note"].tolist())
    assert list(out["label"]) == [r["label"] for r in direct]


@pytest.mark.slow  # the trained_model fixture trains a model
def test_results_come_back_in_input_order(trained_model: Path) -> None:
    predictor = Predictor.load(trained_model)
    texts = ["short", "a much longer note about chest pain and shortness of breath " * 3, "mid one"]
    together = predictor.predict(texts, batch_size=2)
    alone = [predictor.predict([text])[0] for text in texts]
    for joint, single in zip(together, alone, strict=True):
        assert joint["label"] == single["label"]
        for name, score in single["scores"].items():
            assert joint["scores"][name] == pytest.approx(score, abs=2e-2)


@pytest.mark.slow  # the trained_model fixture trains a model
def test_errors_are_one_line(trained_model: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope"), "x"])
    assert missing.exit_code == 1 and "not a trained model folder" in missing.stderr
    source = tmp_path / "in.csv"
    pd.DataFrame({"body": ["x"]}).to_csv(source, index=False)
    wrong_column = runner.invoke(
        app, ["predict", "--model", str(trained_model), "--input", str(source)]
    )
    assert wrong_column.exit_code == 1
    assert "missing column(s) text" in wrong_column.stderr and "body" in wrong_column.stderr
    bad_output = runner.invoke(app, ["predict", "--model", str(trained_model), "-o", "x.xlsx", "a"])
    assert bad_output.exit_code == 1 and "--output" in bad_output.stderr


def test_help_lists_the_forms() -> None:
    result = runner.invoke(app, ["predict", "--help"])
    assert result.exit_code == 0
    for option in ("--input", "--text-column", "--output", "--model"):
        assert option in result.stdout
