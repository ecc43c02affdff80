"""Eager against `torch.compile` for bertpipe's train step: is compiling worth it on this CPU?

The packaged MiniLM, batches of 16 medical abstracts sorted by length (most fill --max-length),
bertpipe's defaults (bf16 autocast through Accelerate, attention dropout 0, fused AdamW,
clipping, the attention kernel `fit` picks). Three warm-up steps (which include the compile),
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

from bertpipe.batching import Collator
from bertpipe.model import load_classifier
from bertpipe.training import attention_kernel, make_accelerator, optimizer_groups, task_loss

BATCH = 16


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
    model = load_classifier(
        "minilm", len(names), "single_label_classification", names, attention_dropout=0.0
    )
    accelerator = make_accelerator("auto")
    optimizer = torch.optim.AdamW(optimizer_groups(model, 0.01), lr=1e-4, fused=True)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    forward = torch.compile(model) if args.mode == "compile" else model

    def step(batch: dict[str, torch.Tensor]) -> None:
        batch = dict(batch)
        labels = batch.pop("labels")
        batch.pop("index", None)
        with attention_kernel(torch.device("cpu"), batch["input_ids"].shape[1]):
            loss = task_loss(forward(**batch).logits, labels, "multiclass")
            accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

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
