"""Stage tokenize: the model's own fast tokenizer, truncated at max_length, no padding stored."""

from __future__ import annotations

import sys

# stages/ holds tokenize.py, which would shadow the standard library's tokenize (that inspect and
# linecache import) while this folder is first on the import path; a stage imports nothing from it.
if sys.path and sys.path[0].endswith("stages"):
    del sys.path[0]

import argparse

import pandas as pd

from bertpipe.errors import run_main
from bertpipe.io import atomic_path, write_json
from bertpipe.labels import sorted_label_names
from bertpipe.model import load_tokenizer
from bertpipe.params import load_params
from bertpipe.split import SPLIT_NAMES
from bertpipe.tokens import tokenize_split, write_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--input-dir", required=True, help="folder with train/val/test.parquet")
    parser.add_argument("--output-dir", required=True, help="folder for the tokenized splits")
    args = parser.parse_args()

    params = load_params(args.params)
    tokenizer = load_tokenizer(params.model)
    frames = {name: pd.read_parquet(f"{args.input_dir}/{name}.parquet") for name in SPLIT_NAMES}
    label_names = sorted_label_names(frames["train"]["label"], params.task)

    with atomic_path(args.output_dir) as tmp:
        tmp.mkdir()
        for name, frame in frames.items():
            split = tokenize_split(
                frame["text"].tolist(),
                frame["label"].tolist(),
                frame["row_id"].to_numpy(),
                tokenizer,
                params.max_length,
                label_names,
                params.task,
                pair=params.data.text_pair,
            )
            write_split(split, tmp / f"{name}.parquet")
            truncated = int((split.lengths >= params.max_length).sum())
            print(
                f"tokenize: {name} {len(split)} rows, {truncated} truncated at {params.max_length}"
            )
        write_json(
            tmp / "labels.json",
            {
                "task": params.task,
                "label_names": label_names,
                "model": params.model,
            },
        )


if __name__ == "__main__":
    run_main(main)
