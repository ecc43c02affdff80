"""Long notes end to end: the class keyword sits near the end of every note, past max_length.
Right truncation cannot see it; head_tail and windows can, in `dvc repro` and in `bertpipe
predict` on the trained model."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import KEYWORDS, keyword_notes
from pipeline_helpers import dvc, env, read_json, tiny_project

from bertpipe.tokens import read_split

pytestmark = pytest.mark.slow


def with_filler_in_front(notes: pd.DataFrame, words: int = 16) -> pd.DataFrame:
    """The notes with `words` generic words in front: a keyword moves past max_length 24."""
    rng = random.Random(4)
    generic = " ".join(notes["text"]).split()
    keywords = {word for words in KEYWORDS.values() for word in words}
    filler = sorted({word for word in generic if word not in keywords})
    notes = notes.copy()
    notes["text"] = [" ".join(rng.choices(filler, k=words)) + " " + text for text in notes["text"]]
    return notes


def long_notes(rows: int = 320) -> pd.DataFrame:
    """keyword_notes with 16 generic words in front: the keyword is about token 25."""
    return with_filler_in_front(keyword_notes(rows=rows, seed=3, noise=0.0))


def predict_texts(project: Path, texts: list[str], tmp_path: Path) -> list[dict]:
    """`bertpipe predict` on the trained model, one result per text in input order."""
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    output = tmp_path / "predicted.jsonl"
    predicted = subprocess.run(
        [
            str(Path(sys.executable).parent / "bertpipe"), "predict", "--model", "models/model",
            "--input", str(source), "--output", str(output),
        ],
        cwd=project, env=env(), capture_output=True, text=True,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    return [json.loads(line) for line in output.read_text().splitlines()]


def texts_of_test_rows(project: Path, row_ids: pd.Series) -> list[str]:
    split_table = pd.read_parquet(project / "data/split/test.parquet")
    return split_table.set_index("row_id").loc[row_ids, "text"].tolist()


def accuracy(project: Path) -> float:
    return float(read_json(project / "metrics.json")["accuracy"])


def test_head_tail_and_windows_see_the_end_of_long_notes(
    project_copy: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    data = tmp_path / "long.csv"
    notes = long_notes()
    notes.to_csv(data, index=False)
    project = tiny_project(
        project_copy, data, tiny_bert, max_length=24, epochs=8, lr=3e-3,
        truncation="head_tail", **{"tokenize.head_tokens": 4},
    )  # fmt: skip
    dvc(project, "repro")
    assert read_split(project / "data/tokens/test").text_index is None
    assert accuracy(project) >= 0.9, read_json(project / "metrics.json")

    # the same notes, right-truncated: the keyword is out of reach
    dvc(project, "exp", "run", "-S", "truncation=right")
    assert read_split(project / "data/tokens/test").text_index is None
    right = accuracy(project)
    assert right <= 0.45, read_json(project / "metrics.json")

    # windows at evaluation, on the head_tail model: every token counts
    dvc(project, "exp", "run", "-S", "truncation=head_tail", "-S", "windows.stride=11")
    assert read_split(project / "data/tokens/train").text_index is None
    test = read_split(project / "data/tokens/test")
    assert test.text_index is not None and len(test) > test.num_texts  # windows
    metrics = read_json(project / "metrics.json")
    assert metrics["n_test"] == test.num_texts
    predictions = pd.read_csv(project / "eval/predictions.csv")
    assert len(predictions) == test.num_texts
    assert predictions["row_id"].is_unique
    # windows of filler alone, a kind of sequence this model never trained on, dilute the mean
    assert accuracy(project) >= right + 0.2, metrics

    # predict pools the windows the same way: the same labels as evaluate on the test texts
    rows = predict_texts(project, texts_of_test_rows(project, predictions["row_id"]), tmp_path)
    assert [row["predicted_label"] for row in rows] == predictions["predicted"].tolist()
