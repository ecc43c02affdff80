"""Stage tokenize: the model's own fast tokenizer; texts fitted to max_length by truncation or
windows (bertpipe.tokens.SequenceLayout); no padding stored."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run by path (python stages/x.py): why, in stages/__init__.py
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    import stages  # noqa: F401

import pyarrow.parquet as pq

from bertpipe.errors import UserError, run_main
from bertpipe.files import atomic_path, remove_leftovers, write_json
from bertpipe.labels import sorted_label_names
from bertpipe.model import check_base_model, load_tokenizer
from bertpipe.params import load_params
from bertpipe.split import SPLIT_NAMES
from bertpipe.tokens import sequence_layout, tokenize_parquet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--input-dir", required=True, help="folder with train/val/test.parquet")
    parser.add_argument("--output-dir", required=True, help="folder for the tokenized splits")
    args = parser.parse_args()
    remove_leftovers(args.output_dir)  # what a run killed mid-write left

    params = load_params(args.params)
    sources = {name: Path(args.input_dir) / f"{name}.parquet" for name in SPLIT_NAMES}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise UserError(f"{', '.join(missing)}: no split table; run the split stage first")
    check_base_model(params.model, params.max_length)
    tokenizer = load_tokenizer(params.model)
    # the label order comes from train; only its label column is read
    train_labels = pq.read_table(sources["train"], columns=["label"]).column("label").to_pylist()
    label_names = sorted_label_names(train_labels, params.task)

    with atomic_path(args.output_dir, replace_folder=True) as tmp:
        tmp.mkdir()
        for name, source in sources.items():
            layout = sequence_layout(params, name)
            summary = tokenize_parquet(
                source,
                tmp / name,
                tokenizer,
                layout,
                label_names,
                params.task,
                pair=params.data.text_pair,
                chunk_rows=params.data.chunk_rows,
            )
            if layout.stride is not None:
                cut = f"{summary.truncated} split into {summary.sequences} windows in all"
            else:
                cut = f"{summary.truncated} {layout.truncation}-truncated at {params.max_length}"
            print(f"tokenize: {name} {summary.rows} rows, {cut}")
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
