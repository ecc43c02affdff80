"""Bad input ends in one clear line on stderr, a non-zero exit, no traceback and no partial output.

One test runs every case of CASES: it writes the case's files, sets its params, and runs the real
stage scripts with the command lines `dvc.yaml` gives them (or a `bertpipe` command), in a copy of
the project, each in a process of its own forked from one that has imported the libraries
(tests/prewarmed.py). It checks that the last command changed no file but its own outputs, and
left none of its temporary files. docs/errors.md lists the messages (tests/test_errors_doc.py
checks that list against the code). To add a case, add a `Case` to the table: the files to write,
the params, the stages to run, the words the one stderr line must hold and the exit code; `check`
takes assertions a table cannot state.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import without_progress
from pipeline_helpers import dvc, env, init_repo, run_stage, set_params, stage_command
from prewarmed import Prewarmed

from bertpipe.errors import MAX_MESSAGE_CHARS
from bertpipe.tokens import read_split

# what each stage writes, as named in dvc.yaml (outs and metrics)
OUTPUTS = {
    "clean": ("data/clean",),
    "split": ("data/split",),
    "tokenize": ("data/tokens",),
    "train": ("models/model", "models/training_stats.json", "models/checkpoints", "dvclive"),
}
SPLITS = ("train", "val", "test")
NO_ROWS_HINT = "export the data again, or point data.path at the right file"
TWO_CLASSES = "text,label\nchest pain on exertion,cardiology\nsevere headache,neurology\n"
# a params value or command argument that the test replaces with the tiny BERT's folder
TINY_BERT = "<tiny_bert>"
CLI = "bertpipe"  # a command's last step: a `bertpipe` command instead of a stage

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
    # the whole params.yaml, for cases about the file itself
    params_text: bytes | None = None
    # with stages ending in CLI: the arguments of the `bertpipe` command run last
    command: tuple[str, ...] = ()
    # copy the tiny BERT to data/<name> before writing files (that may then break it)
    model_copy: str | None = None
    # copy a model folder as the train stage writes it (head untrained) to data/<name>
    trained_copy: str | None = None


def snapshot(project: Path) -> dict[str, str]:
    """Every file of the project (bytecode caches aside), by path, with its SHA-256."""
    return {
        str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(project.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


def prepare(
    project: Path,
    case: Case,
    tiny_bert: Callable[[], Path],
    tiny_trained: Callable[[], Path] | None = None,
) -> None:
    if case.model_copy is not None:
        shutil.copytree(tiny_bert(), project / "data" / case.model_copy)
    if case.trained_copy is not None:
        assert tiny_trained is not None
        shutil.copytree(tiny_trained(), project / "data" / case.trained_copy)
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
    if case.params_text is not None:
        (project / "params.yaml").write_bytes(case.params_text)


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
UTF8_ACCENTS = "text,label\n\u00c1cido f\u00f3lico 5 mg,hematology\nna\u00efve headache,neurology\n"
CP1252 = "text,label\n\u201cchest\u201d pain \u2013 \u20ac5 copay,cardiology\nheadache,neurology\n"


# 30 rows, with a quote opened in row 11 that a quote inside row 21's text closes
JOINED_BY_A_QUOTE = "id,text,label,site\n" + "".join(
    f"{i},{'OPEN' if i == 10 else ''}note {i}{'CLOSE end' if i == 20 else ''},"
    f"{'a' if i % 3 else 'b'},{'north' if i % 2 else 'south'}\n".replace("OPEN", '"').replace(
        "CLOSE", '"'
    )
    for i in range(30)
)


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


# --- inputs for the cases of issue 16 -------------------------------------------------------------

CLEAN_ARGS = ("--output", "data/clean/notes.parquet")


def parquet_writer(columns: dict[str, pa.Array]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        pq.write_table(pa.table(columns), path)

    return write


def duplicate_column_parquet(path: Path) -> None:
    table = pa.Table.from_arrays(
        [pa.array(["chest pain", "headache"]), pa.array(["a", "b"]), pa.array(["x", "y"])],
        names=["text", "label", "text"],
    )
    pq.write_table(table, path)


def jsonl(*rows: dict[str, Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


INT_LABELS_WITH_A_NULL = jsonl(
    *({"text": f"note {i} about the heart", "label": i % 2} for i in range(10)),
    {"text": "a note without a label", "label": None},
    *({"text": f"note {i} about the brain", "label": i % 2} for i in range(10, 20)),
)


def two_classes_only(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    # 0 and 1, whatever the chunk: never 0.0 and 1.0 next to them
    assert sorted(set(cleaned(project)["label"].astype(str))) == ["0", "1"]


def binary_text_decoded(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    # decoded: the no-break space is one character, which clean's NFKC makes a plain space
    # (bytes written out as text would have left a literal `\xc2\xa0`)
    assert cleaned(project)["text"].tolist() == ["chest pain", "headache"]


def good_params_text() -> str:
    return (Path(__file__).resolve().parents[1] / "params.yaml").read_text()


# a TSV named .csv is not a CSV with unquoted commas: the delimiter is to be sniffed and named
TSV_ADVICE_THAT_MISLEADS = ("quote texts that contain the delimiter", "inside an unquoted text")


def tsv(path: Path) -> None:
    path.write_text("text\tlabel\nchest pain\ta\nheadache, dizzy\tb\ncough\tc\n")


def nul_after_4kb(path: Path) -> None:
    rows = "".join(f"note {i} about chest pain,a\nnote {i} about headache,b\n" for i in range(200))
    path.write_bytes(("text,label\n" + rows).encode() + b"late,\x00b\n")


def text_as_label(path: Path) -> None:
    long = "long note " * 60
    pd.DataFrame({"text": [f"{long} {i}" for i in range(20)]}).assign(label="a").to_csv(
        path, index=False
    )


def corrupt_weights(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(2048))


# what makes the tiny base BERT's copy a model folder the train stage could have written (its
# config has transformers' default of two outputs); its head is random, which no case scores
TRAINED = json.dumps({"task": "multiclass", "label_names": ["cardiology", "neurology"]})
PREDICT_WITH_COPY = ("predict", "--model", "data/bert")
NOT_TEXT = "not text; write the value as text, or point the key at another column"


def symlink_to(target: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.symlink_to(target)

    return write


def link_kept(name: str, target: str) -> Check:
    def check(project: Path, result: subprocess.CompletedProcess[str]) -> None:
        link = project / "data" / name
        assert link.is_symlink() and os.readlink(link) == target

    return check


def json_lines_scored(count: int) -> Check:
    def check(project: Path, result: subprocess.CompletedProcess[str]) -> None:
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(lines) == count
        assert all(line["label"] in ("cardiology", "neurology") for line in lines)

    return check


ISSUE_25_CASES = [
    # --- predict: only a model the train stage wrote ----------------------------------------------
    Case(
        "predict-untrained-base-model",
        stages=(CLI,),
        command=("predict", "chest pain", "--model", TINY_BERT),
        expect=("not a trained model folder (no training_params.json)", "run dvc repro"),
    ),
    Case(
        "predict-training-params-without-task",
        stages=(CLI,),
        model_copy="bert",
        files={"bert/training_params.json": '{"label_names": ["a", "b"]}'},
        command=(*PREDICT_WITH_COPY, "chest pain"),
        expect=("data/bert/training_params.json: no task of bertpipe's (found None)",),
    ),
    Case(
        "predict-training-params-without-label-names",
        stages=(CLI,),
        model_copy="bert",
        files={"bert/training_params.json": '{"task": "binary", "label_names": "ab"}'},
        command=(*PREDICT_WITH_COPY, "chest pain"),
        expect=("data/bert/training_params.json: no list of label_names",),
    ),
    Case(
        "predict-config-and-training-params-of-different-models",
        stages=(CLI,),
        model_copy="bert",
        files={"bert/training_params.json": '{"task": "multiclass", "label_names": ["a","b","c"]}'},
        command=(*PREDICT_WITH_COPY, "chest pain"),
        expect=("data/bert: config.json has 2 outputs", "the files come from different models"),
    ),
    # --- predict: text cells that are no text, refused with training's words ---------------------
    Case(
        "predict-jsonl-list-text",
        stages=(CLI,),
        trained_copy="bert",
        files={
            "l.jsonl": '{"text": "chest pain"}\n{"text": ["a", "b"]}\n',
        },
        command=(*PREDICT_WITH_COPY, "--input", "data/l.jsonl"),
        expect=("data/l.jsonl: row 2: column 'text' (--text-column) holds a JSON list", NOT_TEXT),
    ),
    Case(
        "predict-cp1252-input",
        stages=(CLI,),
        trained_copy="bert",
        files={"in.csv": CP1252.encode("cp1252")},
        command=(*PREDICT_WITH_COPY, "--input", "data/in.csv", "--output", "data/out.csv"),
        expect=("data/in.csv: not valid utf-8 text", "--encoding, e.g. cp1252"),
        absent=("latin-1",),
    ),
    Case(
        # an export from a tool that writes tabs, named .csv: said as clean says it
        "predict-tsv-named-csv",
        stages=(CLI,),
        trained_copy="bert",
        files={"in.csv": "id\ttext\n1\tchest pain\n"},
        command=(*PREDICT_WITH_COPY, "--input", "data/in.csv", "--output", "data/out.csv"),
        expect=(
            "data/in.csv: the header is tab-separated, but the file is read as CSV by its "
            "extension; rename it to .tsv",
        ),
    ),
    Case(
        # a quote never closed: rows 12-20 would be read into row 11's text, and predicted as one
        "predict-quote-joins-rows",
        stages=(CLI,),
        trained_copy="bert",
        files={"in.csv": JOINED_BY_A_QUOTE},
        command=(*PREDICT_WITH_COPY, "--input", "data/in.csv", "--output", "data/out.csv"),
        expect=(
            "data/in.csv: row 11: column 'text' opens a quote never closed: the 10 "
            "line(s) after it, up to '20,note 20\" end,a,south', were read into its text",
        ),
    ),
    Case(
        "predict-jsonl-list-text-to-an-output",
        stages=(CLI,),
        trained_copy="bert",
        files={
            "l.jsonl": '{"text": "chest pain"}\n{"text": ["a", "b"]}\n',
        },
        command=(*PREDICT_WITH_COPY, "--input", "data/l.jsonl", "--output", "data/out.jsonl"),
        expect=("data/l.jsonl: row 2: column 'text' (--text-column) holds a JSON list", NOT_TEXT),
    ),
    Case(
        "predict-jsonl-boolean-text",
        stages=(CLI,),
        trained_copy="bert",
        files={"b.jsonl": '{"text": true}\n'},
        command=(*PREDICT_WITH_COPY, "--input", "data/b.jsonl", "-o", "data/out.jsonl"),
        expect=(
            "data/b.jsonl: row 1: column 'text' (--text-column) holds a JSON boolean",
            NOT_TEXT,
        ),
    ),
    Case(
        "predict-jsonl-object-text",
        stages=(CLI,),
        trained_copy="bert",
        files={"o.jsonl": '{"text": {"a": "b"}}\n'},
        command=(*PREDICT_WITH_COPY, "--input", "data/o.jsonl"),
        expect=("data/o.jsonl: row 1: column 'text' (--text-column) holds a JSON object", NOT_TEXT),
    ),
    Case(
        "predict-parquet-list-text",
        stages=(CLI,),
        trained_copy="bert",
        files={
            "l.parquet": parquet_writer(
                {"text": pa.array([None, ["a", "b"]], pa.list_(pa.string()))}
            ),
        },
        command=(*PREDICT_WITH_COPY, "--input", "data/l.parquet", "-o", "data/out.parquet"),
        expect=("data/l.parquet: row 2: column 'text' (--text-column) holds list<", NOT_TEXT),
    ),
    Case(
        "predict-parquet-boolean-text-printed",
        stages=(CLI,),
        trained_copy="bert",
        files={
            "b.parquet": parquet_writer({"text": pa.array([True, False])}),
        },
        command=(*PREDICT_WITH_COPY, "--input", "data/b.parquet"),
        expect=("data/b.parquet: row 1: column 'text' (--text-column) holds bool", NOT_TEXT),
    ),
    Case(
        "training-refuses-a-boolean-text-the-same-way",
        data="b.jsonl",
        files={"b.jsonl": '{"text": "chest pain", "label": "a"}\n{"text": false, "label": "b"}\n'},
        expect=(
            "data/b.jsonl: row 2: column 'text' (data.text_column) holds a JSON boolean",
            NOT_TEXT,
        ),
    ),
    # --- predict: inputs read, outputs named as the readers do ------------------------------------
    Case(
        "predict-gzipped-csv-input",
        stages=(CLI,),
        trained_copy="bert",
        files={
            "in.csv.gz": gzip.compress(b'id,text\n1,chest pain\n2,"head, ache"\n'),
        },
        command=(*PREDICT_WITH_COPY, "--input", "data/in.csv.gz"),
        exit_code=0,
        check=json_lines_scored(2),
    ),
    Case(
        "predict-gzipped-jsonl-input",
        stages=(CLI,),
        trained_copy="bert",
        files={
            "in.jsonl.gz": gzip.compress(b'{"text": "chest pain"}\n'),
        },
        command=(*PREDICT_WITH_COPY, "--input", "data/in.jsonl.gz"),
        exit_code=0,
        check=json_lines_scored(1),
    ),
    Case(
        "predict-empty-input",
        stages=(CLI,),
        trained_copy="bert",
        files={"e.csv": ""},
        command=(*PREDICT_WITH_COPY, "--input", "data/e.csv"),
        expect=("data/e.csv: the file has no header; nothing to predict",),
        absent=("data.path",),
    ),
    Case(
        "predict-header-only-input",
        stages=(CLI,),
        trained_copy="bert",
        files={"h.csv.gz": gzip.compress(b"id,text\n")},
        command=(*PREDICT_WITH_COPY, "--input", "data/h.csv.gz", "-o", "data/out.csv.gz"),
        expect=("data/h.csv.gz: the file has no rows; nothing to predict",),
        absent=("data.path",),
    ),
    Case(
        "predict-empty-jsonl-input-printed",
        stages=(CLI,),
        trained_copy="bert",
        files={"e.jsonl": "\n\n"},
        command=(*PREDICT_WITH_COPY, "--input", "data/e.jsonl"),
        expect=("data/e.jsonl: the file has no rows; nothing to predict",),
        absent=("data.path",),
    ),
    Case(
        "predict-output-parquet-gz",
        stages=(CLI,),
        command=("predict", "chest pain", "--model", TINY_BERT, "--output", "out.parquet.gz"),
        expect=("--output out.parquet.gz: unsupported file type '.gz'",),
    ),
    Case(
        "predict-output-a-symlink",
        stages=(CLI,),
        trained_copy="bert",
        files={
            "target.csv": "the user's file\n",
            "link.csv": symlink_to("target.csv"),
        },
        command=(*PREDICT_WITH_COPY, "chest pain", "--output", "data/link.csv"),
        expect=("--output data/link.csv: is a symbolic link (to target.csv)", "left as it is"),
        check=link_kept("link.csv", "target.csv"),
    ),
    Case(
        "predict-output-a-dangling-symlink",
        stages=(CLI,),
        trained_copy="bert",
        files={"link.csv": symlink_to("nowhere.csv")},
        command=(*PREDICT_WITH_COPY, "chest pain", "--output", "data/link.csv"),
        expect=("--output data/link.csv: is a symbolic link (to nowhere.csv)",),
        check=link_kept("link.csv", "nowhere.csv"),
    ),
    # --- training -------------------------------------------------------------------------------
    Case(
        "regression-constant-label",
        data="constant.csv",
        files={"constant.csv": "text,label\nchest pain,3\nheadache,3.0\ncough, 3 \n"},
        params={"task": "regression"},
        expect=(
            "column 'label' has only the value 3 after cleaning",
            "regression needs labels that vary",
        ),
    ),
    Case(
        "params-lr-nan",
        stages=(CLI,),
        command=("params",),
        params={"lr": float("nan")},
        expect=("params.yaml: lr: Input should be a finite number (got nan)",),
    ),
]

ISSUE_16_CASES = [
    # --- params.yaml itself -----------------------------------------------------------------------
    Case(
        "params-seed-negative",
        params={"seed": -1},
        expect=("params.yaml: seed: Input should be greater than or equal to 0 (got -1)",),
    ),
    Case(
        "params-seed-2-to-the-32",
        params={"seed": 2**32},
        expect=("params.yaml: seed: Input should be less than 4294967296",),
    ),
    Case(
        "params-duplicate-key",
        params_text=b"seed: 1\nseed: 2\n",
        expect=("params.yaml: duplicate key 'seed' at line 2 (first given at line 1)",),
    ),
    Case(
        "params-latin-1",
        params_text="model: caf\u00e9\n".encode("latin-1"),
        expect=("params.yaml: not valid UTF-8 (byte 0xe9 at offset 10, line 1)", "save the file"),
    ),
    Case(
        "params-empty",
        params_text=b"",
        expect=("params.yaml: holds no params (an empty file?)",),
    ),
    Case(
        "params-a-list",
        params_text=b"- seed\n- lr\n",
        expect=("params.yaml: expected a mapping of keys to values at the top level",),
    ),
    Case(
        "params-not-yaml",
        params_text=b"seed: [1,\nlr: 2\n",
        expect=("params.yaml: not valid YAML at line",),
    ),
    Case(
        "params-shown-by-bertpipe-params-the-same-way",
        stages=(CLI,),
        command=("params",),
        params_text=b"seed: 1\nseed: 2\n",
        expect=("params.yaml: duplicate key 'seed' at line 2 (first given at line 1)",),
    ),
    Case(
        "params-unknown-encoding",
        data="enc.csv",
        files={"enc.csv": TWO_CLASSES},
        params={"data.encoding": "utf-9"},
        expect=("data.encoding: unknown encoding 'utf-9'",),
    ),
    Case(
        "params-data-path-a-folder",
        params={"data.path": "data/raw"},
        expect=("data/raw: is a folder; data.path must name a file",),
    ),
    Case(
        "params-carry-a-reserved-column",
        data="carry.csv",
        files={"carry.csv": "text,label,row_id\nchest pain,a,1\nheadache,b,2\n"},
        params={"data.carry_columns": ["row_id"]},
        expect=("data.carry_columns: row_id would clash with the columns bertpipe writes",),
    ),
    Case(
        "params-group-column-not-in-the-file",
        data="groups.csv",
        files={"groups.csv": THREE_PATIENTS},
        params={"split.group_column": "ward"},
        expect=(
            "data/groups.csv: missing column(s) 'ward'",
            "set split.group_column in params.yaml to columns it has",
        ),
    ),
    Case(
        "params-binary-task-with-three-classes",
        data="three.csv",
        files={"three.csv": "text,label\nchest pain,a\nheadache,b\ncough,c\n"},
        params={"task": "binary"},
        expect=("task is binary but column 'label' has 3 classes (a, b, c); set task: multiclass",),
    ),
    Case(
        "params-accelerate-config-missing",
        stages=("clean", "split", "tokenize", "train"),
        params={"model": TINY_BERT, "max_length": 32, "train.accelerate_config": "acc.yaml"},
        expect=("train.accelerate_config: no such file 'acc.yaml'",),
    ),
    Case(
        "params-target-recall-above-one",
        params={"train.target_recall": 1.5},
        expect=("train.target_recall: Input should be less than or equal to 1 (got 1.5)",),
    ),
    Case(
        "params-threshold-neither-auto-nor-a-probability",
        params={"train.threshold": 1.5},
        expect=("train.threshold: must be auto or a number between 0 and 1 (got 1.5)",),
    ),
    Case(
        "params-target-recall-with-a-fixed-threshold",  # refused at load, by every stage
        params={"train.threshold": 0.5, "train.target_recall": 0.9},
        expect=("train.target_recall: 0.9 needs train.threshold: auto (it is 0.5)",),
    ),
    Case(
        "params-max-length-above-the-model-positions",
        stages=("clean", "split", "tokenize"),
        params={"model": TINY_BERT, "max_length": 1024},
        expect=("max_length", "128"),
    ),
    Case(
        "params-windows-stride-above-a-window",
        stages=("clean", "split", "tokenize"),
        params={"model": TINY_BERT, "max_length": 32, "windows.stride": 31},
        expect=("windows.stride: 31 is more than the 30 text tokens a window holds",),
    ),
    Case(
        "params-head-tokens-above-what-fits",
        stages=("clean", "split", "tokenize"),
        params={
            "model": TINY_BERT,
            "max_length": 32,
            "truncation": "head_tail",
            "tokenize.head_tokens": 31,
        },
        expect=("tokenize.head_tokens: 31 is more than the 30 text tokens",),
    ),
    Case(
        "params-windows-stride-zero",
        params={"windows.stride": 0},
        expect=("windows.stride: Input should be greater than or equal to 1 (got 0)",),
    ),
    Case(
        "params-head-tokens-at-max-length",
        params={"max_length": 64, "tokenize.head_tokens": 64},
        expect=("tokenize.head_tokens (64) must be below max_length (64)",),
    ),
    Case(
        "params-pooling-unknown",
        params={"windows.pooling": "median"},
        expect=("windows.pooling: Input should be 'mean' or 'max'",),
    ),
    # --- one line, cut ----------------------------------------------------------------------------
    # every text its own class: the split's message once listed 20 long labels (6,048
    # characters); clean now refuses such a label column first, without listing them
    Case(
        "label-column-is-the-text-column",
        data="texts.csv",
        files={"texts.csv": text_as_label},
        params={"data.label_column": "text"},
        expect=(
            "error: column 'text' has 20 distinct labels in 20 rows, 20 of them on one row only",
            "Set data.label_column, or task: regression for numbers",
        ),
    ),
    # --- tables: types ----------------------------------------------------------------------------
    Case(
        "jsonl-int-labels-with-a-null-in-small-chunks",
        data="ints.jsonl",
        files={"ints.jsonl": INT_LABELS_WITH_A_NULL},
        params={"data.chunk_rows": 4},
        exit_code=0,
        check=two_classes_only,
    ),
    Case(
        "jsonl-object-in-the-text-column",
        data="objects.jsonl",
        files={"objects.jsonl": jsonl({"text": {"body": "chest pain"}, "label": "a"})},
        expect=("data/objects.jsonl", "'text'", "row 1"),
    ),
    Case(
        "jsonl-object-in-the-label-column",
        data="objects.jsonl",
        files={
            "objects.jsonl": jsonl(
                {"text": "chest pain", "label": {"name": "cardiology"}},
                {"text": "headache", "label": "neurology"},
            )
        },
        expect=("data/objects.jsonl", "'label'", "row 1"),
    ),
    Case(
        "parquet-list-text-column",
        data="lists.parquet",
        files={
            "lists.parquet": parquet_writer(
                {"text": pa.array([["chest", "pain"], ["headache"]]), "label": pa.array(["a", "b"])}
            )
        },
        expect=("data/lists.parquet", "'text'", "row 1"),
    ),
    Case(
        "parquet-struct-label-column",
        data="structs.parquet",
        files={
            "structs.parquet": parquet_writer(
                {
                    "text": pa.array(["chest pain", "headache"]),
                    "label": pa.array([{"name": "a"}, {"name": "b"}]),
                }
            )
        },
        expect=("data/structs.parquet", "'label'", "row 1"),
    ),
    Case(
        "parquet-binary-text-utf8-is-decoded",
        data="binary.parquet",
        files={
            "binary.parquet": parquet_writer(
                {
                    "text": pa.array(["chest\u00a0pain".encode(), b"headache"], pa.binary()),
                    "label": pa.array(["a", "b"]),
                }
            )
        },
        exit_code=0,
        check=binary_text_decoded,
    ),
    Case(
        "parquet-binary-text-not-utf8",
        data="binary.parquet",
        files={
            "binary.parquet": parquet_writer(
                {
                    "text": pa.array([b"chest pain", b"caf\xe9"], pa.binary()),
                    "label": pa.array(["a", "b"]),
                }
            )
        },
        expect=("data/binary.parquet", "'text'", "row 2"),
    ),
    Case(
        "parquet-duplicate-column-names",
        data="dup.parquet",
        files={"dup.parquet": duplicate_column_parquet},
        expect=("data/dup.parquet", "duplicate column"),
    ),
    Case(
        "carried-column-mixing-ints-and-strings",
        data="mixed.jsonl",
        files={
            "mixed.jsonl": jsonl(
                {"text": "chest pain", "label": "a", "note_id": 1},
                {"text": "headache", "label": "b", "note_id": "n-2"},
            )
        },
        params={"data.carry_columns": ["note_id"]},
        expect=("note_id",),
        exit_code=0,
    ),
    Case(
        # an export that spelled one class two ways
        "labels-spelled-two-ways",
        data="spellings.csv",
        files={"spellings.csv": "text,label\nchest pain,billing\nheadache,BILLING\nrash,triage\n"},
        expect=(
            "warning: data/spellings.csv: column 'label': 1 label(s) spelled in several ways "
            "are separate classes ('BILLING' and 'billing')",
        ),
        exit_code=0,
    ),
    Case(
        # NA written for a missing label: read as text, it is a class
        "label-spelling-a-missing-value",
        data="na.csv",
        files={"na.csv": "text,label\nchest pain,billing\ncough,NA\nrash,triage\n"},
        expect=("warning: data/na.csv: column 'label': label(s) 'NA' look like a missing value",),
        exit_code=0,
    ),
    # --- tables: shapes and messages --------------------------------------------------------------
    Case(
        "tsv-named-csv-with-skip",
        data="tabs.csv",
        files={"tabs.csv": tsv},
        params={"data.on_bad_lines": "skip"},
        expect=("data/tabs.csv", ".tsv"),
        absent=TSV_ADVICE_THAT_MISLEADS,
    ),
    Case(
        "tsv-named-csv",
        data="tabs.csv",
        files={"tabs.csv": tsv},
        expect=("data/tabs.csv", ".tsv"),
        absent=TSV_ADVICE_THAT_MISLEADS,
    ),
    Case(
        "header-with-a-space-after-the-comma",
        data="spaced.csv",
        files={"spaced.csv": "text, label\nchest pain,a\nheadache,b\n"},
        expect=("data/spaced.csv", "' label'", "'label'"),
    ),
    Case(
        "header-ending-in-blank-cells",
        data="blank.csv",
        files={"blank.csv": "text,label,,\nchest pain,a,,\nheadache,b,,\n"},
        expect=("data/blank.csv", "ignoring unused columns with blank or repeated names"),
        exit_code=0,
        absent=("duplicate column names ['']",),
    ),
    Case(
        "nul-byte-after-the-first-4-kb",
        data="late.csv",
        files={"late.csv": nul_after_4kb},
        expect=("data/late.csv", "NUL"),
    ),
    Case(
        "invalid-json-line-located-by-line",
        data="broken.jsonl",
        files={"broken.jsonl": jsonl({"text": "a", "label": "x"}) + "{broken\n"},
        expect=("data/broken.jsonl", "line 2"),
    ),
    Case(
        "random-bytes-named-parquet",
        data="noise.parquet",
        files={"noise.parquet": random.Random(2).randbytes(1024)},
        expect=("data/noise.parquet", "not a readable Parquet file"),
    ),
    Case(
        "all-texts-blank-are-not-blamed-on-the-label-column",
        data="blank.csv",
        files={"blank.csv": "text,label\n ,a\n\t,b\n"},
        expect=("data/blank.csv", "text"),
        absent=("data.label_column",),
    ),
    # --- predict ----------------------------------------------------------------------------------
    Case(
        "predict-output-extension",
        stages=(CLI,),
        command=("predict", "chest pain", "--model", TINY_BERT, "--output", "out.txt"),
        expect=("--output out.txt: unsupported file type '.txt'", "use one of .csv"),
    ),
    Case(
        "predict-texts-and-input",
        stages=(CLI,),
        command=("predict", "chest pain", "--input", "data/raw/notes.csv", "--model", TINY_BERT),
        expect=("give texts as arguments or --input, not both",),
    ),
    Case(
        "predict-input-without-the-text-column",
        stages=(CLI,),
        files={"cols.csv": "body,category\nhello,a\n"},
        command=("predict", "--input", "data/cols.csv", "--model", TINY_BERT),
        expect=("data/cols.csv: missing column(s) text", "pick one with --text-column"),
    ),
    Case(
        "predict-model-folder-without-config",
        stages=(CLI,),
        command=("predict", "chest pain", "--model", "data"),
        expect=("data: not a trained model folder (no config.json)",),
    ),
    Case(
        "predict-input-random-bytes",
        stages=(CLI,),
        files={"noise.csv": random.Random(3).randbytes(4096)},
        command=("predict", "--input", "data/noise.csv", "--model", TINY_BERT),
        expect=("data/noise.csv", "NUL bytes"),
    ),
    Case(
        "predict-corrupt-weights",
        stages=(CLI,),
        model_copy="bert",
        files={"bert/training_params.json": TRAINED, "bert/model.safetensors": corrupt_weights},
        command=("predict", "chest pain", "--model", "data/bert"),
        expect=("data/bert", "model.safetensors"),
    ),
    Case(
        "predict-broken-training-params",
        stages=(CLI,),
        model_copy="bert",
        files={"bert/training_params.json": "{"},
        command=("predict", "chest pain", "--model", "data/bert"),
        expect=("data/bert", "training_params.json"),
    ),
    # --- check-metrics (exit 2: the gate cannot decide) -------------------------------------------
    Case(
        "check-metrics-bad-tolerance",
        stages=(CLI,),
        command=("check-metrics", "--tolerance", "f1"),
        expect=("--tolerance: expected METRIC=NUMBER, got 'f1'",),
        exit_code=2,
    ),
    Case(
        # the project is no git repository (tests/test_gate.py covers an unknown revision)
        "check-metrics-outside-a-git-repository",
        stages=(CLI,),
        command=("check-metrics", "--baseline", "nope"),
        expect=("--repo .: not a git repository",),
        exit_code=2,
    ),
    Case(
        "check-metrics-confidence-above-1",
        stages=(CLI,),
        command=("check-metrics", "--confidence", "1.5"),
        expect=("confidence",),
        exit_code=2,
    ),
    Case(
        "check-metrics-zero-resamples",
        stages=(CLI,),
        command=("check-metrics", "--n-bootstrap", "0"),
        expect=("n-bootstrap",),
        exit_code=2,
    ),
]

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
            "data/semi.csv: the header is ';'-separated, but the file is read as CSV by its "
            "extension; save it comma-separated",
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
            "e.g. latin-1",
        ),
    ),
    Case(
        # Excel's export on Windows: curly quotes, a dash and the euro sign are bytes 0x80-0x9F,
        # control characters in latin-1 (which cleaning would strip): the hint is cp1252
        "cp1252-read-as-utf8",
        data="cp1252.csv",
        files={"cp1252.csv": CP1252.encode("cp1252")},
        expect=("data/cp1252.csv: not valid utf-8 text", "byte 0x93 at line 2", "e.g. cp1252"),
        absent=("latin-1",),
    ),
    Case(
        # a UTF-8 file (Á is the bytes C3 81; 0x81 is no cp1252 character) read as cp1252: the
        # hint is utf-8, not latin-1, which would read the file without an error, and wrongly
        "utf8-read-as-cp1252",
        data="utf8.csv",
        files={"utf8.csv": UTF8_ACCENTS.encode("utf-8")},
        params={"data.encoding": "cp1252"},
        expect=("data/utf8.csv: not valid cp1252 text", "e.g. utf-8"),
        absent=("latin-1",),
    ),
    Case(
        # read as latin-1 the same file gives no error, but two characters for each accented one
        "utf8-read-as-latin1",
        data="utf8.csv",
        files={"utf8.csv": UTF8_ACCENTS.encode("utf-8")},
        params={"data.encoding": "latin-1"},
        exit_code=0,
        expect=("data/utf8.csv: read as latin-1, but its bytes are UTF-8 text", "e.g. utf-8"),
    ),
    Case(
        "quote-joins-rows",
        data="joined.csv",
        files={"joined.csv": JOINED_BY_A_QUOTE},
        expect=(
            "data/joined.csv: row 11: column 'text' opens a quote never closed: "
            "the 10 line(s) after it",
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
            "data/cols.csv: missing column(s) 'text', 'label'; the file has: 'body', 'category'",
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
        expect=("2 label(s) appear in the val and test split but not in train: a, c; add rows",),
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
            "error: data/scores.csv: row 3: label 'high' in column 'label' is not a number",
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
    Case(
        "model-asks-for-remote-code",
        stages=("clean", "split", "tokenize"),
        model_copy="custom",
        files={
            "custom/config.json": lambda path: path.write_text(
                json.dumps({**json.loads(path.read_text()), "auto_map": {"AutoConfig": "x.C"}})
            ),
            # what a trust_remote_code load would import: it would leave data/ran.txt behind
            "custom/x.py": "open('data/ran.txt', 'w').write('ran')\n",
        },
        params={"model": "data/custom", "max_length": 32},
        expect=("model: data/custom asks for code of its own (auto_map", "never runs code"),
        check=lambda project, _: _assert_absent(project / "data" / "ran.txt"),
    ),
    # --- debugging -------------------------------------------------------------------------------
    Case("debug-mode-shows-the-traceback", data="absent.csv", traceback=True),
    *ISSUE_16_CASES,
    *ISSUE_25_CASES,
]


def _assert_absent(path: Path) -> None:
    assert not path.exists(), f"{path} exists: the model folder's code ran"


@pytest.fixture(scope="session")
def tiny_trained(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with a two-class head, saved as the train stage saves a model (untrained:
    no case reads its scores)."""
    from bertpipe.artifacts import save_model_folder
    from bertpipe.decision import Decision
    from bertpipe.model import load_classifier, load_tokenizer
    from bertpipe.params import Params

    names = ["cardiology", "neurology"]
    model = load_classifier(str(tiny_bert), 2, "single_label_classification", names)
    folder = tmp_path_factory.mktemp("tiny_trained") / "model"
    trained = {**Params(max_length=32).model_dump(mode="json"), "label_names": names}
    tokenizer = load_tokenizer(str(tiny_bert))
    save_model_folder(folder, model, tokenizer, trained, "# card\n", Decision("multiclass"))
    return folder


