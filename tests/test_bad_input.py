"""Bad input ends in one clear line on stderr, a non-zero exit, no traceback and no partial output.

One test runs every case of CASES: it writes the case's files, sets its params, and runs the real
stage scripts with the command lines `dvc.yaml` gives them, in a copy of the project.
docs/errors.md lists the same cases with their messages; keep the two in step. To add a case,
add a `Case` to the table: the files to write, the params, the stages to run, the words the one
stderr line must hold and the exit code; `check` takes assertions a table cannot state.
"""

from __future__ import annotations

import json
import random
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pipeline_helpers import run_stage, set_params

from bertpipe.tokens import read_split

# what each stage writes, as named in dvc.yaml (outs and metrics)
OUTPUTS = {
    "clean": ("data/clean",),
    "split": ("data/split",),
    "tokenize": ("data/tokens",),
}
SPLITS = ("train", "val", "test")
NO_ROWS_HINT = "export the data again, or point data.path at the right file"
TWO_CLASSES = "text,label\nchest pain on exertion,cardiology\nsevere headache,neurology\n"
# a params value that the test replaces with the tiny BERT's folder
TINY_BERT = "<tiny_bert>"

Content = str | bytes | Callable[[Path], None]
Check = Callable[[Path, subprocess.CompletedProcess[str]], None]


@dataclass(frozen=True)
class Case:
    """One bad (or awkward) input and what the stages must do with it.

    data: the file under data/ that data.path points at (None: keep params.yaml's), written from
    files[data] if given, else absent. expect: words the one line on stderr must hold, an
    `error: ` line when exit_code is non-zero and a `warning: ` line otherwise; a case that exits
    0 without expected words must print nothing on stderr. A failing case leaves no output of its
    last stage. traceback: BERTPIPE_DEBUG=1, and the traceback is expected instead of the line.
    """

    id: str
    stages: tuple[str, ...] = ("clean",)
    data: str | None = None
    files: dict[str, Content] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    expect: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    exit_code: int = 1
    traceback: bool = False
    check: Check | None = None


def run_stages(
    project: Path, names: tuple[str, ...], extra_env: dict[str, str] | None
) -> subprocess.CompletedProcess[str]:
    """Run stages in order; every stage but the last must succeed."""
    *before, last = names
    for name in before:
        result = run_stage(project, name)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    return run_stage(project, last, extra_env)


def prepare(project: Path, case: Case, tiny_bert: Callable[[], Path]) -> None:
    for name, content in case.files.items():
        path = project / "data" / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)
    params = {
        key: str(tiny_bert()) if value == TINY_BERT else value for key, value in case.params.items()
    }
    if case.data is not None:  # the user's own file, without carried columns
        params = {
            "data.path": f"data/{case.data}",
            "data.carry_columns": [],
            "split.group_column": None,
            **params,
        }
    if params:
        set_params(project, **params)


def assert_no_output(project: Path, stage: str) -> None:
    """Neither the stage's outputs nor a temporary sibling of them exist."""
    for output in OUTPUTS[stage]:
        target = project / output
        assert not target.exists(), target
        leftovers = list(target.parent.glob(f".{target.name}*"))
        assert not leftovers, leftovers


def clean_report(project: Path) -> dict[str, Any]:
    return json.loads((project / "data" / "clean" / "report.json").read_text())


def cleaned(project: Path) -> pd.DataFrame:
    return pd.read_parquet(project / "data" / "clean" / "notes.parquet")


# --- file writers and checks that the table refers to --------------------------------------------


