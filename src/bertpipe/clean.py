"""Cleaning: keep the text and the label, normalise the text, drop what cannot be learned from."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bertpipe.errors import UserError
from bertpipe.labels import (
    check_label_count,
    is_missing,
    parse_multilabel,
    parse_number,
    sorted_label_names,
)
from bertpipe.params import CleanParams, DataParams

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_WHITESPACE = re.compile(r"\s+")

# PHI patterns, applied in this order: the broad ones (URLs, emails) first so that their digits
# are not taken for phone numbers or identifiers.
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
PHI_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # the local part is at most 64 characters (RFC 5321); unbounded, a long run of word characters
    # and hyphens without an @ took quadratic time (15 s for 100,000 characters of "12-12-...")
    ("[EMAIL]", re.compile(r"\b[\w.+-]{1,64}@[\w-]+(?:\.[\w-]+)+\b")),
    ("[URL]", re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)),
    (
        "[DATE]",
        re.compile(
            r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
            r"|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}"
            rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{2,4}}"
            rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
            rf"|{_MONTH}\s+\d{{4}}"
            r"|\d{1,2}/\d{4})\b",
            re.IGNORECASE,
        ),
    ),
    # social security numbers before phone numbers, whose digits they would otherwise feed
    ("[ID]", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    (
        "[PHONE]",
        re.compile(
            r"(?<![\w])(?:\+?\d{1,2}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}\b"
        ),
    ),
    # record numbers: six or more digits in a row (MRN-00482913), or account-like 12-3456789
    ("[ID]", re.compile(r"\b(?:[A-Z]{2,5}[-#:]?\s?)?(?:\d{6,}|\d{2}-\d{7})\b")),
)


def normalize_text(text: str) -> str:
    """NFKC, control characters to spaces, runs of whitespace to one space, trimmed."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def mask_phi(text: str) -> str:
    """Replace emails, URLs, dates, phone numbers and record-like numbers with placeholders."""
    for placeholder, pattern in PHI_PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


@dataclass(frozen=True)
class CleanResult:
    frame: pd.DataFrame  # columns: text, label, then the carried columns
    report: dict[str, Any]


def _column_keys(data: DataParams, extra_columns: tuple[str, ...]) -> dict[str, str]:
    """Each needed column, in order, and the params key that names it (for the error message).

    The clean stage passes split.group_column as the one extra column.
    """
    roles = [
        *((column, "data.text_column") for column in data.text_columns),
        (data.label_column, "data.label_column"),
        *((column, "data.carry_columns") for column in data.carry_columns),
        *((column, "split.group_column") for column in extra_columns),
    ]
    keys: dict[str, str] = {}
    for column, key in roles:
        keys.setdefault(column, key)  # a column named twice is reported under its first role
    return keys


def _check_columns(frame: pd.DataFrame, needed: dict[str, str], path: str) -> None:
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        if len(frame.columns) == 1:
            # one column holding the delimiter: the fix is the file, not params.yaml
            hint = (
                " (one column only: is the file delimited by something else, like ';' or tabs?); "
                "save it comma-separated, or tab-separated as .tsv"
            )
        else:
            keys = ", ".join(dict.fromkeys(needed[column] for column in missing))
            hint = f"; set {keys} in params.yaml to columns it has"
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has: {found}{hint}"
        )


def _clean_text_cell(value: Any, mask: bool) -> str:
    if is_missing(value):
        return ""
    text = normalize_text(str(value))
    return mask_phi(text) if mask else text


def _parse_labels(labels: pd.Series, task: str, separator: str, column: str) -> list[Any]:
    parsed: list[Any] = []
    for row_number, value in zip(labels.index, labels, strict=True):
        if is_missing(value):
            parsed.append(None)
        elif task == "multilabel":
            names = parse_multilabel(value, separator)
            # an explicit "[]" is a row where no label applies; anything else empty is missing
            parsed.append(names if names or str(value).strip() == "[]" else None)
        elif task == "regression":
            number = parse_number(value)
            if number is None:
                raise UserError(
                    f"row {row_number + 1}: label {value!r} in column '{column}' is not a number; "
                    "regression needs numeric labels: fix that cell, or set task: multiclass "
                    "if the labels are classes"
                )
            parsed.append(number)
        else:
            parsed.append(normalize_text(str(value)))
    return parsed


def clean_frame(
    frame: pd.DataFrame,
    data: DataParams,
    clean: CleanParams,
    task: str,
    source: str = "data",
    extra_columns: tuple[str, ...] = (),
) -> CleanResult:
    """Select, normalise and filter the rows; the report counts every row dropped, by reason."""
    text_columns = data.text_columns
    carry = list(dict.fromkeys([*data.carry_columns, *extra_columns]))
    reserved = sorted({"text", "label", "row_id"} & set(carry) - set(text_columns[:1]))
    if reserved:
        raise UserError(
            f"data.carry_columns: {', '.join(reserved)} would clash with the columns bertpipe "
            "writes (text, label, row_id); rename the column in the data"
        )
    _check_columns(frame, _column_keys(data, extra_columns), source)
    rows_in = len(frame)
    frame = frame.reset_index(drop=True)

    texts = [
        frame[column].map(lambda value: _clean_text_cell(value, clean.mask_phi))
        for column in text_columns
    ]
    labels = _parse_labels(frame[data.label_column], task, data.label_separator, data.label_column)

    out = (
        pd.DataFrame({"text": texts[0]})
        if len(texts) == 1
        else pd.DataFrame({"text": [list(parts) for parts in zip(*texts, strict=True)]})
    )
    out["label"] = pd.Series(labels, dtype=object)
    for column in carry:
        out[column] = frame[column].to_numpy()

    lengths = sum(text.str.len() for text in texts)
    empty = lengths == 0
    too_short = ~empty & (lengths < clean.min_chars)
    no_label = out["label"].map(lambda value: value is None) & ~empty & ~too_short
    keep = ~(empty | too_short | no_label)
    out = out[keep]

    # Duplicates by text: the same label twice is one example; different labels is noise we drop.
    text_key = out["text"].map(
        lambda value: value if isinstance(value, str) else "\x1f".join(value)
    )
    label_key = out["label"].map(
        lambda value: "\x1f".join(value) if isinstance(value, list) else repr(value)
    )
    labels_per_text = label_key.groupby(text_key).transform("nunique")
    conflicting = labels_per_text > 1
    duplicate = ~conflicting & text_key.duplicated(keep="first")
    out = out[~conflicting & ~duplicate].reset_index(drop=True)

    check_label_count(sorted_label_names(out["label"], task), task, data.label_column)
    report = {
        "rows_in": int(rows_in),
        "rows_out": len(out),
        "dropped": {
            "empty_text": int(empty.sum()),
            "too_short": int(too_short.sum()),
            "missing_label": int(no_label.sum()),
            "duplicate": int(duplicate.sum()),
            "conflicting_duplicate": int(conflicting.sum()),
        },
    }
    return CleanResult(out, report)
