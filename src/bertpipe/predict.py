"""Predictions on new text with a trained model folder, cleaned exactly as training cleaned.

`annotate_table` adds prediction columns to a user's table and passes every input cell through
unchanged: CSV/TSV rows and JSON lines are copied as the raw text they were read from, with the
new cells appended, and Parquet batches keep their Arrow columns as they are.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bertpipe.artifacts import check_model_folder, model_folder_lock
from bertpipe.decision import Decision, read_decision
from bertpipe.errors import UserError
from bertpipe.inference import default_device, inference_precision, predict_logits
from bertpipe.model import load_trained, pad_token_id
from bertpipe.tables import (
    QuoteJoin,
    RawRecords,
    ReadingAdvice,
    TableChunks,
    check_header_delimiter,
    csv_records,
    is_blank_record,
    is_gzipped,
    json_cell_text,
    likely_encoding,
    not_text,
    open_text,
    quote_join,
    read_header,
    shown,
    spans_lines,
    table_extension,
    table_format,
    without_byte_order_mark,
)
from bertpipe.text import clean_text
from bertpipe.tokens import (
    SequenceLayout,
    TokenizedSplit,
    encode_rows,
    layout_from_training_params,
)

PREDICTED_LABEL = "predicted_label"
# what names the text columns in predict's messages (the training's data.text_column is the
# default, but the user may pick others)
TEXT_KEY = "--text-column"
# the result of a text that is empty after cleaning: no label, no scores, and why
EMPTY: dict[str, Any] = {"label": None, "error": "empty"}
# Rows predicted at a time: memory stays bounded by this, whatever the size of the input.
CHUNK_ROWS = 2048


@dataclass
class Predictor:
    model: Any
    tokenizer: Any
    task: str
    label_names: list[str]
    layout: SequenceLayout  # truncation or windows, as the model's validation split had them
    decision: Decision  # the saved temperatures and thresholds (bertpipe.decision)
    mask_phi: bool
    text_pair: bool
    precision: str
    label_separator: str = "|"
    pooling: str = "mean"
    # progress of every predict call: a bar on a terminal, lines in a log (bertpipe.progress)
    show_progress: bool = False

    @classmethod
    def load(cls, model_dir: str | Path) -> Predictor:
        # under the read lock: a train stage replacing the folder meanwhile cannot mix two models
        with model_folder_lock(model_dir):
            # a folder the train stage did not write is refused before any weight is read
            trained = check_model_folder(model_dir)
            model, tokenizer = load_trained(model_dir)
            task = trained["task"]
            decision = read_decision(model_dir, task, trained, len(model.config.id2label))
        return cls(
            model=model.to(default_device()),
            tokenizer=tokenizer,
            task=task,
            label_names=trained["label_names"],
            layout=layout_from_training_params(trained, tokenizer.model_max_length),
            decision=decision,
            mask_phi=bool(trained.get("clean", {}).get("mask_phi", False)),
            text_pair=bool(trained.get("data", {}).get("text_pair", False)),
            precision=trained.get("train", {}).get("precision", "auto"),
            label_separator=trained.get("data", {}).get("label_separator", "|"),
            pooling=trained.get("windows", {}).get("pooling", "mean"),
        )

    def clean(self, text: str) -> str:
        return clean_text(text, self.mask_phi)

    def predict(
        self, texts: Sequence[Any], batch_size: int = 64, progress: bool | None = None
    ) -> list[dict[str, Any]]:
        """One result per text, in input order: {"label": ..., "scores": {...}}, or EMPTY for a
        text with nothing left after cleaning (the clean stage drops those rows, so the model
        never learned what to say of them). `progress` None: `show_progress`."""
        progress = self.show_progress if progress is None else progress
        cleaned = [
            self.clean(t) if isinstance(t, str) else [self.clean(part) for part in t] for t in texts
        ]
        filled = [
            i for i, text in enumerate(cleaned) if any(text if isinstance(text, list) else [text])
        ]
        results: list[dict[str, Any]] = [dict(EMPTY) for _ in texts]
        if filled:
            scored = self._predict_cleaned([cleaned[i] for i in filled], batch_size, progress)
            for index, result in zip(filled, scored, strict=True):
                results[index] = result
        return results

    def _predict_cleaned(
        self, cleaned: list[Any], batch_size: int, progress: bool
    ) -> list[dict[str, Any]]:
        values, offsets, types, text_index = encode_rows(
            cleaned, self.tokenizer, self.layout, self.text_pair
        )
        rows = len(offsets) - 1
        split = TokenizedSplit(
            values, offsets, types, np.zeros(rows), np.arange(rows), text_index=text_index
        )
        device = next(self.model.parameters()).device
        logits = predict_logits(
            self.model,
            split,
            batch_size,
            pad_token_id(self.tokenizer),
            inference_precision(self.precision, device),
            device,
            progress=progress,
            pooling=self.pooling,
            batch_size_key="--batch-size",
        )
        scores = self.decision.scores(logits)
        predicted = self.decision.predict(scores)
        return [self._result(scores[i], predicted[i]) for i in range(len(cleaned))]

    def _result(self, scores: Any, predicted: Any) -> dict[str, Any]:
        if self.task == "regression":
            return {"label": round(float(predicted), 6), "scores": {}}
        named = {name: round(float(s), 6) for name, s in zip(self.label_names, scores, strict=True)}
        if self.task == "multilabel":
            label: Any = [name for name, on in zip(self.label_names, predicted, strict=True) if on]
        else:
            label = self.label_names[int(predicted)]
        return {"label": label, "scores": named}

    def output_columns(self, prefix: str = "") -> list[str]:
        """The columns a prediction adds to a table: the label, then one score per label."""
        return [prefix + PREDICTED_LABEL, *(f"{prefix}score_{name}" for name in self.label_names)]

    def output_cells(self, result: dict[str, Any]) -> list[Any]:
        """The values of `output_columns` for one result of `predict`: all empty for EMPTY."""
        if "error" in result:
            return [None] * len(self.output_columns())
        label = result["label"]
        if isinstance(label, list):
            label = self.label_separator.join(label)
        return [label, *(result["scores"][name] for name in self.label_names)]


# predict's options, in the reader's messages
PREDICT_ADVICE = ReadingAdvice(
    wide_encoding="pass --encoding utf-16",
    file_encoding="give the file's encoding with --encoding, e.g. {}",
    bad_lines="",
)


def _output_format(output: Path) -> str:
    """The output's table format; the reader's message about its extension names --output."""
    try:
        return table_format(output)
    except UserError as error:
        raise UserError(f"--output {error}") from None


def check_output_path(
    output: Path,
    input_path: Path | None,
    prefix: str = "",
    encoding: str = "utf-8",
    overwrite: bool = False,
) -> str:
    """The output's table format, once the path is known to be writable and to harm nothing.

    The format comes from the name, as for inputs, and a name ending in .gz is written gzipped.
    A symbolic link is refused, dangling or not: replacing the link and writing through it
    would each surprise someone, so the user names the file itself. An existing file is
    replaced only if it is an earlier prediction (it has this run's `predicted_label` column),
    or with `overwrite`: a typo must not replace the training data. Runs before any model is
    loaded, so a typo costs no time and writes nothing.
    """
    if output.is_dir():
        raise UserError(
            f"--output {output}: is a folder; name a file (the folder is left as it is)"
        )
    fmt = _output_format(output)
    folder = output.parent
    if not folder.is_dir():
        raise UserError(f"--output {output}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--output {output}: the folder {folder} is not writable")
    if input_path is not None:
        if output.exists() and input_path.exists() and os.path.samefile(output, input_path):
            raise UserError(
                f"--output {output}: is the --input file; name another file, the input is kept"
            )
        input_format = table_format(input_path)
        if fmt != input_format:
            stem = output.name[: len(output.name) - len(table_extension(output))]
            extension = table_extension(input_path).removesuffix(".gz")
            if is_gzipped(output) and input_format != "parquet":
                extension += ".gz"  # the output's compression is the user's choice
            raise UserError(
                f"--output {output}: write the input's format ({input_format}), so that every "
                f"input value passes through unchanged: e.g. "
                f"{output.with_name(stem + extension)}"
            )
    if output.is_symlink():
        raise UserError(
            f"--output {output}: is a symbolic link (to {os.readlink(output)}); name the file "
            "to write itself, the link is left as it is"
        )
    if output.exists() and output.stat().st_size and not overwrite:  # an empty file holds nothing
        names = _existing_columns(output, fmt, encoding)
        if names is None or not is_earlier_prediction(names, prefix):
            raise UserError(
                f"--output {output}: exists and is not an earlier prediction (its last columns "
                f"are not {prefix + PREDICTED_LABEL} and {prefix}score_*); name another file, or "
                "pass --overwrite to replace it"
            )
    return fmt


def is_earlier_prediction(names: list[str], prefix: str = "") -> bool:
    """Whether a table's columns end as a prediction's do (Predictor.output_columns, whatever
    the labels were): `predicted_label`, then only `score_*` columns. A column of that name
    alone is no proof: a user's own table may hold one, with their notes after it."""
    label = prefix + PREDICTED_LABEL
    if label not in names:
        return False
    after = names[len(names) - names[::-1].index(label) :]
    return all(name.startswith(f"{prefix}score_") for name in after)


def _existing_columns(path: Path, fmt: str, encoding: str) -> list[str] | None:
    """The column names of a table already at `path`; None when it cannot be read as one."""
    try:
        if fmt == "parquet":
            return list(pq.read_schema(path).names)
        if fmt == "jsonl":
            with open_text(path, encoding) as source:
                return _first_json_keys(path, source)
        return read_header(path, "," if fmt == "csv" else "\t", encoding)
    except (UserError, OSError, UnicodeError, csv.Error, pa.ArrowException, EOFError):
        return None


def _no_rows(input_path: Path) -> UserError:
    return UserError(f"{input_path}: the file has no rows; nothing to predict")


def _no_header(input_path: Path) -> UserError:
    return UserError(f"{input_path}: the file has no header; nothing to predict")


def check_input_table(input_path: Path, text_columns: list[str], encoding: str) -> None:
    """The input file, its first row and its text columns, checked before the model loads, so
    that a wrong file costs no time. Gzipped text tables are read as the clean stage reads them.
    Later rows are checked as they are read."""
    if input_path.stat().st_size == 0:
        raise (
            _no_header(input_path)
            if table_format(input_path) in ("csv", "tsv")
            else _no_rows(input_path)
        )
    # checks the file: type, not binary, gzip
    fmt = TableChunks(input_path, encoding, advice=PREDICT_ADVICE).format
    if fmt == "parquet":
        try:
            schema = pq.read_schema(input_path)
            rows = pq.ParquetFile(input_path).metadata.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserError(f"{input_path}: not a readable Parquet file ({exc})") from None
        _missing_columns(input_path, schema.names, text_columns)
        if rows == 0:
            raise _no_rows(input_path)
        return
    try:
        with open_text(input_path, encoding) as source:
            if fmt == "jsonl":
                # a record may leave out a key (its text is then missing, as in training);
                # a key none of the first chunk's records has is a wrong --text-column
                names = _first_json_keys(input_path, source, records=CHUNK_ROWS)
            else:
                lines = without_byte_order_mark(source)
                reader = csv_records(lines, "," if fmt == "csv" else "\t")
                names = next((fields for fields in reader if not is_blank_record(fields)), None)
                if not names:
                    raise _no_header(input_path)
                check_header_delimiter(input_path, names, fmt, text_columns)
                if all(is_blank_record(fields) for fields in reader):
                    _missing_columns(input_path, names, text_columns)
                    raise _no_rows(input_path)
    except UnicodeDecodeError as exc:
        raise _not_encoded(input_path, encoding, exc) from None
    except csv.Error:
        return  # annotate_table names the problem with its row
    _missing_columns(input_path, names, text_columns)


def _first_json_keys(input_path: Path, source: TextIO, records: int = 1) -> list[str]:
    """The keys of the first `records` JSON objects of the file, in order of first appearance
    (blank lines skipped)."""
    keys: dict[str, None] = {}
    seen = 0
    for number, line in enumerate(without_byte_order_mark(source), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{input_path}: line {number} is not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise UserError(f"{input_path}: line {number} is not a JSON object")
        keys.update(dict.fromkeys(record))
        seen += 1
        if seen == records:
            break
    if not seen:
        raise _no_rows(input_path)
    return list(keys)


def _not_encoded(input_path: Path, encoding: str, exc: UnicodeDecodeError) -> UserError:
    return UserError(
        f"{input_path}: not valid {encoding} text ({exc.reason}); give the file's "
        f"encoding with --encoding, e.g. {likely_encoding(input_path)}"
    )


def open_output(path: Path, encoding: str) -> TextIO:
    """A text table to write: gzipped when its name ends in .gz, as a reader would expect."""
    if is_gzipped(path):
        return io.TextIOWrapper(gzip.open(path, "wb"), encoding=encoding, newline="")
    return open(path, "w", encoding=encoding, newline="")


def annotate_table(
    predictor: Predictor,
    input_path: Path,
    output: Path,
    text_columns: list[str],
    prefix: str = "",
    batch_size: int = 32,
    encoding: str = "utf-8",
) -> int:
    """Write `input_path` to `output` (same format) with the prediction columns added.

    Reads and predicts CHUNK_ROWS rows at a time. Returns the number of rows predicted.
    """
    # checks the file: exists, type, not binary
    fmt = TableChunks(input_path, encoding, advice=PREDICT_ADVICE).format
    if fmt == "parquet":
        return _annotate_parquet(predictor, input_path, output, text_columns, prefix, batch_size)
    _check_encodable(predictor, prefix, encoding)
    try:
        # the output is written in the input's encoding, so the copied rows keep their bytes
        with open_text(input_path, encoding) as source, open_output(output, encoding) as sink:
            if fmt == "jsonl":
                rows = _annotate_jsonl(
                    predictor, input_path, source, sink, text_columns, prefix, batch_size
                )
            else:
                delimiter = "," if fmt == "csv" else "\t"
                rows = _annotate_delimited(
                    predictor, input_path, source, sink, delimiter, text_columns, prefix, batch_size
                )
    except UnicodeDecodeError as exc:
        raise _not_encoded(input_path, encoding, exc) from None
    except LookupError:
        raise UserError(f"--encoding: unknown encoding '{encoding}'") from None
    except csv.Error as exc:
        raise UserError(f"{input_path}: malformed {fmt} ({exc}); export the table again") from None
    if rows == 0:
        raise _no_rows(input_path)
    return rows


def _check_encodable(predictor: Predictor, prefix: str, encoding: str) -> None:
    """Refuse, before any row is read, labels or column names that the output's encoding (the
    input's, so that copied rows keep their bytes) cannot write."""
    written = [*predictor.output_columns(prefix), *predictor.label_names]
    if predictor.task == "multilabel":
        written.append(predictor.label_separator)
    unwritable = []
    for name in written:
        try:
            name.encode(encoding)
        except UnicodeEncodeError:
            unwritable.append(name)
    if unwritable:
        raise UserError(
            f"--encoding {encoding}: the output is written in the input's encoding, which "
            f"cannot hold {', '.join(shown(name) for name in unwritable[:3])}"
            f"{' and more' if len(unwritable) > 3 else ''}; convert the input to UTF-8 "
            f"(iconv -f {encoding} -t utf-8) and pass --encoding utf-8"
        )


def _refuse_clashes(input_path: Path, existing: Sequence[str], added: list[str]) -> None:
    clashing = [name for name in added if name in existing]
    if clashing:
        raise UserError(
            f"{input_path}: already has column(s) {', '.join(clashing)}, which predict adds; "
            "rename them, or give --prefix (e.g. --prefix pred_) to name the new columns"
        )


def _missing_columns(input_path: Path, columns: Sequence[str], wanted: list[str]) -> None:
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise UserError(
            f"{input_path}: missing column(s) {', '.join(missing)}; the file has: "
            f"{', '.join(map(str, columns))}; pick one with --text-column"
        )


def _model_input(parts: list[str]) -> Any:
    return parts[0] if len(parts) == 1 else parts


def _predict_cells(predictor: Predictor, inputs: list[Any], batch_size: int) -> list[list[Any]]:
    return [predictor.output_cells(r) for r in predictor.predict(inputs, batch_size)]


def _split_terminator(raw: str) -> tuple[str, str]:
    # A line break inside a quoted last cell sits before its closing quote, so it stays in body.
    body = raw.rstrip("\r\n")
    return body, raw[len(body) :]


def _annotate_delimited(
    predictor: Predictor,
    input_path: Path,
    source: TextIO,
    sink: TextIO,
    delimiter: str,
    text_columns: list[str],
    prefix: str,
    batch_size: int,
) -> int:
    lines = RawRecords(source)
    reader = csv_records(lines, delimiter)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="")

    def cells(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    # blank lines before the header are copied as they are, as pandas skips them
    names = next(reader, None)
    while names is not None and is_blank_record(names):
        sink.write(lines.take())
        names = next(reader, None)
    if not names:
        raise UserError(f"{input_path}: the file has no header; nothing to predict")
    # the byte-order mark stays in the copied header, but is not part of the first name
    _missing_columns(input_path, names, text_columns)
    duplicated = [name for name in text_columns if names.count(name) > 1]
    if duplicated:
        raise UserError(f"{input_path}: column(s) {', '.join(duplicated)} appear twice; rename one")
    added = predictor.output_columns(prefix)
    _refuse_clashes(input_path, names, added)
    body, terminator = _split_terminator(lines.take())
    sink.write(body + delimiter + cells(added) + terminator)

    positions = [names.index(name) for name in text_columns]
    pending: list[tuple[str, str]] = []  # (the row's text up to the new cells, its line break)
    inputs: list[Any] = []
    rows = 0

    def flush() -> None:
        for (start, end), new in zip(
            pending, _predict_cells(predictor, inputs, batch_size), strict=True
        ):
            sink.write(start + delimiter + cells(new) + end)
        pending.clear()
        inputs.clear()

    for fields in reader:
        raw = lines.take()
        if is_blank_record(fields):  # no row to pandas: copied as it is
            flush()
            sink.write(raw)
            continue
        rows += 1
        if len(fields) > len(names):
            raise UserError(
                f"{input_path}: row {rows} has {len(fields)} fields, the header {len(names)}; "
                "quote texts that contain the delimiter"
            )
        body, terminator = _split_terminator(raw)
        joined = quote_join(raw, delimiter) if spans_lines(raw) else None
        if joined is not None:
            raise QuoteJoin(rows, *joined).error(input_path, names)
        # a short row gets its missing cells, empty, so the new cells land in their columns
        pending.append((body + delimiter * (len(names) - len(fields)), terminator))
        inputs.append(_model_input([fields[i] if i < len(fields) else "" for i in positions]))
        if len(pending) == CHUNK_ROWS:
            flush()
    flush()
    return rows


def _annotate_jsonl(
    predictor: Predictor,
    input_path: Path,
    source: TextIO,
    sink: TextIO,
    text_columns: list[str],
    prefix: str,
    batch_size: int,
) -> int:
    added = predictor.output_columns(prefix)
    pending: list[tuple[str, bool, str]] = []  # (the line up to its '}', object empty?, break)
    inputs: list[Any] = []
    rows = 0

    def flush() -> None:
        for (start, empty, end), new in zip(
            pending, _predict_cells(predictor, inputs, batch_size), strict=True
        ):
            members = ", ".join(
                f"{json.dumps(name, ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}"
                for name, value in zip(added, new, strict=True)
            )
            sink.write(f"{start}{'' if empty else ', '}{members}}}{end}")
        pending.clear()
        inputs.clear()

    for number, line in enumerate(source, start=1):
        body = line.rstrip()
        if not body.strip():  # a blank line: no row, copied as it is
            flush()
            sink.write(line)
            continue
        try:
            record = json.loads(body.removeprefix("\ufeff") if number == 1 else body)
        except ValueError as exc:
            raise UserError(f"{input_path}: line {number} is not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise UserError(f"{input_path}: line {number} is not a JSON object")
        _refuse_clashes(input_path, list(record), added)
        rows += 1
        pending.append((body[:-1], not record, line[len(body) :]))
        inputs.append(
            _model_input(
                [
                    json_cell_text(record.get(name), input_path, rows, name, TEXT_KEY)
                    for name in text_columns
                ]
            )
        )
        if len(pending) == CHUNK_ROWS:
            flush()
    flush()
    return rows


def _annotate_parquet(
    predictor: Predictor,
    input_path: Path,
    output: Path,
    text_columns: list[str],
    prefix: str,
    batch_size: int,
) -> int:
    try:
        table_file = pq.ParquetFile(input_path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{input_path}: not a readable Parquet file ({exc})") from None
    schema = table_file.schema_arrow
    _missing_columns(input_path, schema.names, text_columns)
    added = predictor.output_columns(prefix)
    _refuse_clashes(input_path, schema.names, added)
    label_type = pa.float64() if predictor.task == "regression" else pa.string()
    types = [label_type, *(pa.float64() for _ in added[1:])]
    for name, kind in zip(added, types, strict=True):
        schema = schema.append(pa.field(name, kind))
    rows = 0
    with pq.ParquetWriter(output, schema) as writer:
        for batch in table_file.iter_batches(batch_size=CHUNK_ROWS):
            columns = [
                _parquet_texts(batch.column(name), input_path, name, rows) for name in text_columns
            ]
            inputs = [_model_input(list(parts)) for parts in zip(*columns, strict=True)]
            new_columns = zip(*_predict_cells(predictor, inputs, batch_size), strict=True)
            arrays = [pa.array(cells, kind) for cells, kind in zip(new_columns, types, strict=True)]
            writer.write_batch(pa.RecordBatch.from_arrays([*batch.columns, *arrays], schema=schema))
            rows += batch.num_rows
    if rows == 0:
        raise _no_rows(input_path)
    return rows


def _parquet_texts(array: pa.Array, input_path: Path, name: str, first_row: int) -> list[str]:
    """A Parquet text column as the texts training reads: a list, struct or boolean column is
    refused with training's words, UTF-8 bytes are decoded, other values are their text."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        array, kind = array.dictionary_decode(), kind.value_type
    if pa.types.is_nested(kind) or pa.types.is_boolean(kind):
        row = next((row for row, valid in enumerate(array.is_valid()) if valid.as_py()), 0)
        raise not_text(input_path, first_row + row + 1, name, str(kind), TEXT_KEY)
    texts = []
    for row, value in enumerate(array.to_pylist()):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(
                    f"{input_path}: row {first_row + row + 1}: column {name!r} holds bytes "
                    "that are not UTF-8 text; store the column as UTF-8 strings"
                ) from None
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        # NaN in a float column is a missing text, as clean and the stdout path read it
        texts.append("" if missing else value if isinstance(value, str) else str(value))
    return texts