def spreadsheet(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as workbook:  # what an .xlsx is: a zip of XML parts
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/workbook.xml", "<workbook/>")


UNQUOTED_COMMAS = (
    "text,label\n"
    "chest pain on exertion,cardiology\n"
    "headache, blurred vision,neurology\n"  # the comma inside the text is not quoted
    "nausea and vomiting,gastroenterology\n"
    "dry cough,pulmonology\n"
)


def skipped_one_row(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    report = clean_report(project)
    assert report["bad_lines"] == 1
    assert report["rows_in"] == report["rows_out"] == 3
    assert "neurology" not in set(cleaned(project)["label"])


def warned_one_row(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.stderr.splitlines() == ["warning: data/commas.csv: skipped 1 malformed row(s)"]
    assert clean_report(project)["bad_lines"] == 1


def bom_is_not_in_the_column_name(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    frame = cleaned(project)
    assert list(frame.columns) == ["text", "label", "note_id"]
    assert frame["note_id"].tolist() == ["1", "2"]


LATIN1 = "text,label\ncaf\u00e9 au lait spots,dermatology\nna\u00efve headache,neurology\n"


def latin1_read(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert cleaned(project)["text"].tolist() == ["caf\u00e9 au lait spots", "na\u00efve headache"]


def empty_texts(path: Path) -> None:
    texts = ["chest pain", "", None, float("nan"), "   \t ", "\u200b\u00a0", "headache", "cough"]
    labels = ["cardiology", "a", "b", "c", "d", "e", "neurology", "pulmonology"]
    pd.DataFrame({"text": texts, "label": labels}).to_parquet(path)


def empty_texts_dropped(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    report = clean_report(project)
    assert report["dropped"]["empty_text"] == 5
    assert report["rows_in"] == 8 and report["rows_out"] == 3
    assert cleaned(project)["text"].tolist() == ["chest pain", "headache", "cough"]


TINY_CLASS = "\n".join(
    ["text,label"]
    + [f"note {i} about the heart,big" for i in range(20)]
    + [f"note {i} about the brain,mid" for i in range(20)]
    + ["first tiny note,tiny", "second tiny note,tiny", ""]
)


def split_unstratified(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert "(unstratified)" in result.stdout
    frames = [pd.read_parquet(project / f"data/split/{s}.parquet") for s in SPLITS]
    assert sorted(row for frame in frames for row in frame["row_id"]) == list(range(42))


# Three patients, one label each: a group split puts one patient in each of train, val and test,
# whatever the seed, so val and test always hold a label that train lacks.
THREE_PATIENTS = "\n".join(
    ["patient_id,text,label"]
    + [f"P{p},note {i} of patient {p},{label}" for p, label in enumerate("abc") for i in range(8)]
    + [""]
)

MULTILABEL = (
    "text,label\n"
    "chest pain and cough,cardiology|pulmonology\n"
    "headache,\n"  # no label: dropped
    "nausea,|\n"  # separators only: dropped
    "routine check,[]\n"  # an explicit empty list: no label applies, kept
    "wheezing,pulmonology\n"
)


def multilabel_rows(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    report = clean_report(project)
    assert report["dropped"]["missing_label"] == 2
    assert report["rows_out"] == 3
    assert [list(labels) for labels in cleaned(project)["label"]] == [
        ["cardiology", "pulmonology"],
        [],
        ["pulmonology"],
    ]


PROSE = "pt c/o chest pain, seen 2024-01-02, call 555-123-4567, jane.doe@example.com. "
PASTED = "ref-" * 12_500  # 50,000 characters of a pasted identifier, no spaces
LONG_TEXT = (PROSE * 700 + PASTED)[:100_000]


def long_texts(path: Path) -> None:
    rows = [(LONG_TEXT, "cardiology")]
    rows += [(f"note {i} about chest pain", "cardiology") for i in range(15)]
    rows += [(f"note {i} about headache", "neurology") for i in range(15)]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)


def long_text_truncated(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert len(LONG_TEXT) == 100_000
    # masking shortens the prose, but nothing cuts the text: its pasted tail is still there
    assert cleaned(project)["text"].str.endswith(PASTED[-1000:]).sum() == 1
    long_rows = 0
    for split in SPLITS:
        text = pd.read_parquet(project / f"data/split/{split}.parquet").set_index("row_id")
        tokens = read_split(project / f"data/tokens/{split}")
        lengths = tokens.lengths
        assert (lengths <= 32).all()
        for row_id, length in zip(tokens.row_ids, lengths, strict=True):
            if len(text.loc[row_id, "text"]) > 50_000:
                long_rows += 1
                assert length == 32
    assert long_rows == 1


CASES = [
    # --- files -----------------------------------------------------------------------------------
    Case(
        "missing-file",
        data="absent.csv",
        expect=("data/absent.csv", "data file not found", "set data.path"),
    ),
    Case(
        "empty-file",
        data="empty.csv",
        files={"empty.csv": b""},
        expect=("data/empty.csv: the file is empty", NO_ROWS_HINT),
    ),
    Case(
        "header-only",
        data="header.csv",
        files={"header.csv": "text,label\n"},
        expect=("data/header.csv: the file has a header but no rows", NO_ROWS_HINT),
    ),
    Case(
        "random-bytes",
        data="noise.csv",
        files={"noise.csv": random.Random(0).randbytes(4096)},
        expect=("data/noise.csv", "NUL bytes", "binary file", "export"),
        absent=("latin-1",),  # another encoding would only read the noise as garbage
    ),
    Case(
        "xlsx-renamed-csv",
        data="export.csv",
        files={"export.csv": spreadsheet},
        expect=("data/export.csv", "zip archive (an .xlsx/.ods spreadsheet?)", "export it as CSV"),
    ),
    Case(
        "xlsx-extension",
        data="export.xlsx",
        files={"export.xlsx": spreadsheet},
        expect=(
            "data/export.xlsx",
            "unsupported file type '.xlsx'",
            "save it as CSV",
            ".csv, .jsonl",
            ".tsv",
        ),
    ),
    Case(
        "unsupported-extension",
        data="notes.txt",
        files={"notes.txt": TWO_CLASSES},
        expect=(
            "unsupported file type '.txt'",
            "use one of .csv, .jsonl, .ndjson, .parquet, .pq, .tab, .tsv",
        ),
    ),
    Case(
        "semicolon-delimiter",
        data="semi.csv",
        files={"semi.csv": "text;label\nhello;a\nworld;b\n"},
        expect=(
            "missing column(s) text, label",
            "the file has: text;label",
            "delimited by something else, like ';' or tabs",
            "save it comma-separated, or tab-separated as .tsv",
        ),
    ),
    Case(
        "unquoted-commas-error",
        data="commas.csv",
        files={"commas.csv": UNQUOTED_COMMAS},
        expect=(
            "data/commas.csv: malformed row",
            "line 3",
            "quote texts that contain the delimiter",
            "set data.on_bad_lines to skip or warn",
        ),
    ),
    Case(
        "unquoted-commas-skip",
        data="commas.csv",
        files={"commas.csv": UNQUOTED_COMMAS},
        params={"data.on_bad_lines": "skip"},
        exit_code=0,
        check=skipped_one_row,
    ),
    Case(
        "unquoted-commas-warn",
        data="commas.csv",
        files={"commas.csv": UNQUOTED_COMMAS},
        params={"data.on_bad_lines": "warn"},
        expect=("data/commas.csv: skipped 1 malformed row(s)",),
        exit_code=0,
        check=warned_one_row,
    ),
    # the first data row has more fields than the header: pandas would silently take the extra
    # leading fields as an index and shift every column (the label column would hold texts)
    *(
        Case(
            f"every-row-has-an-unquoted-comma-{mode}",
            data="shifted.csv",
            files={
                "shifted.csv": "text,label\nchest pain, dyspnea,cardiology\n"
                "headache, blurred vision,neurology\n"
            },
            params={"data.on_bad_lines": mode},
            expect=(
                "data/shifted.csv: the rows have more fields than the header's 2 columns",
                "a ',' inside an unquoted text?",
                "quote texts that contain the delimiter",
            ),
        )
        for mode in ("error", "skip")
    ),
    # spreadsheets write a BOM before the first column's name; it must not become part of it
    Case(
        "utf8-byte-order-mark",
        data="bom.csv",
        files={
            "bom.csv": "\ufeffnote_id,text,label\n1,chest pain,cardiology\n2,headache,neurology\n"
        },
        params={"data.carry_columns": ["note_id"]},
        exit_code=0,
        check=bom_is_not_in_the_column_name,
    ),
    Case(
        "latin1-read-as-utf8",
        data="latin1.csv",
        files={"latin1.csv": LATIN1.encode("latin-1")},
        expect=(
            "data/latin1.csv: not valid utf-8 text",
            "byte 0xe9 at line 2",
            "set data.encoding",
            "latin-1",
        ),
    ),
    Case(
        "latin1-with-its-encoding",
        data="latin1.csv",
        files={"latin1.csv": LATIN1.encode("latin-1")},
        params={"data.encoding": "latin-1"},
        exit_code=0,
        check=latin1_read,
    ),
    # --- columns and labels ----------------------------------------------------------------------
    Case(
        "missing-columns",
        data="cols.csv",
        files={"cols.csv": "body,category\nhello,a\nworld,b\n"},
        expect=(
            "data/cols.csv: missing column(s) text, label; the file has: body, category",
            "set data.text_column, data.label_column in params.yaml to columns it has",
        ),
    ),
    Case(
        "duplicate-column-names",
        data="dup.csv",
        files={"dup.csv": "text,label,text\nchest pain,a,x\nheadache,b,y\n"},
        expect=("data/dup.csv", "duplicate column names ['text']", "rename them"),
    ),
    Case(
        "empty-nan-and-whitespace-texts-are-dropped-and-counted",
        data="texts.parquet",
        files={"texts.parquet": empty_texts},
        exit_code=0,
        check=empty_texts_dropped,
    ),
    Case(
        "single-class",
        data="one.csv",
        files={"one.csv": "text,label\nchest pain,a\nheadache,a\n"},
        expect=(
            "column 'label' has only 'a' after cleaning",
            "needs at least two classes: add rows of another class, or check data.label_column",
        ),
    ),
    # seed 0 happens to put both 'tiny' rows in train; a seed that does not is the next case's error
    Case(
        "class-too-small-to-stratify",
        stages=("clean", "split"),
        data="small.csv",
        files={"small.csv": TINY_CLASS},
        params={"seed": 0},
        expect=("warning: class(es) tiny have fewer", "falls back to unstratified"),
        exit_code=0,
        check=split_unstratified,
    ),
    Case(
        "label-absent-from-train",
        stages=("clean", "split"),
        data="groups.csv",
        files={"groups.csv": THREE_PATIENTS},
        params={"split.group_column": "patient_id"},
        expect=("appear in the val split but not in train", "add rows of them or remove them"),
    ),
    Case(
        "multilabel-row-without-label",
        data="multi.csv",
        files={"multi.csv": MULTILABEL},
        params={"task": "multilabel"},
        exit_code=0,
        check=multilabel_rows,
    ),
    Case(
        "regression-label-not-a-number",
        data="scores.csv",
        files={"scores.csv": "text,label\nchest pain,1.5\nheadache,2\ncough,high\n"},
        params={"task": "regression"},
        expect=(
            "row 3: label 'high' in column 'label' is not a number",
            "fix that cell, or set task: multiclass",
        ),
    ),
    # --- text length -----------------------------------------------------------------------------
    Case(
        "very-long-text-is-truncated",
        stages=("clean", "split", "tokenize"),
        data="long.csv",
        files={"long.csv": long_texts},
        params={"model": TINY_BERT, "max_length": 32, "clean.mask_phi": True},
        exit_code=0,
        check=long_text_truncated,
    ),
    # --- stages run out of order -----------------------------------------------------------------
    Case(
        "split-before-clean",
        stages=("split",),
        expect=("data/clean/notes.parquet: no cleaned table", "clean stage"),
    ),
    Case(
        "tokenize-before-split",
        stages=("tokenize",),
        expect=("data/split/train.parquet", "no split table", "split stage"),
    ),
    # --- params ----------------------------------------------------------------------------------
    Case(
        "unknown-key",
        params={"epoch": 3},  # a typo of epochs
        expect=("params.yaml: unknown key 'epoch' (did you mean 'epochs'?): fix or remove it",),
    ),
    Case(
        "wrong-type",
        params={"lr": "fast"},
        expect=("params.yaml: lr: Input should be a valid number", "(got 'fast')"),
    ),
    *(
        Case(f"out-of-range-{name}", params={key: value}, expect=("params.yaml: ", fragment))
        for name, key, value, fragment in [
            ("lr-0", "lr", 0, "lr: Input should be greater than 0 (got 0)"),
            ("lr-negative", "lr", -1, "lr: Input should be greater than 0 (got -1)"),
            (
                "test_size-1",
                "split.test_size",
                1.0,
                "split.test_size: Input should be less than 1 (got 1.0)",
            ),
            ("epochs-0", "epochs", 0, "epochs: Input should be greater than or equal to 1 (got 0)"),
        ]
    ),
    # --- model -----------------------------------------------------------------------------------
    Case(
        "model-folder-missing",
        stages=("clean", "split", "tokenize"),
        params={"model": "./models/nope"},
        expect=("model: folder ./models/nope does not exist", "set model to a saved model folder"),
    ),
    Case(
        "hub-id-while-offline",
        stages=("clean", "split", "tokenize"),
        params={"model": "some-org/some-model"},
        expect=(
            "model: 'some-org/some-model' is not a local folder",
            "the hub is offline (HF_HUB_OFFLINE=1)",
            "set model to a local folder holding config.json and the weights",
            "bertpipe download-model some-org/some-model --to models/base/NAME",
        ),
    ),
    # --- debugging -------------------------------------------------------------------------------
    Case("debug-mode-shows-the-traceback", data="absent.csv", traceback=True),
]


@pytest.mark.slow  # each case runs one to three stage scripts in subprocesses
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, project_copy: Path, request: pytest.FixtureRequest) -> None:
    prepare(project_copy, case, lambda: request.getfixturevalue("tiny_bert"))
    extra_env = {"BERTPIPE_DEBUG": "1"} if case.traceback else None
    result = run_stages(project_copy, case.stages, extra_env)
    last_stage = case.stages[-1]

    if case.traceback:
        assert result.returncode != 0
        assert "Traceback" in result.stderr and "UserError" in result.stderr
        assert_no_output(project_copy, last_stage)
        return

    assert result.returncode == case.exit_code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    if case.expect:
        assert len(lines) == 1, result.stderr
        kind = "error: " if case.exit_code else "warning: "
        assert lines[0].startswith(kind), lines[0]
        for fragment in case.expect:
            assert fragment in lines[0], lines[0]
        for fragment in case.absent:
            assert fragment not in lines[0], lines[0]
    else:
        assert case.exit_code == 0, "a failing case must name the words its error line holds"
        assert lines == [], result.stderr
    if case.exit_code:
        assert_no_output(project_copy, last_stage)
    if case.check is not None:
        case.check(project_copy, result)
