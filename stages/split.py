"""Stage split: a seeded, stratified (and optionally group-aware) train/val/test split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run by path (python stages/x.py): why, in stages/__init__.py
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    import stages  # noqa: F401

from bertpipe.errors import UserError, run_main
from bertpipe.files import atomic_path, remove_leftovers
from bertpipe.params import load_params
from bertpipe.split import SPLIT_NAMES, split_parquet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--input", required=True, help="cleaned table (.parquet)")
    parser.add_argument("--output-dir", required=True, help="folder for train/val/test.parquet")
    args = parser.parse_args()
    remove_leftovers(args.output_dir)  # what a run killed mid-write left

    params = load_params(args.params)
    source = Path(args.input)
    if not source.is_file():
        raise UserError(f"{source}: no cleaned table; run the clean stage first (dvc repro)")
    with atomic_path(args.output_dir, replace_folder=True) as tmp:
        tmp.mkdir()
        result, sizes = split_parquet(
            source, tmp, params.split, params.task, params.seed, params.data.chunk_rows
        )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    counts = ", ".join(f"{name} {sizes[name]}" for name in SPLIT_NAMES)
    print(f"split: {counts} ({'stratified' if result.stratified else 'unstratified'})")


if __name__ == "__main__":
    run_main(main)
