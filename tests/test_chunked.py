"""Data larger than memory: clean, split and tokenize in chunks give what the whole table gives."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import clean_frame, split_frame
from pipeline_helpers import run_stage, set_params

from bertpipe.clean import clean_chunks, used_columns
from bertpipe.errors import UserError
from bertpipe.params import CleanParams, DataParams, SplitParams
from bertpipe.split import SPLIT_NAMES, split_parquet
from bertpipe.tables import TableChunks, read_table

LABELS = ["cardiology", "neurology", "pulmonology"]


def awkward_notes(rows: int = 90) -> pd.DataFrame:
    """Rows whose fate depends on other chunks: duplicates and conflicts far apart, plus empty
    texts, missing labels, and a carried column that is empty for a whole chunk."""
    records = []
    for index in range(rows):
        label = LABELS[index % 3]
        text = f"note {index} about {label} and the usual findings"
        records.append(
            {
                "note_id": str(index) if index >= 12 else None,  # empty in the first chunks
                "patient_id": f"P{index // 3:03d}",
                "text": text,
                "label": label,
            }
        )
    records[40].update(text=records[2]["text"], label=records[2]["label"])  # row 2, 38 rows on
    records[71]["text"] = records[5]["text"]  # the same text as row 5 ...
    records[71]["label"] = "neurology"  # ... with another label: both rows conflict
    records[33]["text"] = "   "  # empty after normalising
    records[50]["label"] = None  # missing label
    records[60]["text"] = "  NOTE 60 ABOUT\tcardiology  "  # normalises differently: kept
    return pd.DataFrame.from_records(records)


def cleaned_both_ways(
    tmp_path: Path, chunk_rows: int
) -> tuple[pd.DataFrame, dict, pd.DataFrame, dict]:
    path = tmp_path / "notes.csv"
    awkward_notes().to_csv(path, index=False)
    data = DataParams(path=str(path), carry_columns=["note_id", "patient_id"])
    whole = clean_frame(read_table(path).frame, data, CleanParams(), "multiclass")
    output = tmp_path / "clean" / "notes.parquet"
    report = clean_chunks(
        TableChunks(path, chunk_rows=chunk_rows), output, data, CleanParams(), "multiclass"
    )
    assert pq.ParquetFile(output).num_row_groups > 1
    # the whole table as the clean stage wrote it before it streamed: one to_parquet call
    whole.frame.to_parquet(tmp_path / "whole.parquet", index=False)
    return (
        pd.read_parquet(tmp_path / "whole.parquet"),
        whole.report,
        pd.read_parquet(output),
        report,
    )


@pytest.mark.parametrize("chunk_rows", [1, 7, 25])
def test_clean_in_chunks_equals_clean_whole(tmp_path: Path, chunk_rows: int) -> None:
    whole, whole_report, chunked, report = cleaned_both_ways(tmp_path, chunk_rows)
    assert report == whole_report
    assert report["dropped"] == {
        "empty_text": 1,
        "too_short": 0,
        "missing_label": 1,
        "duplicate": 1,
        "conflicting_duplicate": 2,
    }
    pd.testing.assert_frame_equal(chunked, whole)
    # rows 0-11 have no note_id (row 5 conflicts): all-null chunks took the column's type
    assert chunked["note_id"].isna().sum() == 11


@pytest.mark.parametrize("group_column", [None, "patient_id"])
def test_split_in_chunks_equals_split_whole(tmp_path: Path, group_column: str | None) -> None:
    _, _, cleaned, _ = cleaned_both_ways(tmp_path, chunk_rows=10)
    source = tmp_path / "clean" / "notes.parquet"
    params = SplitParams(group_column=group_column)
    whole = split_frame(cleaned, params, "multiclass", seed=3)
    out = tmp_path / "split"
    out.mkdir()
    assignment, sizes = split_parquet(source, out, params, "multiclass", 3, chunk_rows=6)
    assert assignment.warnings == whole.warnings
    for name in SPLIT_NAMES:
        streamed = pd.read_parquet(out / f"{name}.parquet")
        pd.testing.assert_frame_equal(streamed, whole.frames[name])
        assert sizes[name] == len(streamed) > 0
    rows = sum(sizes.values())
    assert rows == len(cleaned)
    all_ids = np.concatenate([pd.read_parquet(out / f"{n}.parquet")["row_id"] for n in SPLIT_NAMES])
    assert sorted(all_ids.tolist()) == list(range(rows))


def test_a_bad_row_in_a_later_chunk_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    lines = ["text,label"] + [f"note {i},a" for i in range(30)] + ["a,b,c"] + ["note x,b"]
    path.write_text("\n".join(lines) + "\n")
    output = tmp_path / "data" / "clean" / "notes.parquet"
    with pytest.raises(UserError, match="malformed row"):
        clean_chunks(
            TableChunks(path, chunk_rows=4),
            output,
            DataParams(path=str(path)),
            CleanParams(),
            "multiclass",
        )
    assert not (tmp_path / "data").exists()


@pytest.mark.slow  # runs the clean, split and tokenize stage scripts, twice
def test_chunked_stages_write_what_unchunked_stages_write(
    project_copy: Path, tiny_bert: Path
) -> None:
    """The real clean, split and tokenize stages on the bundled sample (1,600 notes), once with
    the default chunk (the whole table) and once with 37-row chunks."""

    def run(stage: str) -> None:
        result = run_stage(project_copy, stage)
        assert result.returncode == 0, result.stderr

    def outputs() -> dict[str, object]:
        found: dict[str, object] = {
            "report": (project_copy / "data/clean/report.json").read_text(),
            "clean": pd.read_parquet(project_copy / "data/clean/notes.parquet"),
        }
        for name in SPLIT_NAMES:
            found[f"split/{name}"] = pd.read_parquet(project_copy / f"data/split/{name}.parquet")
        for path in sorted((project_copy / "data/tokens").rglob("*")):
            if path.is_file():
                found[str(path.relative_to(project_copy))] = path.read_bytes()
        return found

    set_params(project_copy, model=str(tiny_bert), max_length=32)
    for stage in ("clean", "split", "tokenize"):
        run(stage)
    whole = outputs()
    assert pq.ParquetFile(project_copy / "data/clean/notes.parquet").num_row_groups == 1

    set_params(project_copy, **{"data.chunk_rows": 37})
    for stage in ("clean", "split", "tokenize"):
        run(stage)
    chunked = outputs()
    assert pq.ParquetFile(project_copy / "data/clean/notes.parquet").num_row_groups > 30

    assert chunked.keys() == whole.keys()
    assert "data/tokens/train/input_ids.npy" in chunked
    for key, value in whole.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(chunked[key], value)
        else:
            assert chunked[key] == value, key


def typed_notes(rows: int = 40) -> list[dict[str, object]]:
    """Integer labels with missing ones, a carried column mixing numbers and text, and a carried
    integer column with gaps: what once came out typed by chunk."""
    records: list[dict[str, object]] = []
    for index in range(rows):
        records.append(
            {
                "text": f"note {index} with findings of class {index % 2}",
                "label": index % 2 if index % 9 != 4 else None,
                "visit": index if index % 5 else None,
                "ward": f"W{index}" if index % 3 else index,
            }
        )
    return records


def write_table(folder: Path, name: str, records: list[dict[str, object]]) -> Path:
    path = folder / name
    frame = pd.DataFrame.from_records(records)
    frame["label"] = frame["label"].astype("Int64")
    frame["visit"] = frame["visit"].astype("Int64")
    if name.startswith("notes.parquet"):
        # Parquet holds one type a column: the mixed column is text there
        frame["ward"] = frame["ward"].astype(str)
        frame.to_parquet(path, index=False)
    elif ".jsonl" in name:
        lines = "".join(json.dumps(record) + "\n" for record in records)
        path.write_bytes(gzip.compress(lines.encode()) if name.endswith(".gz") else lines.encode())
    else:
        frame.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    return path


@pytest.mark.parametrize(
    "name",
    [
        "notes.csv",
        "notes.csv.gz",
        "notes.tsv",
        "notes.tsv.gz",
        "notes.jsonl",
        "notes.jsonl.gz",
        "notes.parquet",
    ],
)
def test_every_reader_gives_the_same_clean_table_for_any_chunk_size(
    tmp_path: Path, name: str
) -> None:
    path = write_table(tmp_path, name, typed_notes())
    data = DataParams(path=str(path), carry_columns=["visit", "ward"])
    columns = used_columns(data)
    results = []
    for chunk_rows in (None, 1, 7):
        output = tmp_path / f"clean-{chunk_rows}" / "notes.parquet"
        chunks = TableChunks(path, chunk_rows=chunk_rows, columns=columns)
        report = clean_chunks(chunks, output, data, CleanParams(), "multiclass")
        results.append((report, pd.read_parquet(output), chunks.warnings))
    first_report, first_frame, first_warnings = results[0]
    for report, frame, warnings in results[1:]:
        assert report == first_report
        pd.testing.assert_frame_equal(frame, first_frame)
        assert warnings == first_warnings
    # integer labels with gaps are still the two classes 0 and 1, never 0.0 or 1.0
    assert sorted(first_frame["label"].unique()) == ["0", "1"]
    assert first_report["dropped"]["missing_label"] == 4
    if name.startswith("notes.jsonl"):
        # JSON keeps types: integers with gaps stay integers; the mixed column is text, and said
        assert first_frame["visit"].dropna().tolist()[:2] == [1, 2]
        assert first_frame["ward"].tolist()[:2] == ["0", "W1"]
        assert first_warnings == [
            f"{path}: column(s) 'ward' hold lists, objects or mixed value "
            "types (numbers and text...); they are read as text"
        ]


@pytest.mark.parametrize("name", ["notes.csv", "notes.jsonl", "notes.parquet"])
def test_table_chunks_can_be_iterated_again(tmp_path: Path, name: str) -> None:
    path = write_table(tmp_path, name, typed_notes())
    chunks = TableChunks(path, chunk_rows=6, columns=used_columns(DataParams(path=str(path))))
    first = pd.concat(list(chunks))
    assert chunks.rows == 40
    second = pd.concat(list(chunks))
    assert chunks.rows == 40
    pd.testing.assert_frame_equal(second, first)
