"""Predictions on new text with a trained model folder, cleaned exactly as training cleaned.

`annotate_table` adds prediction columns to a user's table and passes every input cell through
unchanged: CSV/TSV rows and JSON lines are copied as the raw text they were read from, with the
new cells appended, and Parquet batches keep their Arrow columns as they are.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bertpipe.artifacts import model_folder_lock, read_training_params
from bertpipe.decision import Decision, read_decision
from bertpipe.errors import UserError
from bertpipe.inference import default_device, predict_logits, resolve_precision
from bertpipe.model import load_trained
from bertpipe.tables import TableChunks, table_format
from bertpipe.text import clean_text
from bertpipe.tokens import (
    SequenceLayout,
    TokenizedSplit,
    encode_rows,
    layout_from_training_params,
)

PREDICTED_LABEL = "predicted_label"
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

    @classmethod
    def load(cls, model_dir: str | Path) -> Predictor:
        # under the read lock: a train stage replacing the folder meanwhile cannot mix two models
        with model_folder_lock(model_dir):
            model, tokenizer = load_trained(model_dir)
            trained = read_training_params(model_dir)
            task = trained.get("task") or (
                "multilabel"
                if model.config.problem_type == "multi_label_classification"
                else "regression"
                if model.config.problem_type == "regression"
                else "multiclass"
            )
            decision = read_decision(model_dir, task, trained, len(model.config.id2label))
        id2label = model.config.id2label
        names = [] if task == "regression" else [id2label[i] for i in range(len(id2label))]
        return cls(
            model=model.to(default_device()),
            tokenizer=tokenizer,
            task=task,
            label_names=trained.get("label_names", names),
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
        self, texts: Sequence[Any], batch_size: int = 64, progress: bool = False
    ) -> list[dict[str, Any]]:
        """One result per text, in input order: {"label": ..., "scores": {...}}, or EMPTY for a
        text with nothing left after cleaning (the clean stage drops those rows, so the model
        never learned what to say of them)."""
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
            self.tokenizer.pad_token_id or 0,
            resolve_precision(self.precision, device),
            device,
            progress=progress,
            pooling=self.pooling,
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


def _output_format(output: Path) -> str:
    """The output's table format; the reader's message about its extension names --output."""
    try:
        return table_format(output)
    except UserError as error:
        raise UserError(f"--output {error}") from None


def check_output_path(output: Path, input_path: Path | None) -> str:
    """The output's table format, once the path is known to be writable and to harm nothing.

    Runs before any model is loaded, so a typo costs no time and writes nothing.
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
            raise UserError(
                f"--output {output}: write the input's format ({input_format}), so that every "
                f"input value passes through unchanged: e.g. "
                f"{output.with_suffix(input_path.suffix)}"
            )
    return fmt


def check_input_table(input_path: Path, text_columns: list[str], encoding: str) -> None:
    """The input file and its header's text columns, checked before the model loads, so that a
    wrong file costs no time. JSON lines name their keys on every line: each is checked as read."""
    fmt = TableChunks(input_path, encoding).format  # checks the file: exists, type, not binary
    if fmt == "parquet":
        try:
            names = pq.read_schema(input_path).names
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserError(f"{input_path}: not a readable Parquet file ({exc})") from None
    elif fmt in ("csv", "tsv"):
        try:
            with open(input_path, encoding=encoding, newline="") as source:
                header = next(csv.reader(source, delimiter="," if fmt == "csv" else "\t"), None)
        except (UnicodeDecodeError, csv.Error):
            return  # annotate_table names the problem with its row
        if not header:
            return
        names = [header[0].removeprefix("\ufeff"), *header[1:]]
    else:
        return
    _missing_columns(input_path, names, text_columns)


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
    fmt = TableChunks(input_path, encoding).format  # checks the file: exists, type, not binary
    if fmt == "parquet":
        return _annotate_parquet(predictor, input_path, output, text_columns, prefix, batch_size)
    try:
        # the output is written in the input's encoding, so the copied rows keep their bytes
        with (
            open(input_path, encoding=encoding, newline="") as source,
            open(output, "w", encoding=encoding, newline="") as sink,
        ):
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
        raise UserError(
            f"{input_path}: not valid {encoding} text ({exc.reason}); give the file's "
            "encoding with --encoding, e.g. latin-1"
        ) from None
    except LookupError:
        raise UserError(f"--encoding: unknown encoding '{encoding}'") from None
    except csv.Error as exc:
        raise UserError(f"{input_path}: malformed {fmt} ({exc}); export the table again") from None
    if rows == 0:
        raise UserError(f"{input_path}: the file has no rows; nothing to predict")
    return rows


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


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _model_input(parts: list[str]) -> Any:
    return parts[0] if len(parts) == 1 else parts


def _predict_cells(predictor: Predictor, inputs: list[Any], batch_size: int) -> list[list[Any]]:
    return [predictor.output_cells(r) for r in predictor.predict(inputs, batch_size)]


class _RawRecords:
    """The lines of a text file, fed to csv.reader, keeping the raw text of the current record.

    csv.reader pulls exactly the lines a record spans (several when a quoted cell holds line
    breaks), so the lines taken since the last record are that record's bytes as written.
    """

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self._taken: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._handle)
        self._taken.append(line)
        return line

    def take(self) -> str:
        raw = "".join(self._taken)
        self._taken.clear()
        return raw


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
    # pandas reads cells of any length; the csv module's default limit (128 KiB) would refuse a
    # long note that training accepted
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    lines = _RawRecords(source)
    reader = csv.reader(lines, delimiter=delimiter)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="")

    def cells(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    header = next(reader, None)
    if not header:
        raise UserError(f"{input_path}: the file has no header; nothing to predict")
    # the byte-order mark stays in the copied header, but is not part of the first name
    names = [header[0].removeprefix("\ufeff"), *header[1:]]
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
        if not fields:  # a blank line: no row, copied as it is
            flush()
            sink.write(raw)
            continue
        rows += 1
        if len(fields) > len(header):
            raise UserError(
                f"{input_path}: row {rows} has {len(fields)} fields, the header {len(header)}; "
                "quote texts that contain the delimiter"
            )
        body, terminator = _split_terminator(raw)
        # a short row gets its missing cells, empty, so the new cells land in their columns
        pending.append((body + delimiter * (len(header) - len(fields)), terminator))
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
        if rows == 0:
            _missing_columns(input_path, list(record), text_columns)
        _refuse_clashes(input_path, list(record), added)
        rows += 1
        pending.append((body[:-1], not record, line[len(body) :]))
        inputs.append(_model_input([_text(record.get(name)) for name in text_columns]))
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
            columns = [batch.column(name).to_pylist() for name in text_columns]
            rows_of_parts = zip(*columns, strict=True)
            inputs = [_model_input([_text(value) for value in parts]) for parts in rows_of_parts]
            new_columns = zip(*_predict_cells(predictor, inputs, batch_size), strict=True)
            arrays = [pa.array(cells, kind) for cells, kind in zip(new_columns, types, strict=True)]
            writer.write_batch(pa.RecordBatch.from_arrays([*batch.columns, *arrays], schema=schema))
            rows += batch.num_rows
    if rows == 0:
        raise UserError(f"{input_path}: the file has no rows; nothing to predict")
    return rows
