"""Reading the user's table (CSV, TSV, JSONL or Parquet, the text ones also gzipped), whole or in
chunks, with each column's type decided once for the whole file.

Every problem with the file is a UserError that says what to do about it.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import io
import json
import math
import re
import sys
import warnings
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NoReturn

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
    ".csv.gz": "csv",
    ".tsv.gz": "tsv",
    ".tab.gz": "tsv",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
}

# Magic bytes of files people point at by mistake, so the error can say what the file is.
_BINARY_SIGNATURES = {
    b"PK\x03\x04": "a zip archive (an .xlsx/.ods spreadsheet?)",
    b"\xd0\xcf\x11\xe0": "an old Office document (an .xls spreadsheet?)",
    b"%PDF": "a PDF",
    b"\x1f\x8b": "a gzip archive",
}
_GZIP_MAGIC = b"\x1f\x8b"
# Quoted names and values in messages are cut to this many characters, so that one line stays
# readable whatever the file holds.
_SHOWN_CHARS = 40
_SHOWN_NAMES = 12


@dataclass(frozen=True)
class ReadResult:
    frame: pd.DataFrame
    bad_lines: int  # rows skipped by on_bad_lines: skip | warn


@dataclass(frozen=True)
class UsedColumns:
    """The columns the params name, by role; every other column of the file is ignored."""

    text: tuple[str, ...]
    label: str | None  # None: no label is read (bertpipe predict)
    # each other column bertpipe keeps (carried, group), with the params key that names it
    other: Mapping[str, str] = field(default_factory=dict)
    # what names the text columns, for messages: the params key, or predict's option
    text_key: str = "data.text_column"

    def by_column(self) -> dict[str, str]:
        """Each used column, in order, and the params key that names it (for messages)."""
        roles = [
            *((column, self.text_key) for column in self.text),
            *([(self.label, "data.label_column")] if self.label is not None else []),
            *self.other.items(),
        ]
        keys: dict[str, str] = {}
        for column, key in roles:
            keys.setdefault(column, key)  # a column named twice is reported under its first role
        return keys


@dataclass(frozen=True)
class ReadingAdvice:
    """How a message names the options that change how a table is read: params.yaml's keys
    for the pipeline, the command's options for `bertpipe predict`."""

    wide_encoding: str  # a file of NUL bytes that may be UTF-16
    file_encoding: str  # text the encoding cannot decode; "{}" is the likely encoding
    bad_lines: str  # a malformed row: what else may be done ("" for nothing)


PIPELINE_ADVICE = ReadingAdvice(
    wide_encoding="set data.encoding: utf-16",
    file_encoding="set data.encoding in params.yaml to the file's encoding, e.g. {}",
    bad_lines=", or set data.on_bad_lines to skip or warn",
)


# What to do about a file without rows: an interrupted export, or data.path names the wrong file.
_NO_ROWS_HINT = "export the data again, or point data.path at the right file"
# Spreadsheet extensions get a hint: "unsupported" alone does not tell the user what to do.
_SPREADSHEET_EXTENSIONS = {".xlsx", ".xlsm", ".xls", ".ods", ".numbers"}


def shown(value: object) -> str:
    """A value quoted for a message, cut to a readable length."""
    text = str(value)
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 3] + "..."
    return repr(text)


def shown_names(names: Sequence[object]) -> str:
    listed = ", ".join(shown(name) for name in names[:_SHOWN_NAMES])
    more = len(names) - _SHOWN_NAMES
    return listed + (f" and {more} more" if more > 0 else "")


def table_extension(path: Path) -> str:
    """The name's table extension, .gz included (".csv.gz"), or its last suffix."""
    name = path.name.lower()
    for extension in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if name.endswith(extension):
            return extension
    return path.suffix.lower()


def table_format(path: Path) -> str:
    fmt = SUPPORTED_EXTENSIONS.get(table_extension(path))
    if fmt is None:
        supported = ", ".join(sorted(e for e in SUPPORTED_EXTENSIONS if not e.endswith(".gz")))
        hint = ""
        if path.suffix.lower() in _SPREADSHEET_EXTENSIONS:
            hint = " (a spreadsheet: save it as CSV)"
        raise UserError(
            f"{path}: unsupported file type '{path.suffix or '(none)'}'{hint}; "
            f"use one of {supported} (text tables also gzipped: .csv.gz, .tsv.gz, .jsonl.gz)"
        )
    return fmt


