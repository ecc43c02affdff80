"""read_table (CSV, TSV, JSONL, Parquet) and its user errors (bertpipe.tables); atomic writes
(bertpipe.files)."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import keyword_notes
from helpers import clean_frame
from pipeline_helpers import dvc, init_repo, set_params

from bertpipe.errors import UserError
from bertpipe.files import atomic_path, read_json, sha256_file, write_json
from bertpipe.params import CleanParams, DataParams
from bertpipe.tables import (
    SUPPORTED_EXTENSIONS,
    TableChunks,
    UsedColumns,
    read_table,
    table_format,
)

ROWS = [("chest pain on exertion", "cardiology"), ("cough and wheeze", "pulmonology")]


def write_bytes(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def write_text(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes(folder, name, text.encode(encoding))


def read_error(path: Path, **options: object) -> str:
    with pytest.raises(UserError) as caught:
        read_table(path, **options)
    return str(caught.value)


def sibling_names(path: Path) -> list[str]:
    return sorted(child.name for child in path.parent.iterdir())


# --- reading each format -------------------------------------------------------------------------


def test_reads_csv_as_strings_keeping_na_like_words(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.csv", "text,label\nNA,1\nnull,2\n,3\n007,4\n")
    result = read_table(path)
    assert result.bad_lines == 0
    assert list(result.frame.columns) == ["text", "label"]
    # words pandas would read as missing stay text; only an empty cell is missing
    assert result.frame["text"].tolist()[:2] == ["NA", "null"]
    assert pd.isna(result.frame["text"].iloc[2])
    # everything is a string: no leading zero lost, no int labels
    assert result.frame["text"].iloc[3] == "007"
    assert result.frame["label"].tolist() == ["1", "2", "3", "4"]


def test_reads_quoted_delimiters_and_newlines_in_csv(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.csv", 'text,label\n"pain, left arm",a\n"two\nlines",b\n')
    frame = read_table(path).frame
    assert frame["text"].tolist() == ["pain, left arm", "two\nlines"]


@pytest.mark.parametrize("name", ["notes.tsv", "notes.tab", "NOTES.TSV"])
def test_reads_tsv_by_extension(tmp_path: Path, name: str) -> None:
    path = write_text(tmp_path, name, "text\tlabel\npain, left arm\ta\ncough\tb\n")
    frame = read_table(path).frame
    assert frame.to_dict("list") == {"text": ["pain, left arm", "cough"], "label": ["a", "b"]}


@pytest.mark.parametrize("name", ["notes.jsonl", "notes.ndjson"])
def test_reads_jsonl(tmp_path: Path, name: str) -> None:
    lines = [json.dumps({"text": text, "label": label}) for text, label in ROWS]
    path = write_text(tmp_path, name, "\n".join(lines) + "\n")
    frame = read_table(path).frame
    assert list(zip(frame["text"], frame["label"], strict=True)) == ROWS


@pytest.mark.parametrize("name", ["notes.parquet", "notes.pq"])
def test_reads_parquet(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    pd.DataFrame(ROWS, columns=["text", "label"]).to_parquet(path, index=False)
    frame = read_table(path).frame
    assert list(zip(frame["text"], frame["label"], strict=True)) == ROWS


def test_table_format_maps_every_supported_extension() -> None:
    assert {table_format(Path(f"x{ext}")) for ext in SUPPORTED_EXTENSIONS} == {
        "csv",
        "tsv",
        "jsonl",
        "parquet",
    }
    assert table_format(Path("x.CSV")) == "csv"


# --- user errors ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    message = read_error(tmp_path / "absent.csv")
    assert "absent.csv" in message
    assert "not found" in message
    assert "data.path" in message


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "data.csv").mkdir()
    assert "is a folder" in read_error(tmp_path / "data.csv")


def test_empty_file(tmp_path: Path) -> None:
    message = read_error(write_bytes(tmp_path, "empty.csv", b""))
    assert "empty.csv" in message
    assert "empty" in message


def test_blank_line_only_file(tmp_path: Path) -> None:
    assert "no header and no rows" in read_error(write_text(tmp_path, "blank.csv", "\n"))
    assert "no header and no rows" in read_error(write_text(tmp_path, "blanks.csv", "\n \n\n"))
    empty_gzip = tmp_path / "empty.csv.gz"
    empty_gzip.write_bytes(gzip.compress(b""))  # a gzip file that holds nothing
    assert "no header and no rows" in read_error(empty_gzip)
    # lines of spaces before the header are skipped, as pandas skips them
    spaced = write_text(tmp_path, "spaced.csv", "   \ntext,label\nchest pain,cardio\n")
    assert list(read_table(spaced).frame.columns) == ["text", "label"]


@pytest.mark.parametrize(
    ("name", "header"), [("h.csv", "text,label\n"), ("h.tsv", "text\tlabel\n")]
)
def test_header_only(tmp_path: Path, name: str, header: str) -> None:
    assert "header but no rows" in read_error(write_text(tmp_path, name, header))


@pytest.mark.parametrize("name", ["notes.xlsx", "notes.txt", "notes"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    message = read_error(write_text(tmp_path, name, "text,label\na,b\n"))
    assert "unsupported file type" in message
    suffix = Path(name).suffix or "(none)"
    assert f"'{suffix}'" in message
    assert ".csv" in message and ".parquet" in message  # lists what would work


def test_zip_file_named_csv_is_recognised(tmp_path: Path) -> None:
    archive = tmp_path / "export.csv"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("xl/workbook.xml", "<workbook/>")
    message = read_error(archive)
    assert "zip archive" in message
    assert "xlsx" in message
    assert "export it as CSV" in message


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "old Office"),
        (b"%PDF-1.7\n", "PDF"),
        (b"\x1f\x8b\x08", "gzip"),
    ],
)
def test_other_binary_files_are_named(tmp_path: Path, head: bytes, what: str) -> None:
    message = read_error(write_bytes(tmp_path, "data.csv", head + bytes(64)))
    assert what in message


def test_random_bytes(tmp_path: Path) -> None:
    noise = bytes((index * 151 + 89) % 256 for index in range(4096))
    path = write_bytes(tmp_path, "noise.csv", noise)
    message = read_error(path)
    assert "noise.csv" in message
    assert "not valid utf-8 text" in message


def test_random_bytes_as_parquet(tmp_path: Path) -> None:
    message = read_error(write_bytes(tmp_path, "noise.parquet", bytes(range(256)) * 4))
    assert "not a readable Parquet file" in message


def test_invalid_json_line(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.jsonl", '{"text": "a", "label": "b"}\nnot json at all\n')
    assert "line 2 is not valid JSON" in read_error(path)


def test_unknown_encoding_names_the_key(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.csv", "text,label\na,b\n")
    message = read_error(path, encoding="no-such-codec")
    assert "data.encoding" in message
    assert "no-such-codec" in message


def test_semicolon_file_is_named_by_its_delimiter(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.csv", "text;label\nchest pain;cardiology\ncough;pulm\n")
    message = read_error(path)
    assert "the header is ';'-separated" in message
    assert "save it comma-separated" in message


def test_one_column_frame_then_clean_lists_the_one_column() -> None:
    frame = pd.DataFrame({"text;label": ["chest pain;cardiology", "cough;pulm"]})
    with pytest.raises(UserError) as caught:
        clean_frame(frame, DataParams(), CleanParams(), "multiclass", source="notes.csv")
    message = str(caught.value)
    assert "missing column(s) 'text', 'label'" in message
    assert "the file has: 'text;label'" in message
    assert "';'" in message  # the hint about another delimiter


BAD_COMMAS = "text,label\nchest pain,cardiology\npain, left arm,cardiology\ncough,pulm\nx,y,z,w\n"


def test_unquoted_commas_error_by_default(tmp_path: Path) -> None:
    message = read_error(write_text(tmp_path, "notes.csv", BAD_COMMAS))
    assert "malformed row" in message
    assert "line 3" in message
    assert "data.on_bad_lines" in message


@pytest.mark.parametrize("mode", ["skip", "warn"])
def test_unquoted_commas_skip_and_warn_count_bad_lines(tmp_path: Path, mode: str) -> None:
    result = read_table(write_text(tmp_path, "notes.csv", BAD_COMMAS), on_bad_lines=mode)
    assert result.bad_lines == 2
    assert result.frame["text"].tolist() == ["chest pain", "cough"]


# A double quote that opens a field and is never closed: the reader takes every line up to the
# next quote as part of that field, and the rows between vanish into one text.
# (file, row, column, lines taken): a quote that opens a field and is never meant to close
JOINED_ROWS = {
    "text first": (
        'text,label\n"he said hi,onc\nnormal scan,normal\nfollow-up,normal\n'
        'end" here,onc\nlast,normal\n',
        1,
        "text",
        3,
    ),
    "text between an id and the label": (
        'id,text,label\n1,ok,normal\n2,"he said hi,onc\n'
        '3,normal scan,normal\n4,"closing" here,onc\n',
        2,
        "text",
        2,
    ),
    "text last": (
        'label,text\nonc,"he said hi\nnormal,normal scan\nnormal,follow-up\n'
        'onc,end" here\nnormal,last\n',
        1,
        "text",
        3,
    ),
    "one row joined": ('text,label\nfine,normal\n"he said hi,onc\nend" here,onc\n', 2, "text", 1),
    "windows line ends": (
        'text,label\r\n"he said hi,onc\r\nnormal scan,normal\r\n'
        'follow-up,normal\r\nend" here,onc\r\nlast,normal\r\n',
        1,
        "text",
        3,
    ),
    "old Mac line ends": (
        'id,text,label\r1,"Great product,pos\r2,bad,neg\r3,"fine",pos\r',
        1,
        "text",
        2,
    ),
    "in a carried column": (
        'text,note,label\nfine,"x,onc\nfine,y,normal\nfine,z,normal\nfine,"w,onc\nfine,v,normal\n',
        1,
        "note",
        3,
    ),
    "binary labels": ('id,text,label\n1,ok,0\n2,"paid $1,500\n3,fine,0\n4,"x" y,1\n', 2, "text", 2),
    "regression labels": ('text,label\n"temp 37,5\nnormal,2.5\nend" of it,4.0\n', 1, "text", 2),
    "closed by a quote inside a text": (
        'text,label\n"he said hi,onc\nshe said "no",normal\n',
        1,
        "text",
        1,
    ),
}


@pytest.mark.parametrize("on_bad_lines", ["error", "skip"])
@pytest.mark.parametrize("case", list(JOINED_ROWS))
def test_rows_joined_by_an_unclosed_quote_are_refused(
    tmp_path: Path, case: str, on_bad_lines: str
) -> None:
    text, row, column, taken = JOINED_ROWS[case]
    path = write_bytes(tmp_path, "notes.csv", text.encode())
    used = UsedColumns(("text",), "label", {"note": "data.carry_columns"} if "note" in text else {})
    with pytest.raises(UserError) as caught:
        list(TableChunks(path, on_bad_lines=on_bad_lines, columns=used))  # type: ignore[arg-type]
    assert str(caught.value).startswith(
        f"{path}: row {row}: column '{column}' opens a quote never closed: the "
        f"{taken} line(s) after it, up to "
    )
    assert str(caught.value).endswith("remove the quote, or double it")


@pytest.mark.parametrize("chunk_rows", [None, 1, 100])
def test_a_stray_quote_is_found_wherever_it_is_and_however_the_file_is_read(
    tmp_path: Path, chunk_rows: int | None
) -> None:
    # no label, no column that repeats: the quote itself, as written, is the evidence
    rows = [f"{i},note {i}" for i in range(300)]
    rows[250] = '250,"note 250'
    rows[100] = "   "  # a line of spaces, which pandas skips: no row
    rows[253] = '253,"quoted" note'
    path = write_text(tmp_path, "notes.csv", "id,text\n" + "\n".join(rows))
    with pytest.raises(UserError) as caught:
        list(TableChunks(path, chunk_rows=chunk_rows, columns=UsedColumns(("text",), None)))
    message = str(caught.value)
    assert message.startswith(f"{path}: row 250: column 'text' opens a quote never closed")
    assert "the 3 line(s) after it, up to '253,\"quoted\" note'" in message


@pytest.mark.parametrize("labels", [["normal", "onc"], ["0", "1"], ["2.5", "400000"]])
@pytest.mark.parametrize("chunk_rows", [None, 1])
def test_texts_of_several_lines_are_read_whatever_their_lines_hold(
    tmp_path: Path, labels: list[str], chunk_rows: int | None
) -> None:
    notes = [
        "Assessment:\nHTN, normal\nPlan: follow up, 2 weeks",  # commas, and a label after one
        "Meds:\n1, aspirin\n2, metoprolol",  # numbered lines
        'He said "no"\nthen left',
        "cardiology\nseen today",  # a line that is a label, alone
        "a\n\nb",
        "Invoice disputed. Paid $1,500\nCustomer wants refund",  # a line ending in ,number
        "Temp 37,5\nBP 120/80",
        f"1,pasted row,{labels[0]}\n2,another,{labels[1]}",  # lines that are whole rows
        '"quoted" first line\nsecond',
    ]
    path = tmp_path / "notes.csv"
    frame = pd.DataFrame(
        {"id": range(len(notes)), "text": notes, "label": (labels * len(notes))[: len(notes)]}
    )
    frame.to_csv(path, index=False)
    chunks = TableChunks(path, chunk_rows=chunk_rows, columns=UsedColumns(("text",), "label"))
    read = pd.concat(list(chunks))
    assert read["text"].tolist() == notes
    assert read["label"].tolist() == frame["label"].tolist()
    assert chunks.warnings == []  # no line of them reads as a row with a label of the file


@pytest.mark.parametrize("labels", [["pos", "neg"], ["0", "1"]])
@pytest.mark.parametrize("chunk_rows", [None, 1, 2])
def test_rows_a_stray_quote_joined_up_to_an_inch_mark_are_warned_about(
    tmp_path: Path, labels: list[str], chunk_rows: int | None
) -> None:
    # the stray quote's text ends at the inch mark, at a delimiter, as a writer's text would: no
    # mark of a join in how the quote is written, but every line of it reads as a row
    pos, neg = labels
    text = (
        f'id,text,label\n1,chest pain,{pos}\n2,"Stat order,{pos}\n3,The 55",{neg}\n'
        f'4,fine,{neg}\n5,"two\nlines",{pos}\n6,"Paid $1,500\nRefund, asap",{neg}\n'
    )
    path = write_text(tmp_path, "notes.csv", text)
    chunks = TableChunks(path, chunk_rows=chunk_rows, columns=UsedColumns(("text",), "label"))
    read = pd.concat(list(chunks))
    assert read["text"].tolist()[1] == f"Stat order,{pos}\n3,The 55"  # read as pandas reads it
    (warning,) = chunks.warnings
    assert warning == (
        f"{path}: row 2: a quoted text of 2 lines, each of which reads as a row of this file "
        f"with a label ('{pos}', '{neg}'); if a quote in it is a character (an inch mark: 55\"), "
        "those rows were joined into one: double that quote, or remove it"
    )


def test_a_quote_inside_a_text_of_one_line_is_not_a_join(tmp_path: Path) -> None:
    # sloppy but whole: a quoted word at the start of a one-line text is read as pandas reads it,
    # beside a well-formed text of several lines
    text = 'text,label\n"Stat" order,a\n"two\nlines",b\n"and\nspaces" ,c\n'
    path = write_text(tmp_path, "notes.csv", text)
    assert read_table(path).frame["text"].tolist() == ["Stat order", "two\nlines", "and\nspaces "]


@pytest.mark.parametrize("mode", ["error", "skip", "warn"])
def test_a_text_that_opens_with_a_quoted_word_is_kept_in_every_mode(
    tmp_path: Path, mode: str
) -> None:
    # skip and warn once read with pandas' python engine, which dropped this row uncounted
    path = write_text(tmp_path, "notes.csv", 'text,label\n"Quoted" then more,a\nb,c,d\nplain,b\n')
    if mode == "error":
        assert "malformed row" in read_error(path)
        return
    result = read_table(path, on_bad_lines=mode)  # type: ignore[arg-type]
    assert result.frame["text"].tolist() == ["Quoted then more", "plain"]
    assert result.bad_lines == 1


def test_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.csv", "\ufefftext,label\na,b\n")
    for mode in ("error", "skip"):
        frame = read_table(path, on_bad_lines=mode).frame
        assert list(frame.columns) == ["text", "label"]
    # and the cleaner finds the first column by its plain name
    tsv = write_text(tmp_path, "notes.tsv", "\ufefftext\tlabel\na\tx\nb\ty\n")
    cleaned = clean_frame(read_table(tsv).frame, DataParams(), CleanParams(), "multiclass")
    assert cleaned.frame["text"].tolist() == ["a", "b"]


LATIN1 = "text,label\ncaf\u00e9 au lait spots,derm\nna\u00efve T cells,onc\n"


def test_latin1_bytes_read_as_utf8_name_the_encoding_key(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.csv", LATIN1, encoding="latin-1")
    message = read_error(path)
    assert "not valid utf-8 text" in message
    assert "0xe9" in message  # the offending byte, é in latin-1
    assert "data.encoding" in message


def test_latin1_bytes_read_with_latin1(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.csv", LATIN1, encoding="latin-1")
    frame = read_table(path, encoding="latin-1").frame
    assert frame["text"].tolist() == ["caf\u00e9 au lait spots", "na\u00efve T cells"]


def test_a_windows_file_read_as_latin1_is_warned_about(tmp_path: Path) -> None:
    # cp1252's curly quotes and euro sign are control characters in latin-1: cleaning would
    # take them out without a word
    path = write_text(tmp_path, "notes.csv", "text,label\n\u201chello\u201d \u20ac5,a\n", "cp1252")
    chunks = TableChunks(path, "latin-1")
    (frame,) = list(chunks)
    assert frame["text"][0] == "\x93hello\x94 \x805"
    (warning,) = chunks.warnings
    assert "read as latin-1, its bytes 0x80-0x9F are invisible control characters" in warning
    assert warning.endswith("set data.encoding in params.yaml to the file's encoding, e.g. cp1252")
    # plain latin-1 text, or the file read as cp1252: no warning
    latin = TableChunks(write_text(tmp_path, "latin.csv", LATIN1, encoding="latin-1"), "latin-1")
    assert len(list(latin)) == 1 and not latin.warnings
    windows = TableChunks(path, "cp1252")
    (frame,) = list(windows)
    assert frame["text"][0] == "\u201chello\u201d \u20ac5" and not windows.warnings


def test_latin1_jsonl_read_as_utf8_names_the_encoding_key(tmp_path: Path) -> None:
    line = json.dumps({"text": "caf\u00e9", "label": "a"}, ensure_ascii=False) + "\n"
    path = write_text(tmp_path, "notes.jsonl", line, encoding="latin-1")
    assert "data.encoding" in read_error(path)


def test_encoding_error_offset_is_the_file_offset(tmp_path: Path) -> None:
    body = "text,label\n" + "hello world,a\n" * 1000
    path = write_bytes(tmp_path, "notes.csv", (body + "caf\u00e9,b\n").encode("latin-1"))
    offset = len(body) + len("caf")
    message = read_error(path, on_bad_lines="skip")
    assert f"line 1002, offset {offset})" in message


USED = UsedColumns(("text",), "label")


def test_duplicate_first_column_behind_a_byte_order_mark(tmp_path: Path) -> None:
    path = write_text(tmp_path, "d.csv", "\ufefftext,label,text\na,b,c\n")
    assert "duplicate column names ['text']; rename them" in read_error(path)
    message = read_error(path, columns=USED)
    assert "duplicate column names ['text']: the column 'text' named by data.text_column" in message
    assert "appears 2 times" in message


@pytest.mark.parametrize(
    ("name", "header"), [("d.csv", "text,label,text\n"), ("d.tsv", "text\tlabel\ttext\n")]
)
def test_duplicate_column_names(tmp_path: Path, name: str, header: str) -> None:
    row = "a,b,c\n" if name.endswith(".csv") else "a\tb\tc\n"
    path = write_text(tmp_path, name, header + row)
    # without params every column is kept, so any repeated name is a clash
    assert "duplicate column names ['text']" in read_error(path)
    assert "'text' named by data.text_column appears 2 times" in read_error(path, columns=USED)


# --- tables as people export them ------------------------------------------------------------


def test_unused_blank_named_columns_are_ignored_with_one_warning(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.csv", "label,text,,,\r\na,one,,,\r\nb,two,,x,\r\n")
    chunks = TableChunks(path, columns=USED)
    frame = pd.concat(list(chunks))
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].tolist() == ["one", "two"]
    assert chunks.warnings == [
        f"{path}: ignoring unused columns with blank or repeated names (column 3, 4, 5)"
    ]


def test_unused_repeated_columns_are_ignored_and_named(tmp_path: Path) -> None:
    path = write_text(tmp_path, "notes.tsv", "text\tlabel\tnote\tnote\na\tb\t1\t2\n")
    chunks = TableChunks(path, columns=USED)
    assert pd.concat(list(chunks))["label"].tolist() == ["b"]
    assert "column 3 ('note'), 4 ('note')" in chunks.warnings[0]


def test_parquet_with_repeated_column_names(tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    arrays = [pa.array(["a", "b"]), pa.array(["x", "y"]), pa.array([1, 2]), pa.array([3, 4])]
    pq.write_table(pa.Table.from_arrays(arrays, names=["text", "label", "n", "n"]), path)
    chunks = TableChunks(path, chunk_rows=1, columns=USED)
    assert pd.concat(list(chunks))["text"].tolist() == ["a", "b"]
    assert "column 3 ('n'), 4 ('n')" in chunks.warnings[0]
    pq.write_table(pa.Table.from_arrays(arrays, names=["text", "label", "label", "n"]), path)
    assert "'label' named by data.label_column appears 2 times" in read_error(path, columns=USED)


@pytest.mark.parametrize("name", ["notes.csv.gz", "notes.tsv.gz", "notes.jsonl.gz"])
def test_gzipped_tables_by_extension(tmp_path: Path, name: str) -> None:
    if ".jsonl" in name:
        text = "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in ROWS)
    else:
        delimiter = "\t" if ".tsv" in name else ","
        text = "".join(f"{t}{delimiter}{lab}\r\n" for t, lab in [("text", "label"), *ROWS])
    path = write_bytes(tmp_path, name, gzip.compress(("\ufeff" + text).encode()))
    frame = read_table(path, columns=USED).frame
    assert frame[["text", "label"]].to_numpy().tolist() == [list(row) for row in ROWS]


def test_not_gzip_named_gz(tmp_path: Path) -> None:
    assert "not a gzip file" in read_error(write_text(tmp_path, "notes.csv.gz", "text,label\n"))
    broken = write_bytes(tmp_path, "broken.csv.gz", gzip.compress(b"text,label\na,b\n" * 99)[:40])
    assert "not a readable gzip file" in read_error(broken)


def test_header_with_spaces_suggests_the_stripped_name(tmp_path: Path) -> None:
    message = read_error(write_text(tmp_path, "notes.csv", "text, label\na,b\n"), columns=USED)
    assert "missing column(s) 'label'; the file has: 'text', ' label'" in message
    assert "set data.label_column: ' label'" in message


@pytest.mark.parametrize("offset", [10, 9000])
def test_nul_byte_is_refused_wherever_it_comes(tmp_path: Path, offset: int) -> None:
    body = ("text,label\n" + "a note,x\n" * 2000).encode()
    path = write_bytes(tmp_path, "notes.csv", body[:offset] + b"\x00" + body[offset:])
    line = body[:offset].count(b"\n") + 1
    assert f"it holds NUL bytes (the first at line {line})" in read_error(path)


@pytest.mark.parametrize("on_bad_lines", ["error", "skip", "warn"])
def test_tsv_named_csv_is_sniffed(tmp_path: Path, on_bad_lines: str) -> None:
    path = write_text(tmp_path, "notes.csv", "text\tlabel\na, b\tx\nc\ty\n")
    message = read_error(path, on_bad_lines=on_bad_lines, columns=USED)
    assert "the header is tab-separated" in message
    assert "rename it to .tsv" in message


def test_invalid_json_is_located_by_line_number(tmp_path: Path) -> None:
    lines = '{"text": "a", "label": "b"}\n\n{"text": "c", "label": "d"}\n{"text": "e",\n'
    message = read_error(write_text(tmp_path, "notes.jsonl", lines))
    assert "line 4 is not valid JSON" in message
    assert "line 1 is a JSON list" in read_error(write_text(tmp_path, "l.jsonl", "[1, 2]\n"))


@pytest.mark.parametrize(
    ("value", "found"), [({"body": "x"}, "a JSON object"), (["x"], "a JSON list")]
)
def test_json_text_that_is_not_text_is_refused(tmp_path: Path, value: object, found: str) -> None:
    records = [{"text": "fine", "label": "a"}, {"text": value, "label": "b"}]
    path = write_text(tmp_path, "notes.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    message = read_error(path, columns=USED)
    assert f"row 2: column 'text' (data.text_column) holds {found}, not text" in message


def test_json_object_label_is_refused(tmp_path: Path) -> None:
    records = [{"text": "a", "label": "x"}, {"text": "b", "label": {"name": "cardiology"}}]
    path = write_text(tmp_path, "notes.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    assert "row 2: column 'label' (data.label_column) holds a JSON object" in read_error(
        path, columns=USED
    )


def test_json_numbers_in_a_text_column_are_text(tmp_path: Path) -> None:
    records = [{"text": 12, "label": "x"}, {"text": "b", "label": "y"}]
    path = write_text(tmp_path, "notes.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    assert read_table(path, columns=USED).frame["text"].tolist() == ["12", "b"]


def test_json_labels_that_are_whole_numbers_stay_integers_however_written(
    tmp_path: Path,
) -> None:
    # JSON has one number type: 1.0 among 0 and 1 is the label 1, not a class "1.0"
    used = UsedColumns(("text",), "label", {"score": "data.carry_columns"})
    labels, scores = [0, 1, 1.0, float("nan")], [0, 1, 1.0, 2]  # json writes NaN for missing
    records = [
        {"text": f"note {i}", "label": label, "score": score}
        for i, (label, score) in enumerate(zip(labels, scores, strict=True))
    ]
    path = write_text(tmp_path, "notes.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    frame = read_table(path, columns=used).frame
    assert frame["label"].tolist() == [0, 1, 1, None]
    assert [type(value) for value in frame["label"][:3]] == [int, int, int]
    assert frame["score"].tolist() == [0.0, 1.0, 1.0, 2.0]  # a carried column keeps its floats
    # a label column with a fraction is one of floats
    records[0]["label"] = 0.5
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    (fraction, one, also_one, missing) = read_table(path, columns=used).frame["label"].tolist()
    assert (fraction, one, also_one) == (0.5, 1.0, 1.0) and missing != missing  # NaN


def test_parquet_binary_text_is_decoded_or_refused_with_its_row(tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    texts = pa.array([b"caf\xc3\xa9\xc2\xa0noted", None], type=pa.binary())
    pq.write_table(pa.table({"text": texts, "label": ["a", "b"]}), path)
    assert read_table(path, columns=USED).frame["text"].tolist()[0] == "caf\u00e9\u00a0noted"
    pq.write_table(pa.table({"text": [b"ok", b"caf\xe9"], "label": ["a", "b"]}), path)
    assert "row 2: column 'text' holds bytes that are not UTF-8" in read_error(path, columns=USED)


@pytest.mark.parametrize(
    ("column", "values", "found"),
    [
        ("text", [["a"], ["b"]], "list<element: string>"),
        ("text", [{"body": "a"}, {"body": "b"}], "struct<body: string>"),
        ("label", [None, {"name": "x"}], "struct<name: string>"),
    ],
)
def test_parquet_nested_text_or_label_is_refused(
    tmp_path: Path, column: str, values: list[object], found: str
) -> None:
    path = tmp_path / "notes.parquet"
    table = {"text": ["a", "b"], "label": ["x", "y"], column: values}
    pq.write_table(pa.table(table), path)
    row = 2 if values[0] is None else 1
    assert f"row {row}: column '{column}'" in read_error(path, columns=USED)
    assert found in read_error(path, columns=USED)


def test_parquet_integer_labels_with_gaps_stay_integers(tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [0, None, 1]}), path)
    for chunk_rows in (None, 1):
        chunks = TableChunks(path, chunk_rows=chunk_rows, columns=USED)
        assert pd.concat(list(chunks))["label"].tolist() == [0, None, 1]


@pytest.mark.parametrize("mode", ["error", "skip", "warn"])
def test_a_note_longer_than_the_csv_field_limit_is_read(tmp_path: Path, mode: str) -> None:
    path = write_text(tmp_path, "notes.csv", "text,label\n" + "a" * 200_000 + ",x\nb,y\n")
    result = read_table(path, on_bad_lines=mode)
    assert result.frame["text"].str.len().tolist() == [200_000, 1]
    assert result.bad_lines == 0


# --- atomic writes -------------------------------------------------------------------------------


def test_write_json_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    payload = {"rows_in": 3, "names": ["b", "a"], "nested": {"x": 1.5}}
    write_json(target, payload)
    assert read_json(target) == payload
    assert list(json.loads(target.read_text()).keys()) == ["rows_in", "names", "nested"]
    assert target.read_text().endswith("}\n")
    write_json(target, {"second": True})
    assert read_json(target) == {"second": True}
    assert sibling_names(target) == ["report.json"]


def test_atomic_path_failure_keeps_the_old_target(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as staged:
        staged.write_text("half written")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sibling_names(target) == ["report.json"]


def test_atomic_path_replaces_a_whole_folder(tmp_path: Path) -> None:
    target = tmp_path / "splits"
    target.mkdir()
    (target / "stale.parquet").write_text("old")
    (target / "train.parquet").write_text("old")
    with atomic_path(target, replace_folder=True) as staged:
        staged.mkdir()
        (staged / "train.parquet").write_text("new")
        assert (target / "train.parquet").read_text() == "old"  # not visible before the end
    assert sorted(path.name for path in target.iterdir()) == ["train.parquet"]
    assert (target / "train.parquet").read_text() == "new"
    assert sibling_names(target) == ["splits"]


def test_atomic_path_writes_a_parquet_file(tmp_path: Path) -> None:
    frame = pd.DataFrame(ROWS, columns=["text", "label"])
    target = tmp_path / "clean.parquet"
    with atomic_path(target) as staged:
        frame.to_parquet(staged, index=False)
    pd.testing.assert_frame_equal(pd.read_parquet(target), frame)
    assert sibling_names(target) == ["clean.parquet"]


def test_sha256_file(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "x.bin", b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_file(path) == expected
    assert sha256_file(path, chunk_size=1) == expected


@pytest.mark.slow  # the real `dvc repro` on the tiny BERT
def test_repro_on_a_spreadsheet_export_with_blank_trailing_header_cells(
    project_copy: Path, tiny_bert: Path
) -> None:
    """A spreadsheet export: `label,text,,,`, a byte-order mark and CRLF line ends."""
    notes = keyword_notes(rows=200, seed=4, noise=0.0)
    lines = ["label,text,,,"] + [
        f'{label},"{text}",,,' for text, label in notes[["text", "label"]].to_numpy()
    ]
    (project_copy / "data" / "export.csv").write_bytes(
        ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()
    )
    set_params(
        project_copy,
        model=str(tiny_bert),
        epochs=1,
        max_length=32,
        **{
            "data.path": "data/export.csv",
            "data.carry_columns": [],
            "split.group_column": None,
            "train.patience": None,
        },
    )
    init_repo(project_copy)
    result = dvc(project_copy, "repro")
    assert "ignoring unused columns with blank or repeated names (column 3, 4, 5)" in (
        result.stdout + result.stderr
    )
    report = json.loads((project_copy / "data/clean/report.json").read_text())
    assert report["rows_in"] == 200
    assert (project_copy / "metrics.json").is_file()


def test_a_gzipped_tsv_named_csv_gz_is_told_its_gzipped_name(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "notes.csv.gz", gzip.compress(b"text\tlabel\na\tb\n"))
    assert read_error(path).endswith("read as CSV by its extension; rename it to .tsv.gz")


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_a_quote_never_closed_to_the_end_of_the_file_names_its_row(
    tmp_path: Path, mode: str
) -> None:
    path = write_text(tmp_path, "notes.csv", 'id,text,label\n1,ok,a\n2,"he said hi,b\n3,c,a\n')
    assert read_error(path, on_bad_lines=mode) == (
        f"{path}: row 2 opens a quote never closed: every line after it, to the file's end, was "
        "read into its text; remove the quote, or double it"
    )
