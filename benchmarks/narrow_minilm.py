"""MiniLM's graph at negligible width: its config (6 layers, 12 heads, its vocabulary and
tokenizer) with hidden size 48 and intermediate size 96, randomly initialised, written to a folder.

A training step of it launches the same modules and ops as MiniLM's and does almost no
arithmetic, so its time is the host's: Python, the dispatcher, autocast's casts, the loop. That
is what bounds a GPU step of MiniLM at small batches (../shared/FACTS.md: 62 ms a step for about
1 ms of arithmetic on an H200), and it can be measured on any CPU (BENCHMARKS.md, "Host time per
step").

    .venv/bin/python benchmarks/narrow_minilm.py /tmp/narrow_minilm
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoTokenizer, BertConfig, BertModel

from bertpipe.model import resolve_model

NARROW_HIDDEN_SIZE, NARROW_INTERMEDIATE_SIZE = 48, 96  # 12 heads of 4


def write_narrow_minilm(folder: Path) -> None:
    source = resolve_model("minilm")
    config = BertConfig.from_pretrained(source)
    config.hidden_size, config.intermediate_size = NARROW_HIDDEN_SIZE, NARROW_INTERMEDIATE_SIZE
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path)
    write_narrow_minilm(parser.parse_args().folder)


if __name__ == "__main__":
    main()