def is_gzipped(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open_bytes(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if is_gzipped(path) else path.open("rb")


def open_text(path: Path, encoding: str) -> IO[str]:
    return io.TextIOWrapper(_open_bytes(path), encoding=encoding, newline="")


def _is_wide_encoding(encoding: str) -> bool:
    return encoding.lower().replace("_", "-").startswith(("utf-16", "utf16", "utf-32", "utf32"))


def _check_not_binary(
    path: Path, fmt: str, encoding: str, advice: ReadingAdvice = PIPELINE_ADVICE
) -> None:
    """Refuse binary files, wherever their first NUL byte is, before any row is read."""
    if fmt == "parquet":
        return
    if is_gzipped(path):
        with path.open("rb") as handle:
            if handle.read(2) != _GZIP_MAGIC:
                raise UserError(f"{path}: not a gzip file, although named .gz; rename it")
    # UTF-8 and 8-bit text never holds NUL bytes; without this check random bytes were reported
    # as an encoding problem, whose advice (set data.encoding: latin-1) only reads garbage.
    # UTF-16/32 text is full of them, so it is exempt once data.encoding says so.
    wide = _is_wide_encoding(encoding)
    line, first = 1, True
    try:
        with _open_bytes(path) as handle:
            while block := handle.read(1 << 20):
                if first:
                    for signature, what in _BINARY_SIGNATURES.items():
                        if block.startswith(signature):
                            raise UserError(
                                f"{path}: this is {what}, not a {fmt} text table; export it as CSV"
                            )
                    first = False
                nul = -1 if wide else block.find(b"\x00")
                if nul >= 0:
                    line += block.count(b"\n", 0, nul)
                    raise UserError(
                        f"{path}: not valid {encoding} text: it holds NUL bytes (the first at line "
                        f"{line}), so it is a binary file (or UTF-16 text); export the data as "
                        f"CSV, or {advice.wide_encoding} if it is UTF-16"
                    )
                line += block.count(b"\n")
    except (OSError, EOFError, zlib.error) as exc:
        if not is_gzipped(path):
            raise
        raise UserError(f"{path}: not a readable gzip file ({exc}); compress it again") from None


def _python_encoding(encoding: str) -> str:
    # utf-8-sig reads plain UTF-8 too, and drops the byte-order mark spreadsheets write.
    return "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding


def is_blank_record(fields: Sequence[str]) -> bool:
    """A record pandas reads as no row (nor header): a blank line, or one of spaces only."""
    return not fields or (len(fields) == 1 and not fields[0].strip())


def csv_records(lines: Iterable[str], delimiter: str) -> Iterator[list[str]]:
    """csv.reader over `lines`, taking cells of any length as pandas does (the csv module's
    default limit, 128 KiB, would refuse a long note that training accepted)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    return csv.reader(lines, delimiter=delimiter)


def read_header(path: Path, delimiter: str, encoding: str) -> list[str]:
    """The header as pandas takes it: the first record that `is_blank_record` is not, without
    a byte-order mark."""
    with open_text(path, encoding) as handle:
        for fields in csv_records(without_byte_order_mark(handle), delimiter):
            if not is_blank_record(fields):
                return fields
    raise UserError(f"{path}: the file has no header and no rows; {_NO_ROWS_HINT}")


def check_header_delimiter(
    path: Path, header: Sequence[str], fmt: str, wanted: Collection[str]
) -> None:
    """A header that is one field holding another delimiter: say which, before any row."""
    if len(header) != 1 or header[0] in wanted:
        return
    delimiter = "," if fmt == "csv" else "\t"
    others = {"\t": "tab", ",": "comma", ";": "';'", "|": "'|'"}
    found = [name for mark, name in others.items() if mark != delimiter and mark in header[0]]
    if not found:
        return
    fix = (
        f"rename it to .tsv{'.gz' if is_gzipped(path) else ''}"
        if found[0] == "tab"
        else f"name it .csv{'.gz' if is_gzipped(path) else ''}"
        if found[0] == "comma"
        else "save it comma-separated"
    )
    raise UserError(
        f"{path}: the header is {found[0]}-separated, but the file is read as "
        f"{fmt.upper()} by its extension; {fix}"
    )


def check_columns(names: Sequence[object], needed: Mapping[str, str], path: object) -> None:
    """Refuse a table that lacks a column the params name; suggest a near match of the name."""
    missing = [column for column in needed if column not in names]
    if not missing:
        return
    hint = ""
    stripped = {str(name).strip(): name for name in names}
    near = [(column, stripped[column]) for column in missing if column in stripped]
    if near:
        column, name = near[0]
        hint = (
            f"; {shown(name)} has spaces around its name: remove them from the header, "
            f"or set {needed[column]}: {shown(name)}"
        )
    elif len(names) == 1:
        # one column holding the delimiter: the fix is the file, not params.yaml
        hint = (
            " (one column only: is the file delimited by something else, like ';' or tabs?); "
            "save it comma-separated, or tab-separated as .tsv"
        )
    else:
        keys = ", ".join(dict.fromkeys(needed[column] for column in missing))
        hint = f"; set {keys} in params.yaml to columns it has"
    raise UserError(
        f"{path}: missing column(s) {shown_names(missing)}; the file has: {shown_names(names)}"
        f"{hint}"
    )


def _positions(
    names: Sequence[str], used: UsedColumns | None, path: Path, warnings: list[str]
) -> list[int]:
    """The position of each used column in the header (all columns when `used` is None).

    Columns the params do not use may be blank-named or repeated: they are ignored with one
    warning. A used name that appears twice is an error, as bertpipe cannot tell which to use.
    """
    repeated = sorted({name for name in names if names.count(name) > 1})
    if used is None:
        if repeated:
            raise UserError(
                f"{path}: duplicate column names {repeated[:_SHOWN_NAMES]}; rename them"
            )
        return list(range(len(names)))
    keys = used.by_column()
    check_columns(names, keys, path)
    clashes = [name for name in repeated if name in keys]
    if clashes:
        column = clashes[0]
        raise UserError(
            f"{path}: duplicate column names {clashes[:_SHOWN_NAMES]}: the column "
            f"{shown(column)} named by {keys[column]} appears {names.count(column)} times; "
            "rename them"
        )
    odd = [
        f"{index + 1}" + (f" ({shown(name)})" if name.strip() else "")
        for index, name in enumerate(names)
        if (not name.strip() or name in repeated) and name not in keys
    ]
    if odd:
        warnings.append(
            f"{path}: ignoring unused columns with blank or repeated names (column "
            f"{', '.join(odd[:_SHOWN_NAMES])}{' ...' if len(odd) > _SHOWN_NAMES else ''})"
        )
    return [names.index(column) for column in keys]


def _json_kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if -(2**63) <= value < 2**63 else "big integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


class TableChunks:
    """The user's table as an iterator of DataFrames of at most `chunk_rows` rows each.

    Memory stays bounded by the chunk, whatever the file's size; `chunk_rows=None` reads the file
    whole (one chunk). The index counts rows from the start of the file in every chunk, so error
    messages name the file's row. With `columns`, only those columns are read, in that order,
    and the types of the text and label columns are checked; without, every column is read.
    Each column's type is decided once for the whole file, so the chunks do not depend on
    `chunk_rows`. The table can be iterated again; `bad_lines`, `rows` and `warnings` describe
    the last complete pass. Every problem is a UserError, raised where it is met, which may be
    in a later chunk.
    """

    def __init__(
        self,
        path: str | Path,
        encoding: str = "utf-8",
        on_bad_lines: Literal["error", "skip", "warn"] = "error",
        chunk_rows: int | None = None,
        columns: UsedColumns | None = None,
        advice: ReadingAdvice = PIPELINE_ADVICE,
    ) -> None:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: data file not found; set data.path in params.yaml")
        if path.is_dir():
            raise UserError(f"{path}: is a folder; data.path must name a file")
        self.format = table_format(path)
        if path.stat().st_size == 0:
            raise UserError(f"{path}: the file is empty; {_NO_ROWS_HINT}")
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UserError(f"data.encoding: unknown encoding '{encoding}'") from None
        _check_not_binary(path, self.format, encoding, advice)
        self.path = path
        self.advice = advice
        self.encoding = encoding
        self.on_bad_lines = on_bad_lines
        self.chunk_rows = chunk_rows
        self.columns = columns
        self.bad_lines = 0
        self.rows = 0
        self.warnings: list[str] = []
        # JSONL: each column's type, decided on the first pass, and the warning it gave
        self._json_plan: tuple[dict[str, str], str] | None = None
        self._quotes_checked = False  # for a stray quote, on this pass (_check_quote_joins)
        self._rowlike: list[RowLikeText] = []  # found by the same scan

    def __iter__(self) -> Iterator[pd.DataFrame]:
        path, encoding = self.path, self.encoding
        py_encoding = _python_encoding(encoding)
        self.bad_lines = self.rows = 0
        self.warnings = []
        self._quotes_checked = False
        self._rowlike = []
        windows_text = encoding_warning(path, self.format, encoding, self.advice)
        if windows_text:
            self.warnings.append(windows_text)
        try:
            for chunk in self._chunks(py_encoding):
                chunk.index = pd.RangeIndex(self.rows, self.rows + len(chunk))
                self.rows += len(chunk)
                if len(chunk):
                    yield chunk
        except UnicodeDecodeError:
            where, suggestion = _locate_decode_error(path, py_encoding), likely_encoding(path)
            raise UserError(
                f"{path}: not valid {encoding} text ({where}); "
                + self.advice.file_encoding.format(suggestion)
            ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise UserError(
                f"{path}: not a readable gzip file ({exc}); compress it again"
            ) from None
        if self.rows == 0:
            has_header = self.format in {"csv", "tsv"}
            what = "a header but no rows" if has_header else "no rows"
            raise UserError(f"{path}: the file has {what}; {_NO_ROWS_HINT}")

    def _chunks(self, encoding: str) -> Iterator[pd.DataFrame]:
        if self.format == "parquet":
            yield from self._parquet()
        elif self.format == "jsonl":
            yield from self._jsonl(encoding)
        else:
            delimiter = "," if self.format == "csv" else "\t"
            header = read_header(self.path, delimiter, encoding)
            wanted = self.columns.by_column() if self.columns is not None else {}
            check_header_delimiter(self.path, header, self.format, wanted)
            positions = _positions(header, self.columns, self.path, self.warnings)
            label = self.columns.label if self.columns is not None else None
            labels_seen: set[str] = set()  # the label column's values, up to _LABELS_COMPARED
            for chunk in self._delimited(delimiter, encoding):
                self._check_quote_joins(chunk, header, delimiter, encoding)
                chunk = chunk.iloc[:, positions]
                chunk.columns = [header[position] for position in positions]
                if label in chunk and len(labels_seen) <= _LABELS_COMPARED:
                    labels_seen.update(
                        str(value).strip() for value in chunk[label].dropna().unique()
                    )
                yield chunk
            if label in header and len(labels_seen) <= _LABELS_COMPARED:
                self.warnings += _joined_rows_warnings(
                    self.path, self._rowlike, header.index(label), labels_seen
                )

    # --- CSV and TSV ------------------------------------------------------------------------

    def _delimited(self, delimiter: str, encoding: str) -> Iterator[pd.DataFrame]:
        options: dict[str, Any] = {
            "sep": delimiter,
            "encoding": encoding,
            "dtype": str,
            "keep_default_na": False,
            "na_values": [""],
            "compression": "gzip" if is_gzipped(self.path) else None,
            # skip and warn both read with pandas' "warn", whose warnings are counted here: the
            # callable that only the python engine accepts is not called for the rows that
            # engine's stricter quoting refuses ('"Quoted" then more'), so they vanished
            # uncounted, where the C engine reads them as the error mode does
            "on_bad_lines": "error" if self.on_bad_lines == "error" else "warn",
        }
        rows = 0
        try:
            if self.chunk_rows is None:
                frame = self._counting_bad_lines(lambda: pd.read_csv(self.path, **options))
                yield self._check_fields(frame, delimiter, rows)
                return
            with pd.read_csv(self.path, chunksize=self.chunk_rows, **options) as reader:
                while (chunk := self._counting_bad_lines(lambda: next(reader, None))) is not None:
                    yield self._check_fields(chunk, delimiter, rows)
                    rows += len(chunk)
        except pd.errors.EmptyDataError:
            raise UserError(
                f"{self.path}: the file has no header and no rows; {_NO_ROWS_HINT}"
            ) from None
        except (pd.errors.ParserError, csv.Error) as exc:
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            unclosed = re.search(r"EOF inside string starting at row (\d+)", detail)
            if unclosed:  # data.on_bad_lines cannot skip it: every line after it is in the field
                raise UserError(
                    f"{self.path}: row {unclosed.group(1)} opens a quote never closed: every "
                    "line after it, to the file's end, was read into its text; remove the quote, "
                    "or double it"
                ) from None
            raise UserError(
                f"{self.path}: malformed row ({detail[:120]}); quote texts that contain the "
                f"delimiter{self.advice.bad_lines}"
            ) from None

    def _counting_bad_lines(self, read: Callable[[], pd.DataFrame | None]) -> pd.DataFrame | None:
        """`read()`, with the rows pandas skipped in it added to `bad_lines`."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = read()
        for warning in caught:
            if issubclass(warning.category, pd.errors.ParserWarning):
                self.bad_lines += str(warning.message).count("Skipping line")
            else:  # not ours to swallow
                warnings.warn(warning.message, warning.category, stacklevel=2)
        return frame

    def _check_quote_joins(
        self, chunk: pd.DataFrame, header: list[str], delimiter: str, encoding: str
    ) -> None:
        """Refuse a stray quote that joined rows (`quote_join`): the whole file is read for it
        once, at the first chunk that holds a text of several lines, since only such a text can
        hold joined rows."""
        if self._quotes_checked or not any(
            chunk[column].str.contains("[\r\n]", regex=True, na=False).any() for column in chunk
        ):
            return
        self._quotes_checked = True
        with open_text(self.path, encoding) as handle:
            found = first_quote_join(handle, delimiter, self._rowlike, len(header))
        if found is not None:
            raise found.error(self.path, header)

    def _check_fields(self, chunk: pd.DataFrame, delimiter: str, rows: int) -> pd.DataFrame:
        # When the first data row has more fields than the header, pandas silently takes the
        # extra leading fields as the row index and shifts every column: a text with one
        # unquoted comma in every row would train on the wrong column. Its own index is then
        # not the row count (`rows`: the rows of the chunks before this one).
        if not chunk.index.equals(pd.RangeIndex(rows, rows + len(chunk))):
            shown_delimiter = {",": "','", "\t": "tab"}.get(delimiter, repr(delimiter))
            raise UserError(
                f"{self.path}: the rows have more fields than the header's {len(chunk.columns)} "
                f"columns (a {shown_delimiter} inside an unquoted text?); quote texts that contain "
                "the delimiter"
            )
        return chunk

    # --- Parquet ----------------------------------------------------------------------------

    def _parquet(self) -> Iterator[pd.DataFrame]:
        path = self.path
        try:
            parquet = pq.ParquetFile(path)
            names = list(parquet.schema_arrow.names)
            positions = _positions(names, self.columns, path, self.warnings)
            selected = [names[position] for position in positions]
            batch_size = self.chunk_rows or max(parquet.metadata.num_rows, 1)
            rows = 0
            for batch in parquet.iter_batches(batch_size=batch_size, columns=selected):
                yield pd.DataFrame(
                    {
                        name: self._parquet_column(batch.column(index), name, rows)
                        for index, name in enumerate(selected)
                    }
                )
                rows += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"{path}: not a readable Parquet file ({str(exc)[:120]})") from None

    def _parquet_column(self, array: pa.Array, name: str, first_row: int) -> pd.Series:
        kind = array.type
        if pa.types.is_dictionary(kind):
            array, kind = array.dictionary_decode(), kind.value_type
        role = self._role(name)
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            if role is None:
                return pd.Series(array.to_pylist(), dtype=object)
            return pd.Series(
                [self._decoded(value, name, first_row + row) for row, value in enumerate(array)],
                dtype=object,
            )
        nested = pa.types.is_nested(kind)
        # a boolean is no text: training and predict would score the word "True"
        refused = (role == "text" and (nested or pa.types.is_boolean(kind))) or (
            role == "label" and nested and not _is_list_type(kind)
        )
        if refused:
            row = next((row for row, valid in enumerate(array.is_valid()) if valid.as_py()), 0)
            self._refuse(name, first_row + row, str(kind))
        if nested:
            return pd.Series(array.to_pylist(), dtype=object)
        # integers with nulls stay integers (None for missing), never floats
        return pd.Series(array.to_pandas(integer_object_nulls=True)).astype(object)

    def _decoded(self, value: pa.Scalar, name: str, row: int) -> str | None:
        raw = value.as_py()
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(
                f"{self.path}: row {row + 1}: column {shown(name)} holds bytes that are not "
                "UTF-8 text; store the column as UTF-8 strings"
            ) from None

    # --- JSON lines -------------------------------------------------------------------------

    def _json_lines(self, encoding: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, object) for every non-blank line."""
        with open_text(self.path, encoding) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(
                        f"{self.path}: line {number} is not valid JSON ({exc.msg} at column "
                        f"{exc.colno}); fix that line, or export the data again"
                    ) from None
                except RecursionError:
                    raise UserError(
                        f"{self.path}: line {number} is nested too deeply to read; "
                        "flatten that record, or export the data again"
                    ) from None
                if not isinstance(record, dict):
                    raise UserError(
                        f"{self.path}: line {number} is a JSON {_json_kind(record) or 'null'}, "
                        'not an object; write one {"column": value, ...} object per line'
                    )
                yield number, record

    def _plan_json(self, encoding: str) -> tuple[dict[str, str], str]:
        """One pass over the file: each column's type, decided once for every chunk."""
        kinds: dict[str, dict[str, int]] = {}  # column -> kind -> first row with it
        wanted = None if self.columns is None else set(self.columns.by_column())
        rows = 0
        for _, record in self._json_lines(encoding):
            for name, value in record.items():
                if wanted is not None and name not in wanted:
                    continue
                column_kinds = kinds.setdefault(name, {})
                kind = _json_kind(value)
                if kind == "float" and self._role(name) == "label":
                    # JSON has one number type: a label written 1.0 among 0 and 1 is the 1;
                    # NaN (Python's json writes it for a missing float) is a missing label
                    if not math.isfinite(value):
                        kind = None
                    elif float(value).is_integer():
                        kind = "whole"
                if kind is not None and kind not in column_kinds:
                    column_kinds[kind] = rows
            rows += 1
        names = list(kinds)
        if self.columns is not None and rows:
            check_columns(names, self.columns.by_column(), self.path)
            names = list(self.columns.by_column())
        plan: dict[str, str] = {}
        mixed: list[str] = []
        for name in names:
            found = kinds.get(name, {})
            role = self._role(name)
            refused = {"list", "object", "boolean"} if role == "text" else {"object"}
            if role is not None:
                for kind in refused & found.keys():
                    self._refuse(name, found[kind], f"a JSON {kind}")
            found_kinds = set(found)
            if role == "text":
                plan[name] = "string"  # numbers in a text column are text
            elif role == "label" and "list" in found_kinds and found_kinds <= {"list", "string"}:
                plan[name] = "list"  # multi-label: JSON lists and 'a|b' strings
            elif not found_kinds:
                plan[name] = "empty"
            elif found_kinds <= {"integer"}:
                plan[name] = "integer"
            elif found_kinds <= {"integer", "whole"}:
                plan[name] = "whole"  # a label column of whole numbers: integers
            elif found_kinds <= {"integer", "float", "whole"}:
                plan[name] = "float"  # JSON has one number type: 1 and 1.5 are both floats
            elif found_kinds in ({"string"}, {"boolean"}):
                plan[name] = found_kinds.pop()
            else:
                # mixed types, lists, objects or integers beyond 64 bits: Arrow could store
                # them only with a type that depends on the rows of each chunk
                plan[name] = "string"
                mixed.append(name)
        warning = ""
        if mixed:
            warning = (
                f"{self.path}: column(s) {shown_names(mixed)} hold lists, objects or mixed "
                "value types (numbers and text...); they are read as text"
            )
        return plan, warning

    def _jsonl(self, encoding: str) -> Iterator[pd.DataFrame]:
        if self._json_plan is None:
            self._json_plan = self._plan_json(encoding)
        plan, warning = self._json_plan
        if warning:
            self.warnings.append(warning)
        chunk_rows = self.chunk_rows or 0
        batch: list[dict[str, Any]] = []
        for _, record in self._json_lines(encoding):
            batch.append(record)
            if len(batch) == chunk_rows:
                yield self._json_frame(batch, plan)
                batch = []
        if batch:
            yield self._json_frame(batch, plan)

    def _json_frame(self, records: list[dict[str, Any]], plan: dict[str, str]) -> pd.DataFrame:
        columns = {}
        for name, kind in plan.items():
            values = [record.get(name) for record in records]
            if kind == "string":
                values = [_as_text(value) for value in values]
            elif kind == "float":
                values = [None if value is None else float(value) for value in values]
            elif kind == "whole":
                values = [
                    int(value) if value is not None and math.isfinite(value) else None
                    for value in values
                ]
            columns[name] = pd.Series(values, dtype=object)
        return pd.DataFrame(columns)

    # --- shared -----------------------------------------------------------------------------

    def _role(self, name: str) -> str | None:
        if self.columns is None:
            return None
        if name in self.columns.text:
            return "text"
        return "label" if name == self.columns.label else None

    def _refuse(self, name: str, row: int, found: str) -> NoReturn:
        if self._role(name) == "text":
            assert self.columns is not None  # a role comes from the columns
            raise not_text(self.path, row + 1, name, found, self.columns.text_key)
        key = "data.label_column"
        raise UserError(
            f"{self.path}: row {row + 1}: column {shown(name)} ({key}) holds {found}, not "
            f"{'text' if key == 'data.text_column' else 'a label'}; write the value as text, "
            "or point the key at another column"
        )


def not_text(source: object, row: int, name: str, found: str, key: str) -> UserError:
    """The one refusal of a text cell that is no text (a list, an object, a boolean), which
    training and predict share; `row` counts data rows from 1, `key` names the text column."""
    return UserError(
        f"{source}: row {row}: column {shown(name)} ({key}) holds {found}, not text; write the "
        "value as text, or point the key at another column"
    )


def json_cell_text(value: Any, source: object, row: int, name: str, key: str) -> str:
    """A JSON value of a text column as the text training reads (numbers as JSON writes them);
    a list, an object or a boolean is refused as training refuses it."""
    kind = _json_kind(value)
    if kind in ("list", "object", "boolean"):
        raise not_text(source, row, name, f"a JSON {kind}", key)
    return "" if value is None else value if isinstance(value, str) else _as_text(value) or ""


def _is_list_type(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _as_text(value: Any) -> str | None:
    """A JSON value of a mixed-type column as the text the file holds."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value != value:  # NaN: JSON's missing number
        return None
    return json.dumps(value, ensure_ascii=False)


def read_table(
    path: str | Path,
    encoding: str = "utf-8",
    on_bad_lines: Literal["error", "skip", "warn"] = "error",
    columns: UsedColumns | None = None,
) -> ReadResult:
    """Read CSV, TSV, JSONL or Parquet by extension, whole, with errors a user can act on."""
    chunks = TableChunks(path, encoding, on_bad_lines, columns=columns)
    frames = list(chunks)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames)
    return ReadResult(frame.reset_index(drop=True), chunks.bad_lines)


def encoding_warning(
    path: Path, fmt: str, encoding: str, advice: ReadingAdvice = PIPELINE_ADVICE
) -> str | None:
    """A warning for a text table whose encoding reads it without an error but wrongly, None
    otherwise: a UTF-8 file read in another encoding (each accented letter becomes two, `é` as
    `Ã©`), or a file read as latin-1 whose bytes 0x80-0x9F look like cp1252's characters
    (`likely_encoding`): latin-1 reads them as invisible control characters, which cleaning
    removes without a word."""
    codec = codecs.lookup(encoding).name
    if fmt == "parquet" or codec.startswith("utf"):
        return None
    likely = likely_encoding(path)
    if likely == "utf-8":
        return (
            f"{path}: read as {encoding}, but its bytes are UTF-8 text, whose accented letters "
            f"{encoding} reads as two characters each (é as Ã©); "
            + advice.file_encoding.format("utf-8")
        )
    if codec != "iso8859-1" or likely != "cp1252":
        return None
    return (
        f"{path}: read as {encoding}, its bytes 0x80-0x9F are invisible control characters, "
        "which cleaning removes; if they are curly quotes, dashes or the euro sign (a Windows "
        "export), " + advice.file_encoding.format("cp1252")
    )


# the bytes that latin-1 reads as C1 control characters, and cp1252 as punctuation
_C1_BYTE = re.compile(rb"[\x80-\x9f]")


def likely_encoding(path: Path, sample_bytes: int = 16 << 20) -> str:
    """The encoding to suggest for a file: utf-8 when its bytes beyond ASCII are UTF-8 text
    (a file read in another encoding by mistake); else, for a file that is not UTF-8, cp1252
    (Windows' and Excel's) when its bytes 0x80-0x9F are all characters of cp1252 (curly quotes,
    dashes, the euro sign), which latin-1 would read as invisible control characters; latin-1
    otherwise."""
    with _open_bytes(path) as handle:
        sample = handle.read(sample_bytes)
    if not sample.isascii() and _is_utf8(sample):
        return "utf-8"
    if _C1_BYTE.search(sample) is None:
        return "latin-1"
    try:
        sample.decode("cp1252")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut by the sample's end is not a reason to refuse cp1252
        if exc.start < len(sample) - 1:
            return "latin-1"
    return "cp1252"


def _is_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a character cut by the sample's end is not a reason to doubt the rest
        return exc.reason == "unexpected end of data" and exc.end == len(sample)
    return True


def _locate_decode_error(path: Path, encoding: str, chunk_size: int = 1 << 20) -> str:
    """Where the first undecodable byte is, as the file's line and byte offset.

    pandas reports offsets inside its own read buffer, so decode the file again, incrementally.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, line = 0, 1
    with _open_bytes(path) as handle:
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


# --- rows joined by an unmatched quote ------------------------------------------------------

# A quoted field: its opening quote, then anything but a lone quote, then its closing quote if
# the text has one. Doubled quotes inside are the field's own.
_QUOTED_FIELD = re.compile(r'"(?:[^"]|"")*"?')
# A line break as CSV readers take it: CRLF, LF, or a lone CR (old Mac files)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def spans_lines(raw: str) -> bool:
    """Whether a record as written holds a line break before its own."""
    return _LINE_BREAK.search(raw.rstrip("\r\n")) is not None


@dataclass(frozen=True)
class QuoteJoin:
    """A field whose opening quote took in the lines after it: `row` counts data rows from 1,
    `column` counts fields from 0, and `closing_line` is the line where the quote ends."""

    row: int
    column: int
    lines_taken: int
    closing_line: str

    def error(self, source: object, names: Sequence[str]) -> UserError:
        column = shown(names[self.column]) if self.column < len(names) else f"#{self.column + 1}"
        upto = f"up to {shown(self.closing_line)}" if self.closing_line else "to the file's end"
        return UserError(
            f"{source}: row {self.row}: column {column} opens a quote never closed: the "
            f"{self.lines_taken} line(s) after it, {upto}, were read into its text; remove the "
            "quote, or double it"
        )


BYTE_ORDER_MARK = "\ufeff"


def without_byte_order_mark(lines: Iterable[str]) -> Iterator[str]:
    """The lines of a text file as a CSV reader must see them: a byte-order mark (Excel and
    PowerShell write one) taken off the first, or a quoted first name (`"text"`) would keep its
    quotes."""
    iterator = iter(lines)
    first = next(iterator, None)
    if first is not None:
        yield first.removeprefix(BYTE_ORDER_MARK)
        yield from iterator


class RawRecords:
    """The lines of a text file, fed to csv.reader, keeping the raw text of the current record.

    csv.reader pulls exactly the lines a record spans (several when a quoted cell holds line
    breaks), so the lines taken since the last record are that record's text as written, a
    byte-order mark included: the reader is given the first line without it.
    """

    def __init__(self, handle: IO[str]) -> None:
        self._taken: list[str] = []
        self._lines = without_byte_order_mark(self._taking(handle))

    def _taking(self, handle: IO[str]) -> Iterator[str]:
        for line in handle:
            self._taken.append(line)
            yield line

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._lines)

    def take(self) -> str:
        raw = "".join(self._taken)
        self._taken.clear()
        return raw


def quote_join(raw: str, delimiter: str) -> tuple[int, int, str] | None:
    """In one record as written, the quoted field that took in line breaks but is not a
    well-formed quoted field: (its column, the lines it took, the line where it closes, "" if
    it never does); None when there is none.

    A quote that opens a field and is never meant to close makes CSV readers (pandas, the csv
    module) read on, line after line, up to the next quote in the file, and then on to the next
    delimiter. That next quote is almost always another field's opening quote or a quote inside
    a text, so the field does not end where a quoted field ends, at the delimiter or the line
    break. A quoted text of several lines written by any CSV writer always does."""
    position, column, end = 0, 0, len(raw)
    while position < end:
        if raw[position] == '"':
            field = _QUOTED_FIELD.match(raw, position)
            assert field is not None  # the pattern matches any text that starts with a quote
            closed = field.group().endswith('"') and len(field.group()) > 1
            after = field.end()
            position = _unquoted_field(delimiter).match(raw, after).end()  # type: ignore[union-attr]
            # spaces after a closing quote ("...text" ,label) are sloppy but not a join
            if _LINE_BREAK.search(field.group()) and (
                not closed or raw[after:position].strip(" \t")
            ):
                lines = _LINE_BREAK.split(field.group().rstrip("\r\n"))
                start = max(raw.rfind("\n", 0, after), raw.rfind("\r", 0, after)) + 1
                closing = raw[start:after] + _LINE_BREAK.split(raw[after:], maxsplit=1)[0]
                return column, len(lines) - 1, closing if closed else ""
        else:
            position = _unquoted_field(delimiter).match(raw, position).end()  # type: ignore[union-attr]
        if position >= end or raw[position] != delimiter:
            return None
        column += 1
        position += 1
    return None


@functools.cache
def _unquoted_field(delimiter: str) -> re.Pattern[str]:
    """The rest of a field: up to the delimiter or the line break."""
    return re.compile(f"[^{re.escape(delimiter)}\r\n]*")


@dataclass(frozen=True)
class RowLikeText:
    """A record whose quoted text spans lines that each read as a row of the file when quotes
    are taken as characters: what a stray quote leaves when the next quote in the file ends a
    field (an inch mark, `3,The 55",pos`), and, rarely, a note whose lines look like rows.
    `lines`: each line's fields, so read."""

    row: int
    lines: tuple[tuple[str, ...], ...]


# At most this many RowLikeText are kept, and compared with at most this many labels
_ROWLIKE_KEPT = 100
_LABELS_COMPARED = 1000


def _rowlike_text(raw: str, delimiter: str, width: int, row: int) -> RowLikeText | None:
    lines = _LINE_BREAK.split(raw.rstrip("\r\n"))
    fields = [
        next(csv.reader([line], delimiter=delimiter, quoting=csv.QUOTE_NONE), []) for line in lines
    ]
    if all(len(line_fields) == width for line_fields in fields):
        return RowLikeText(row, tuple(tuple(line_fields) for line_fields in fields))
    return None


def _joined_rows_warnings(
    path: Path, found: Sequence[RowLikeText], label_at: int, labels: Collection[str]
) -> list[str]:
    """One warning for the texts of several lines whose every line reads as a row with a label
    of the file's own (`RowLikeText`): most likely rows a stray quote joined, which the quote as
    written cannot tell from a text (`quote_join`)."""
    joined = [
        text
        for text in found
        if all(line[label_at].strip().strip('"') in labels for line in text.lines)
    ]
    if not joined:
        return []
    first = joined[0]
    labels_read = shown_names([line[label_at] for line in first.lines])
    return [
        f"{path}: row {first.row}: a quoted text of {len(first.lines)} lines, each of which reads "
        f"as a row of this file with a label ({labels_read})"
        f"{f', and {len(joined) - 1} more such row(s)' if len(joined) > 1 else ''}; if a quote "
        'in it is a character (an inch mark: 55"), those rows were joined into one: double that '
        "quote, or remove it"
    ]


def first_quote_join(
    handle: IO[str],
    delimiter: str,
    rowlike: list[RowLikeText] | None = None,
    width: int = 0,
) -> QuoteJoin | None:
    """The first record of a delimited text (its header first) with a `quote_join`. With
    `rowlike`, the records of several lines without one that are `RowLikeText` of `width`
    fields are added to it, the first _ROWLIKE_KEPT."""
    lines = RawRecords(handle)
    reader = csv_records(lines, delimiter)
    row = 0
    header_seen = False
    try:
        for fields in reader:
            raw = lines.take()
            # pandas names the rows, and skips blank records before the header and after it
            if is_blank_record(fields) or not header_seen:
                header_seen = header_seen or not is_blank_record(fields)
                continue
            row += 1
            if spans_lines(raw):
                found = quote_join(raw, delimiter)
                if found is not None:
                    return QuoteJoin(row, *found)
                if rowlike is not None and len(rowlike) < _ROWLIKE_KEPT:
                    text = _rowlike_text(raw, delimiter, width, row)
                    if text is not None:
                        rowlike.append(text)
    except csv.Error:  # the table's own reader names what else is wrong
        return None
    return None
