"""Every user-facing error is one short line, and docs/errors.md lists every one the code raises.

The list and the code are matched by the message's words: each `UserError(...)` built in src/
and stages/ (subclasses included) has literal text, and its longest literal run (the words
between two `{...}` values) must be quoted in docs/errors.md.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bertpipe.errors import MAX_MESSAGE_CHARS, MAX_QUOTED_CHARS, UserError, one_line

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "errors.md"
SOURCES = sorted([*(REPO / "src" / "bertpipe").glob("*.py"), *(REPO / "stages").glob("*.py")])
# a literal run shorter than this ("; ", ": ") says nothing a reader could find in the doc
MIN_WORDS = 3
# raise sites whose words come from elsewhere (pydantic, a library's exception), by
# "path::function", with the words their row in docs/errors.md quotes instead
COMPOSED = {
    "src/bertpipe/params.py::parse_params": "Input should be",
    # params.train_option_conflict's words, for params built without validation
    "src/bertpipe/training.py::check_params": "is not a metric of task",
    "src/bertpipe/split.py::assign_splits": "cannot split",
    "src/bertpipe/model.py::_load_failed": "model: cannot load",
    "src/bertpipe/predict.py::_output_format": "--output <path>: unsupported file type",
    # the advice is the pipeline's or predict's (ReadingAdvice)
    "src/bertpipe/tables.py::__iter__": "set data.encoding in params.yaml to the file",
}


@dataclass(frozen=True)
class RaiseSite:
    where: str  # path:line
    function: str  # path::function, the key of COMPOSED
    literal: str  # the literal run with the most words


def _error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """UserError and every class that derives from it (UnusableInput, ...)."""
    names = {"UserError"}
    grew = True
    while grew:
        grew = False
        for tree in trees.values():
            for node in ast.walk(tree):
                bases = (
                    {getattr(base, "id", getattr(base, "attr", "")) for base in node.bases}
                    if (isinstance(node, ast.ClassDef))
                    else set()
                )
                if isinstance(node, ast.ClassDef) and bases & names and node.name not in names:
                    names.add(node.name)
                    grew = True
    return names


def _literal_runs(node: ast.expr) -> list[str]:
    """The literal pieces of a message expression: a string, an f-string, or a sum of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        runs, current = [], ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                current += str(part.value)
            else:
                runs.append(current)
                current = ""
        return [*runs, current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal_runs(node.left), _literal_runs(node.right)
        if left and right:  # "a" + "b" is one run
            return [*left[:-1], left[-1] + right[0], *right[1:]]
        return [*left, *right]
    return []


def raise_sites() -> list[RaiseSite]:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in SOURCES}
    classes = _error_classes(trees)
    sites = []
    for path, tree in trees.items():
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            # every UserError built: raised here, or returned for the caller to raise
            for call in ast.walk(function):
                if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) in classes):
                    continue
                runs = [
                    " ".join(run.split()).strip(" ;:,.'\"()") for run in _literal_runs(call.args[0])
                ]
                literal = max(runs, key=lambda run: (len(run.split()), len(run)), default="")
                name = path.relative_to(REPO)
                sites.append(
                    RaiseSite(f"{name}:{call.lineno}", f"{name}::{function.name}", literal)
                )
    # a raise inside a nested function is seen from both functions: keep the innermost
    return sorted({site.where: site for site in sites}.values(), key=lambda site: site.where)


def _doc_text() -> str:
    """docs/errors.md as one line of plain words: no backticks, no table escapes."""
    return " ".join(DOC.read_text(encoding="utf-8").replace("\\|", "|").replace("`", "").split())


SITES = raise_sites()


def test_the_scan_finds_the_raise_sites() -> None:
    # a guard against a scan that silently finds nothing
    assert len(SITES) >= 30, SITES


@pytest.mark.parametrize("site", SITES, ids=[site.where for site in SITES])
def test_every_raised_message_is_listed_in_docs_errors_md(site: RaiseSite) -> None:
    if site.function in COMPOSED:
        assert COMPOSED[site.function] in _doc_text(), f"{site.where}: {COMPOSED[site.function]}"
        return
    assert len(site.literal.split()) >= MIN_WORDS, (
        f"{site.where}: the message has no literal run of {MIN_WORDS}+ words to find it by in "
        "docs/errors.md; write its words at the raise site (an f-string), not in a variable, "
        "or add the site to COMPOSED with the words its row quotes"
    )
    assert site.literal.replace("`", "") in _doc_text(), (
        f"{site.where}: docs/errors.md has no row quoting {site.literal!r}; add a row "
        "`| case | message | what to do |` with the message in backticks to the section of the "
        "stage or command that raises it"
    )


# --- one line, at most 300 characters ---------------------------------------------------------


def test_a_message_becomes_one_line() -> None:
    assert str(UserError("data.csv: bad\n  row\t3\r\nfix it")) == "data.csv: bad row 3 fix it"


def test_a_long_quoted_value_is_cut_in_the_middle() -> None:
    # `label_column: text` once quoted every text as a class: 6,048 characters in one line
    message = str(UserError(f"column 'label' has only {'x' * 6000!r}; check data.label_column"))
    quoted = re.search(r"'[^']*'", message.split("only ")[1])
    assert quoted is not None and len(quoted.group()) == MAX_QUOTED_CHARS
    assert "…" in quoted.group()
    assert message.endswith("; check data.label_column")


def test_a_long_message_keeps_its_head_and_its_advice() -> None:
    names = ", ".join(f"column_{i}" for i in range(200))
    message = str(UserError(f"data.csv: missing column(s) text; the file has: {names}; fix it"))
    assert len(message) == MAX_MESSAGE_CHARS
    assert message.startswith("data.csv: missing column(s) text")
    assert message.endswith("; fix it")


def test_apostrophes_in_words_are_not_quotes() -> None:
    message = "the model's limit is 512 " + "word " * 20 + "and the file's header says 'text'"
    assert one_line(message) == " ".join(message.split())


def test_short_quoted_values_are_kept_whole() -> None:
    message = "unknown key 'epoch' (did you mean 'epochs'?): fix or remove it"
    assert str(UserError(message)) == message
