"""Label parsing and encoding for the four tasks: binary, multiclass, multilabel, regression."""

from __future__ import annotations

import ast
import io
import json
import math
import re
import tokenize
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from bertpipe.errors import UserError


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def parse_multilabel(value: Any, separator: str) -> list[str]:
    """A cell holding several labels: 'a|b', a JSON list '["a", "b"]', or a Python list as
    pandas writes one to CSV "['a', 'b']". Sorted, no repeats."""
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [str(item) for item in value]
    else:
        text = str(value).strip()
        if text.startswith("["):
            decoded = _list_literal(text)
            items = [str(item) for item in decoded] if decoded is not None else [text]
        else:
            items = text.split(separator)
    return sorted({item.strip() for item in items if item.strip()})


def _list_literal(text: str) -> list[Any] | None:
    """A JSON list, or a list of plain values as Python (`['a', 'b']`) or NumPy (`['a' 'b']`)
    prints one; None for anything else. Read token by token, never run: each string or number
    is one label (Python itself would join `'a' 'b'` into one string)."""
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError:
        return _printed_list(text)
    if not isinstance(decoded, list) or any(isinstance(item, (list, dict)) for item in decoded):
        return None
    return decoded


def _printed_list(text: str) -> list[Any] | None:
    """The values of a one-level list of strings and numbers as printed by Python or NumPy."""
    try:
        tokens = [
            token
            for token in tokenize.generate_tokens(io.StringIO(text).readline)
            if token.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, SyntaxError):
        return None
    if len(tokens) < 2 or (tokens[0].string, tokens[-1].string) != ("[", "]"):
        return None
    values: list[Any] = []
    sign = ""
    for token in tokens[1:-1]:
        if token.type == tokenize.NUMBER or (token.type == tokenize.STRING and not sign):
            try:  # an f-string is a STRING token too, and no literal
                values.append(ast.literal_eval(sign + token.string))
            except (ValueError, SyntaxError):
                return None
            sign = ""
        elif token.string == "-" and not sign:
            sign = "-"
        elif token.string != ",":  # brackets, parentheses, names, calls: not a list of labels
            return None
    return values if not sign else None


