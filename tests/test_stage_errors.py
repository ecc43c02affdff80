"""Bad input ends in one clear line on stderr, a non-zero exit, no traceback, no partial output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import env, set_params


def run_clean(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "stages/clean.py",
            "--output",
            "out/clean.parquet",
            "--report",
            "out/r.json",
        ],
        cwd=project,
        env=env(),
        capture_output=True,
        text=True,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (None, ["data/bad.csv", "not found", "data.path"]),
        ("", ["the file is empty"]),
        ("text,label\n", ["header but no rows"]),
        ("body,category\nhello,a\nworld,b\n", ["missing column(s) text, label", "body, category"]),
        ("text,label\nhello there,a\nanother note,a\n", ["only 'a'", "at least two classes"]),
        ("text;label\nhello;a\nworld;b\n", ["missing column", "text;label", "delimited"]),
    ],
    ids=[
        "missing-file",
        "empty-file",
        "header-only",
        "missing-columns",
        "single-class",
        "semicolon",
    ],
)
def test_clean_refuses_bad_data(
    project_copy: Path, content: str | None, fragments: list[str]
) -> None:
    if content is not None:
        (project_copy / "data" / "bad.csv").write_text(content)
    set_params(project_copy, **{"data.path": "data/bad.csv", "data.carry_columns": []})
    set_params(project_copy, **{"split.group_column": None})
    result = run_clean(project_copy)
    assert_one_line_error(result, *fragments)
    assert not (project_copy / "out").exists() or not any((project_copy / "out").iterdir())


def test_bad_params_fail_before_any_work(project_copy: Path) -> None:
    set_params(project_copy, lr="fast")
    result = run_clean(project_copy)
    assert_one_line_error(result, "params.yaml", "lr:", "fast")
    assert not (project_copy / "out").exists()


def test_debug_mode_shows_the_traceback(project_copy: Path) -> None:
    set_params(project_copy, **{"data.path": "data/absent.csv"})
    result = subprocess.run(
        [sys.executable, "stages/clean.py", "--output", "o.parquet", "--report", "r.json"],
        cwd=project_copy,
        env={**env(), "BERTPIPE_DEBUG": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "UserError" in result.stderr
