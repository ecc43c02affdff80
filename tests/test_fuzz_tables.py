"""Property tests on the table reader and the clean step behind it: every input, however broken,
gives a table or one UserError, never another exception.

The example counts come from the Hypothesis profile (tests/conftest.py): `fast` by default,
`fuzz` with HYPOTHESIS_PROFILE=fuzz.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from bertpipe.clean import clean_chunks, used_columns
from bertpipe.errors import UserError
from bertpipe.params import CleanParams, DataParams
from bertpipe.tables import TableChunks

EXTENSIONS = [".csv", ".tsv", ".jsonl", ".parquet", ".csv.gz", ".tsv.gz", ".jsonl.gz"]
# names and cells drawn from what breaks readers: the used names, blanks, delimiters, quotes,
# line ends, a byte-order mark, NUL, non-ASCII
NAMES = st.sampled_from(["text", "label", "note_id", "", " ", " label", "text ", "a,b", '"q"'])
CELL_CHARACTERS = st.sampled_from(list('ab01.5 ,;\t"\r\n\ufeff\x00\u00e9|[]{}:'))
CELLS = st.text(CELL_CHARACTERS, max_size=8)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(CELL_CHARACTERS, max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=6,
)
CHUNK_ROWS = st.sampled_from([None, 1, 3])


def read_and_clean(path: Path, chunk_rows: int | None, on_bad_lines: str, task: str) -> None:
    """Read the file as the clean stage does, then clean it; a UserError is a fine outcome."""
    data = DataParams(path=str(path), carry_columns=["note_id"], on_bad_lines=on_bad_lines)
    chunks = TableChunks(path, "utf-8", on_bad_lines, chunk_rows, used_columns(data))
    frames = list(chunks)
    assert all(isinstance(frame, pd.DataFrame) for frame in frames)
    clean_chunks(frames, path.parent / "clean" / "notes.parquet", data, CleanParams(), task)


def outcome(data: bytes, name: str, chunk_rows: int | None, on_bad_lines: str, task: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        try:
            read_and_clean(path, chunk_rows, on_bad_lines, task)
        except UserError as exc:
            assert str(exc).strip(), "a UserError says something"
            return "refused"
        return "read"


TASKS = st.sampled_from(["binary", "multiclass", "multilabel", "regression"])
BAD_LINES = st.sampled_from(["error", "skip", "warn"])


@given(st.binary(max_size=300), st.sampled_from(EXTENSIONS), CHUNK_ROWS, BAD_LINES, TASKS)
def test_random_bytes(
    data: bytes, extension: str, chunk_rows: int | None, on_bad_lines: str, task: str
) -> None:
    outcome(data, f"notes{extension}", chunk_rows, on_bad_lines, task)


@st.composite
def delimited_files(draw: st.DrawFn) -> tuple[bytes, str]:
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    extension = draw(st.sampled_from([".csv", ".tsv", ".csv.gz"]))
    header = draw(st.lists(NAMES, min_size=1, max_size=5))
    width = len(header)
    rows = draw(
        st.lists(st.lists(CELLS, min_size=max(width - 1, 0), max_size=width + 1), max_size=8)
    )
    quote = draw(st.booleans())

    def line(cells: list[str]) -> str:
        if quote:
            cells = ['"' + cell.replace('"', '""') + '"' for cell in cells]
        return delimiter.join(cells)

    ending = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    text = bom + ending.join(line(cells) for cells in [header, *rows]) + ending
    return text.encode(), extension


@given(delimited_files(), CHUNK_ROWS, BAD_LINES, TASKS)
def test_random_delimited_tables(
    file: tuple[bytes, str], chunk_rows: int | None, on_bad_lines: str, task: str
) -> None:
    data, extension = file
    outcome(data, f"notes{extension}", chunk_rows, on_bad_lines, task)


@st.composite
def json_lines_files(draw: st.DrawFn) -> tuple[bytes, str]:
    records = draw(st.lists(st.dictionaries(NAMES, JSON_VALUES, max_size=4), max_size=8))
    lines = [json.dumps(record) for record in records]
    if lines and draw(st.booleans()):  # one broken or non-object line somewhere
        broken = draw(st.sampled_from(['{"text": ', "[1, 2]", "null", "", "{'text': 1}"]))
        lines.insert(draw(st.integers(0, len(lines))), broken)
    extension = draw(st.sampled_from([".jsonl", ".jsonl.gz"]))
    return ("\n".join(lines) + "\n").encode(), extension


@given(json_lines_files(), CHUNK_ROWS, TASKS)
def test_random_json_lines_tables(
    file: tuple[bytes, str], chunk_rows: int | None, task: str
) -> None:
    data, extension = file
    outcome(data, f"notes{extension}", chunk_rows, "error", task)


@given(json_lines_files())
def test_json_lines_tables_read_the_same_in_any_chunk_size(file: tuple[bytes, str]) -> None:
    data, extension = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"notes{extension}"
        path.write_bytes(gzip.compress(data) if extension.endswith(".gz") else data)
        frames = []
        for chunk_rows in (None, 1, 3):
            try:
                chunks = list(TableChunks(path, chunk_rows=chunk_rows))
            except UserError as exc:
                frames.append(str(exc))
                continue
            frames.append(pd.concat(chunks).to_dict("list"))
        assert frames[1] == frames[0]
        assert frames[2] == frames[0]


def test_found_by_fuzzing_an_empty_object_in_a_carried_column_is_read_as_text() -> None:
    # Arrow made an empty struct of it, which Parquet cannot write: a traceback in clean
    data = b'{"text": "a note", "label": "x", "note_id": {}}\n{"text": "b", "label": "y"}\n'
    assert outcome(data, "notes.jsonl", None, "error", "multiclass") == "read"