def _param(case: Case) -> Any:
    return pytest.param(case, id=case.id)


def test_the_table_covers_at_least_60_cases() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES), "two cases share an id"


@pytest.mark.slow  # each case runs one to four stage scripts in subprocesses
@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_bad_input(
    case: Case, project_copy: Path, prewarmed: Prewarmed, request: pytest.FixtureRequest
) -> None:
    prepare(
        project_copy,
        case,
        lambda: request.getfixturevalue("tiny_bert"),
        lambda: request.getfixturevalue("tiny_trained"),
    )
    last_env = {**env(), "BERTPIPE_DEBUG": "1"} if case.traceback else env()
    *before, last_stage = case.stages
    for name in before:
        prior = prewarmed.run(*stage_command(project_copy, name), project_copy, env())
        assert prior.returncode == 0, f"{name}: {prior.stderr}"
    files_before = snapshot(project_copy)
    if last_stage == CLI:
        args = [
            str(request.getfixturevalue("tiny_bert")) if a == TINY_BERT else a for a in case.command
        ]
        result = prewarmed.run("bertpipe.cli", args, project_copy, last_env)
    else:
        result = prewarmed.run(*stage_command(project_copy, last_stage), project_copy, last_env)
    changed = changed_files(files_before, snapshot(project_copy))

    if case.traceback:
        assert result.returncode != 0
        assert "Traceback" in result.stderr and "UserError" in result.stderr
        assert_no_output(project_copy, last_stage)
        return

    assert result.returncode == case.exit_code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # predict's progress lines (stderr is no terminal here) are not messages
    lines = without_progress(result.stderr)
    if case.expect:
        assert len(lines) == 1, result.stderr
        assert len(lines[0]) <= len("error: ") + MAX_MESSAGE_CHARS, lines[0]
        kind = "error: " if case.exit_code else "warning: "
        assert lines[0].startswith(kind), lines[0]
        for fragment in case.expect:
            assert fragment in lines[0], lines[0]
        for fragment in case.absent:
            assert fragment not in lines[0], lines[0]
    else:
        assert case.exit_code == 0, "a failing case must name the words its error line holds"
        assert lines == [], result.stderr
    # a failing command changes nothing; a stage that succeeds writes only its own outputs
    allowed = () if case.exit_code or last_stage == CLI else OUTPUTS[last_stage]
    unexpected = [path for path in changed if not path.startswith(allowed)] if allowed else changed
    assert not unexpected, f"files changed or left behind: {unexpected}"
    if case.exit_code and last_stage != CLI:
        assert_no_output(project_copy, last_stage)
    if case.check is not None:
        case.check(project_copy, result)


