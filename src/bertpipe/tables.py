"""Reading the user's table (CSV, TSV, JSONL or Parquet), whole or in chunks.

Every problem with the file is a UserError that says what to do about it.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bertpipe.errors import UserError

SUPPORTED_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# Magic bytes of files people point at by mistake, so the error can say what the file is.
_BINARY_SIGNATURES = {
    b"PK\x03\x04": "a zip archive (an .xlsx/.ods spreadsheet?)",
    b"\xd0\xcf\x11\xe0": "an old Office document (an .xls spreadsheet?)",
    b"%PDF": "a PDF",
    b"\x1f\x8b": "a gzip archive",
}


@dataclass(frozen=True)
class ReadResult:
    frame: pd.DataFrame
    bad_lines: int  # rows skipped by on_bad_lines: skip | warn


# What to do about a file without rows: an interrupted export, or data.path names the wrong file.
_NO_ROWS_HINT = "export the data again, or point data.path at the right file"
# Spreadsheet extensions get a hint: "unsupported" alone does not tell the user what to do.
_SPREADSHEET_EXTENSIONS = {".xlsx", ".xlsm", ".xls", ".ods", ".numbers"}


def table_format(path: Path) -> str:
    fmt = SUPPORTED_EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        hint = ""
        if path.suffix.lower() in _SPREADSHEET_EXTENSIONS:
            hint = " (a spreadsheet: save it as CSV)"
        raise UserError(
            f"{path}: unsupported file type '{path.suffix or '(none)'}'{hint}; "
            f"use one of {supported}"
        )
    return fmt


def _is_wide_encoding(encoding: str) -> bool:
    return encoding.lower().replace("_", "-").startswith(("utf-16", "utf16", "utf-32", "utf32"))


def _check_not_binary(path: Path, fmt: str, encoding: str) -> None:
    if fmt == "parquet":
        return
    head = _read_head(path, 4096)
    for signature, what in _BINARY_SIGNATURES.items():
        if head.startswith(signature):
            raise UserError(f"{path}: this is {what}, not a {fmt} text table; export it as CSV")
    # UTF-8 and 8-bit text never holds NUL bytes; without this check random bytes were reported
    # as an encoding problem, whose advice (set data.encoding: latin-1) only reads garbage.
    # UTF-16/32 text is full of them, so it is exempt once data.encoding says so.
    if b"\x00" in head and not _is_wide_encoding(encoding):
        raise UserError(
            f"{path}: not valid {encoding} text: it holds NUL bytes, so it is a binary file "
            "(or UTF-16 text); export the data as CSV, or set data.encoding: utf-16 if it is UTF-16"
        )


def _read_head(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def _python_encoding(encoding: str) -> str:
    # utf-8-sig reads plain UTF-8 too, and drops the byte-order mark spreadsheets write.
    return "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding


def _header(path: Path, delimiter: str, encoding: str) -> list[str]:
    with path.open(encoding=encoding, newline="") as handle:
        return next(csv.reader(handle, delimiter=delimiter), [])


class TableChunks:
    """The user's table as an iterator of DataFrames of at most `chunk_rows` rows each.

    Memory stays bounded by the chunk, whatever the file's size; `chunk_rows=None` reads the file
    whole (one chunk). The index counts rows from the start of the file in every chunk, so error
    messages name the file's row. `bad_lines` is final once the iterator is exhausted. Every
    problem is a UserError, raised where it is met, which may be in a later chunk.
    """

    def __init__(
        self,
        path: str | Path,
        encoding: str = "utf-8",
        on_bad_lines: Literal["error", "skip", "warn"] = "error",
        chunk_rows: int | None = None,
    ) -> None:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: data file not found; set data.path in params.yaml")
        if path.is_dir():
            raise UserError(f"{path}: is a folder; data.path must name a file")
        self.format = table_format(path)
        if path.stat().st_size == 0:
            raise UserError(f"{path}: the file is empty; {_NO_ROWS_HINT}")
        _check_not_binary(path, self.format, encoding)
        self.path = path
        self.encoding = encoding
        self.on_bad_lines = on_bad_lines
        self.chunk_rows = chunk_rows
        self.bad_lines = 0
        self.rows = 0

    def __iter__(self) -> Iterator[pd.DataFrame]:
        path, encoding = self.path, self.encoding
        py_encoding = _python_encoding(encoding)
        try:
            for chunk in self._chunks(py_encoding):
                chunk.index = pd.RangeIndex(self.rows, self.rows + len(chunk))
                self.rows += len(chunk)
                if len(chunk):
                    yield chunk
        except UnicodeDecodeError:
            raise UserError(
                f"{path}: not valid {encoding} text ({_locate_decode_error(path, py_encoding)}); "
                "set data.encoding in params.yaml to the file's encoding, e.g. latin-1"
            ) from None
        except LookupError:
            raise UserError(f"data.encoding: unknown encoding '{encoding}'") from None
        if self.rows == 0:
            has_header = self.format in {"csv", "tsv"}
            what = "a header but no rows" if has_header else "no rows"
            raise UserError(f"{path}: the file has {what}; {_NO_ROWS_HINT}")

    def _chunks(self, encoding: str) -> Iterator[pd.DataFrame]:
        path = self.path
        if self.format == "parquet":
            try:
                if self.chunk_rows is None:
                    yield pq.read_table(path).to_pandas()
                    return
                for batch in pq.ParquetFile(path).iter_batches(batch_size=self.chunk_rows):
                    yield batch.to_pandas()
            except (pa.ArrowInvalid, OSError) as exc:
                raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
            return
        if self.format == "jsonl":
            try:
                if self.chunk_rows is None:
                    yield pd.read_json(path, lines=True, encoding=encoding, dtype=False)
                    return
                with pd.read_json(
                    path, lines=True, encoding=encoding, dtype=False, chunksize=self.chunk_rows
                ) as reader:
                    yield from reader
            except UnicodeDecodeError:
                raise  # a ValueError too, but it is about the encoding, handled by the caller
            except ValueError as exc:
                raise UserError(f"{path}: not valid JSON lines ({exc})") from None
            return
        delimiter = "," if self.format == "csv" else "\t"
        header = _header(path, delimiter, encoding)
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise UserError(f"{path}: duplicate column names {duplicated}; rename them")
        yield from self._delimited(delimiter, encoding)

    def _delimited(self, delimiter: str, encoding: str) -> Iterator[pd.DataFrame]:
        def count_bad(_fields: list[str]) -> None:
            self.bad_lines += 1  # returning None drops the row

        options: dict[str, Any] = {
            "sep": delimiter,
            "encoding": encoding,
            "dtype": str,
            "keep_default_na": False,
            "na_values": [""],
            "chunksize": self.chunk_rows,
        }
        if self.on_bad_lines == "error":
            options["on_bad_lines"] = "error"
        else:
            # Only the python engine accepts a callable, which is what lets us count the rows.
            options.update(on_bad_lines=count_bad, engine="python")
        try:
            if self.chunk_rows is None:
                yield self._check_fields(pd.read_csv(self.path, **options), delimiter)
                return
            with pd.read_csv(self.path, **options) as reader:
                for chunk in reader:
                    yield self._check_fields(chunk, delimiter)
        except pd.errors.EmptyDataError:
            raise UserError(
                f"{self.path}: the file has no header and no rows; {_NO_ROWS_HINT}"
            ) from None
        except pd.errors.ParserError as exc:
            detail = str(exc).strip().splitlines()[-1]
            raise UserError(
                f"{self.path}: malformed row ({detail}); quote texts that contain the delimiter, "
                "or set data.on_bad_lines to skip or warn"
            ) from None

    def _check_fields(self, chunk: pd.DataFrame, delimiter: str) -> pd.DataFrame:
        # When the first data row has more fields than the header, pandas silently takes the
        # extra leading fields as the row index and shifts every column: a text with one
        # unquoted comma in every row would train on the wrong column. Its own index is then
        # not the row count (self.rows: the rows of the chunks before this one).
        if not chunk.index.equals(pd.RangeIndex(self.rows, self.rows + len(chunk))):
            shown = {",": "','", "\t": "tab"}.get(delimiter, repr(delimiter))
            raise UserError(
                f"{self.path}: the rows have more fields than the header's {len(chunk.columns)} "
                f"columns (a {shown} inside an unquoted text?); quote texts that contain the "
                "delimiter"
            )
        return chunk


def read_table(
    path: str | Path,
    encoding: str = "utf-8",
    on_bad_lines: Literal["error", "skip", "warn"] = "error",
) -> ReadResult:
    """Read CSV, TSV, JSONL or Parquet by extension, whole, with errors a user can act on."""
    chunks = TableChunks(path, encoding, on_bad_lines)
    frames = list(chunks)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames)
    return ReadResult(frame.reset_index(drop=True), chunks.bad_lines)


def _locate_decode_error(path: Path, encoding: str, chunk_size: int = 1 << 20) -> str:
    """Where the first undecodable byte is, as the file's line and byte offset.

    pandas reports offsets inside its own read buffer, so decode the file again, incrementally.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, line = 0, 1
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # exc.start counts from the start of this chunk plus what the decoder held back
                held = len(exc.object) - len(chunk)
                position = offset + exc.start - held
                line += exc.object[: exc.start].count(b"\n")
                return f"byte {exc.object[exc.start]:#04x} at line {line}, offset {position}"
            offset += len(chunk)
            line += chunk.count(b"\n")
    return "undecodable bytes"