# A number as data files write one: ASCII digits, a point, an exponent. Python's float() also
# takes "1_000" and other scripts' digits ("٣"), which no spreadsheet reads as numbers.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def parse_number(value: Any) -> float | None:
    """A finite number, or None for text, NaN and infinities."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip()
        if not _NUMBER.fullmatch(text):
            return None
        number = float(text)
    return number if math.isfinite(number) else None


def _sort_key(name: str) -> tuple[int, float, str]:
    # numeric labels in numeric order (2 before 10), then the rest alphabetically
    number = parse_number(name)
    # the name breaks ties between equal numbers ("1", "01", "1.0") so the order never varies
    return (0, number, name) if number is not None else (1, 0.0, name)


def sorted_label_names(labels: Iterable[Any], task: str) -> list[str]:
    """The deterministic label order saved as config.id2label; empty for regression."""
    if task == "regression":
        return []
    names: set[str] = set()
    for label in labels:
        if task == "multilabel":
            names.update(label)
        else:
            names.add(str(label))
    return sorted(names, key=_sort_key)


def check_label_count(names: Sequence[str], task: str, column: str) -> None:
    if task == "regression":
        return
    if len(names) < 2 and task != "multilabel":
        found = f"only '{names[0]}'" if names else "no labels"
        raise UserError(
            f"column '{column}' has {found} after cleaning; {task} classification needs "
            "at least two classes: add rows of another class, or check data.label_column"
        )
    if task == "multilabel" and not names:
        raise UserError(f"column '{column}' has no labels after cleaning")
    if task == "binary" and len(names) != 2:
        raise UserError(
            f"task is binary but column '{column}' has {len(names)} classes "
            f"({', '.join(names[:6])}); set task: multiclass"
        )


# A classification table of this many rows or more is refused when more than half its rows
# are classes of one row each, which cannot be both learnt and tested.
_MIN_ROWS_FOR_CLASS_SHARE = 20


def check_classes_repeat(rows_per_class: Mapping[str, int], task: str, column: str) -> None:
    """Refuse a label column whose values are mostly unique: an id, a date or a free text
    picked as the label, or numbers meant for regression. A long tail of rare classes beside
    large ones passes."""
    rows = sum(rows_per_class.values())
    if task not in ("binary", "multiclass") or rows < _MIN_ROWS_FOR_CLASS_SHARE:
        return
    single = sum(1 for count in rows_per_class.values() if count == 1)
    if single > rows / 2:
        raise UserError(
            f"column '{column}' has {len(rows_per_class):,} distinct labels in {rows:,} rows, "
            f"{single:,} of them on one row only, too few to learn and test; is it the label "
            "(not an id or a text)? Set data.label_column, or task: regression for numbers"
        )


# Label cells that exports write for a missing value (pandas' "nan", Excel's "#N/A"): kept as a
# class of their own, with a warning. Words that are often real classes ("none", "-", "?": no
# finding, unknown) are not among them.
_MISSING_SPELLINGS = {"na", "n/a", "#n/a", "nan", "null"}
# A whole number written as a float ("1.0"), as pandas exports a column with an empty cell
_WHOLE_AS_FLOAT = re.compile(r"(-?(?:[1-9]\d*|0))\.0")
# Numbers whose spelling carries meaning, a leading zero or a trailing one past ".0" ("00",
# "250.00"): the labels are codes (ICD, zip codes), and "250" and "250.0" are two of them
_CODE_LIKE = re.compile(r"-?0\d+(?:\.\d*)?|-?\d+\.\d+0")


def _spelling_key(name: str, codes: bool) -> str:
    """What two spellings of one label share: case, spaces, Unicode's ways of writing one
    character (`é` as one code point or two, a full-width letter) and invisible format characters
    (a zero-width space pasted from a web page) aside, and a whole number's ".0" unless the
    labels are codes."""
    visible = "".join(
        char for char in unicodedata.normalize("NFKC", name) if unicodedata.category(char) != "Cf"
    )
    text = " ".join(visible.split()).casefold()
    whole = None if codes else _WHOLE_AS_FLOAT.fullmatch(text)
    return whole.group(1) if whole else text


def spelled_alike(names: Iterable[str]) -> list[list[str]]:
    """The names that are spellings of one value (`_spelling_key`), in groups of two or more."""
    names = sorted({str(name) for name in names})
    codes = any(_CODE_LIKE.fullmatch(name.strip()) for name in names)
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(_spelling_key(name, codes), []).append(name)
    return [spellings for spellings in by_key.values() if len(spellings) > 1]


def shown_spellings(alike: Sequence[Sequence[str]], shown: int = 3) -> str:
    """Groups of `spelled_alike` for a message: the first `shown`, each as 'a' and 'A'."""
    groups = "; ".join(
        " and ".join(_shown_label(name) for name in group) for group in alike[:shown]
    )
    return groups + ("; ..." if len(alike) > shown else "")


def _shown_label(name: str) -> str:
    """A label quoted; escaped where Unicode writes it in a form that looks like another (`é` as
    `e` and an accent, a zero-width space), so that two spellings shown side by side differ."""
    looks_plain = unicodedata.is_normalized("NFC", name) and not any(
        unicodedata.category(char) == "Cf" for char in name
    )
    return repr(name) if looks_plain else ascii(name)


def label_warnings(names: Iterable[str], task: str, column: str) -> list[str]:
    """Warnings about label names that are probably not the classes they make: spellings of
    one label (`billing` and `BILLING`, `1` and `1.0`), and cells that spell a missing value.
    None for regression, whose labels are numbers."""
    if task == "regression":
        return []
    names = sorted({str(name) for name in names})
    alike = spelled_alike(names)
    warnings = []
    if alike:
        warnings.append(
            f"column '{column}': {len(alike)} label(s) spelled in several ways are separate "
            f"classes ({shown_spellings(alike)}); write each label one way if they are one"
        )
    missing = [name for name in names if name.strip().casefold() in _MISSING_SPELLINGS]
    if missing:
        warnings.append(
            f"column '{column}': label(s) {', '.join(repr(name) for name in missing)} look like "
            "a missing value but are classes of their own; leave such cells empty to drop the rows"
        )
    combined = _combined_labels(names)
    if combined:
        mark, examples = combined
        fix = (
            f"set data.label_separator: '{mark}'"
            if task == "multilabel"
            else f"set task: multilabel and data.label_separator: '{mark}'"
        )
        warnings.append(
            f"column '{column}': label(s) {', '.join(repr(name) for name in examples[:3])} join "
            f"other labels with '{mark}' and are classes of their own; if a row may have "
            f"several labels, {fix}"
        )
    return warnings


# Marks that people separate several labels of one row with.
_LABEL_MARKS = (";", ",", "|", "/", "+")


def _combined_labels(names: Sequence[str]) -> tuple[str, list[str]] | None:
    """A mark and the labels that join two or more other labels with it (`a;b` beside `a` and
    `b`), or None. Labels whose parts are not labels too (`cardiology, general`) are left."""
    known = {name.strip() for name in names}
    for mark in _LABEL_MARKS:
        examples = [
            name
            for name in names
            if mark in name
            and all(part.strip() in known for part in name.split(mark))
            and len(name.split(mark)) > 1
        ]
        if examples:
            return mark, examples
    return None


def check_label_spread(values: Iterable[float], column: str) -> None:
    """Regression needs labels that vary: on one value r2, pearson and spearman are undefined
    and the model can learn nothing but that value. Refused as a single class is."""
    distinct = sorted(set(values))
    if len(distinct) < 2:
        found = f"only the value {distinct[0]:g}" if distinct else "no values"
        raise UserError(
            f"column '{column}' has {found} after cleaning; regression needs labels that vary "
            "(r2 and the correlations are undefined on one value): add rows with other values, "
            "or check data.label_column"
        )


def encode_labels(labels: Sequence[Any], names: Sequence[str], task: str) -> np.ndarray:
    """(n,) int64 class ids; (n, num_labels) float32 multi-hot; or (n,) float32 targets."""
    if task == "regression":
        return np.asarray(labels, dtype=np.float32)
    index = {name: i for i, name in enumerate(names)}
    if task == "multilabel":
        encoded = np.zeros((len(labels), len(names)), dtype=np.float32)
        for row, label_set in enumerate(labels):
            for name in label_set:
                encoded[row, index[name]] = 1.0
        return encoded
    return np.asarray([index[str(label)] for label in labels], dtype=np.int64)


def num_model_outputs(names: Sequence[str], task: str) -> int:
    return 1 if task == "regression" else len(names)


def problem_type(task: str) -> str:
    return {
        "binary": "single_label_classification",
        "multiclass": "single_label_classification",
        "multilabel": "multi_label_classification",
        "regression": "regression",
    }[task]