# --- through dvc repro, our line comes first -----------------------------------------------------


@pytest.mark.slow  # a real `dvc repro` in a throwaway repository
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"seed": -1}, "error: params.yaml: seed: Input should be greater than or equal to 0"),
        (
            {"data.path": "data/raw/header.csv"},
            "error: data/raw/header.csv: the file has a header but no rows",
        ),
    ],
    ids=["bad-param", "header-only-data-file"],
)
def test_dvc_repro_shows_our_line_first(
    project_copy: Path, params: dict[str, Any], expected: str
) -> None:
    # the bundled sample's header: every column params.yaml names is there, only rows are not
    (project_copy / "data" / "raw" / "header.csv").write_text("note_id,patient_id,text,label\n")
    set_params(project_copy, **params)
    init_repo(project_copy)
    result = dvc(project_copy, "repro", check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    # DVC's own "ERROR: failed to reproduce ..." comes after ours
    assert lines[0].startswith(expected), result.stderr
    assert "Traceback" not in result.stderr


# --- scratch space and temporary outputs of a killed stage ---------------------------------------


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, "the stage ended before the scratch folder appeared"
        assert time.monotonic() < deadline, "no scratch folder after 120 s"
        time.sleep(0.05)


@pytest.mark.slow  # runs the clean stage on 200,000 rows and kills it mid-run
def test_a_killed_clean_leaves_scratch_that_the_next_run_removes(project_copy: Path) -> None:
    rows = 200_000
    frame = pd.DataFrame(
        {"text": [f"note {i} chest pain" for i in range(rows)], "label": ["a", "b"] * (rows // 2)}
    )
    frame.to_csv(project_copy / "data" / "big.csv", index=False)
    set_params(
        project_copy,
        **{
            "data.path": "data/big.csv",
            "data.carry_columns": [],
            "split.group_column": None,
            "data.chunk_rows": 1000,
        },
    )
    clean_dir = project_copy / "data" / "clean"
    clean_dir.mkdir(parents=True)
    cmd = [sys.executable, "-m", "stages.clean", "--output", "data/clean/notes.parquet"]
    cmd += ["--report", "data/clean/report.json"]
    stage = subprocess.Popen(cmd, cwd=project_copy, env=env(), stderr=subprocess.DEVNULL)
    _wait_for(lambda: any(clean_dir.glob(".clean-*/*.parquet")), stage)
    stage.send_signal(signal.SIGKILL)
    stage.wait()
    # a half-written report, as a writer killed inside atomic_path leaves it
    killed_writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom bertpipe.files import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('{')\n    time.sleep(600)\n",
            str(clean_dir / "report.json"),
        ],
        env=env(),
    )
    _wait_for(lambda: any(clean_dir.glob(".report.json.tmp-*/report.json")), killed_writer)
    killed_writer.send_signal(signal.SIGKILL)
    killed_writer.wait()

    assert list(clean_dir.glob(".clean-*")), "the kill should leave the scratch folder"
    assert list(clean_dir.glob(".report.json.tmp-*"))
    assert not (clean_dir / "notes.parquet").exists()

    result = run_stage(project_copy, "clean")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in clean_dir.iterdir()) == ["notes.parquet", "report.json"]
    assert clean_report(project_copy)["rows_out"] == rows
