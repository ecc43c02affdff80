"""Stage clean: read data.path, keep text and label, normalise, drop what cannot be learned from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run by path (python stages/x.py): why, in stages/__init__.py
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    import stages  # noqa: F401

from bertpipe.clean import SCRATCH_PREFIX, clean_chunks, used_columns
from bertpipe.errors import run_main
from bertpipe.files import remove_leftovers, remove_scratch, sha256_file, write_json
from bertpipe.params import load_params
from bertpipe.tables import TableChunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--output", required=True, help="cleaned table (.parquet)")
    parser.add_argument("--report", required=True, help="cleaning report (.json)")
    args = parser.parse_args()
    # what a run killed mid-way left: its scratch chunks and half-written outputs
    remove_scratch(Path(args.output).parent, SCRATCH_PREFIX)
    remove_leftovers(args.output, args.report)

    params = load_params(args.params)
    data = params.data
    group = (params.split.group_column,) if params.split.group_column else ()
    chunks = TableChunks(
        data.path, data.encoding, data.on_bad_lines, data.chunk_rows, used_columns(data, group)
    )
    report = clean_chunks(
        chunks, Path(args.output), data, params.clean, params.task, data.path, group
    )
    for warning in [*chunks.warnings, *report.get("warnings", [])]:
        print(f"warning: {warning}", file=sys.stderr)
    if chunks.bad_lines and data.on_bad_lines == "warn":
        print(f"warning: {data.path}: skipped {chunks.bad_lines} malformed row(s)", file=sys.stderr)

    report = {**report, "bad_lines": chunks.bad_lines, "source_sha256": sha256_file(data.path)}
    write_json(args.report, report)
    print(
        f"clean: {report['rows_in']} rows in, {report['rows_out']} out, dropped {report['dropped']}"
    )


if __name__ == "__main__":
    run_main(main)
