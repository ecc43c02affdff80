"""Eager against `torch.compile` for bertpipe's train step: is compiling worth it on the CPU?

The packaged MiniLM, batches of 16 medical abstracts sorted by length (most fill --max-length),
bertpipe's defaults from the params schema, each step `training.train_step` (bf16 autocast
through Accelerate, attention dropout 0, fused AdamW, clipping, the attention kernel `fit`
picks), on the eager or the compiled module. Three warm-up steps (which include the compile),
then two timed passes over the same --steps batches: the first can still recompile for a new
batch shape, the second is the steady state.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/compile_step.py --max-length 128 --mode eager
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/compile_step.py --max-length 128 --mode compile
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from abstracts import first_abstracts
from transformers import get_linear_schedule_with_warmup

from bertpipe.batching import Collator
from bertpipe.model import load_classifier
from bertpipe.params import Params
from bertpipe.training import make_accelerator, optimizer_groups, train_step

BATCH = Params().batch_size  # bertpipe's default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--mode", choices=["eager", "compile"], default="eager")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    rows = BATCH * (args.steps + 3)
    split, names, tokenizer = first_abstracts(rows, args.max_length)
    collate = Collator(split, tokenizer.pad_token_id)
    order = np.argsort(-split.lengths, kind="stable")
    batches = [collate(order[i : i + BATCH].tolist()) for i in range(0, rows, BATCH)]

    torch.manual_seed(0)
    params = Params()
    model = load_classifier(
        "minilm",
        len(names),
        "single_label_classification",
        names,
        attention_dropout=params.train.attention_dropout,
    )
    accelerator = make_accelerator(params.train.precision)
    optimizer = torch.optim.AdamW(
        optimizer_groups(model, params.train.weight_decay), lr=params.lr, fused=True
    )
    steps = 3 + 2 * args.steps
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(params.train.warmup_ratio * steps), steps
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    # the compiled module shares the parameters: clipping and the optimizer see the same ones
    forward = torch.compile(model) if args.mode == "compile" else model

    def step(batch: dict[str, torch.Tensor]) -> None:
        train_step(forward, batch, optimizer, scheduler, accelerator, params, None, True)

    started = time.perf_counter()
    for batch in batches[:3]:
        step(batch)
    warmup = time.perf_counter() - started
    passes = []
    for _ in range(2):
        started = time.perf_counter()
        for batch in batches[3:]:
            step(batch)
        passes.append(time.perf_counter() - started)
    shapes = sorted({tuple(batch["input_ids"].shape) for batch in batches})
    rates = [BATCH * args.steps / seconds for seconds in passes]
    print(
        f"{args.mode}, max_length {args.max_length}: 3 warm-up steps {warmup:.1f} s; "
        f"{args.steps} steps at {rates[0]:.1f} samples/s (first pass), "
        f"{rates[1]:.1f} (second pass); batch shapes {shapes}"
    )


if __name__ == "__main__":
    main()
