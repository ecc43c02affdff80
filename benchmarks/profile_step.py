"""Where one bertpipe train step goes: torch.profiler over a few steps of `fit`'s code path.

The packaged MiniLM, batch 16 of medical abstracts truncated at --max-length (most fill it),
bertpipe's fast settings (bf16 autocast through Accelerate, train.attention_dropout 0, fused
AdamW, clipping at 1.0). One warm-up step, then --steps profiled steps; prints the time per
step of each phase and the ops with the most self CPU time. `--sdpa-backend math|flash` forces
one attention kernel; the default leaves PyTorch's choice (flash, without attention dropout),
which is not what `fit` does at 160 tokens or fewer (see training.attention_kernel).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/profile_step.py --max-length 128
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile, record_function

from bertpipe.batching import Collator
from bertpipe.model import load_classifier, load_tokenizer
from bertpipe.params import TrainParams
from bertpipe.tokens import tokenize_split
from bertpipe.training import make_accelerator, optimizer_groups, task_loss

DATA = Path(__file__).resolve().parents[2] / "shared/data/medical_abstracts/medical_abstracts.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument(
        "--sdpa-backend",
        choices=["default", "math", "flash"],
        default="default",
        help="force one SDPA kernel (default: PyTorch's choice)",
    )
    args = parser.parse_args()

    frame = pd.read_csv(DATA).head(args.batch_size * (args.steps + 1))
    names = sorted(frame["condition_label"].astype(str).unique())
    tokenizer = load_tokenizer("minilm")
    split = tokenize_split(
        frame["medical_abstract"].tolist(),
        frame["condition_label"].astype(str).tolist(),
        np.arange(len(frame)),
        tokenizer,
        args.max_length,
        names,
        "multiclass",
    )
    collate = Collator(split, tokenizer.pad_token_id)
    batches = [
        collate(list(range(start, start + args.batch_size)))
        for start in range(0, len(frame), args.batch_size)
    ]

    torch.manual_seed(0)
    defaults = TrainParams(attention_dropout=0.0)
    model = load_classifier(
        "minilm",
        len(names),
        "single_label_classification",
        names,
        attention_dropout=defaults.attention_dropout,
    )
    accelerator = make_accelerator("auto")
    optimizer = torch.optim.AdamW(
        optimizer_groups(model, defaults.weight_decay), lr=1e-4, fused=True
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    def step(batch: dict[str, torch.Tensor]) -> None:
        labels = batch.pop("labels")
        with record_function("phase: forward + loss"):
            loss = task_loss(model(**batch).logits, labels, "multiclass")
        with record_function("phase: backward"):
            accelerator.backward(loss)
        with record_function("phase: clip"):
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
        with record_function("phase: optimizer"):
            optimizer.step()
        with record_function("phase: zero_grad"):
            optimizer.zero_grad(set_to_none=True)

    backends = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION}
    kernel = (
        sdpa_kernel(backends[args.sdpa_backend])
        if args.sdpa_backend in backends
        else contextlib.nullcontext()
    )
    with kernel:
        step(dict(batches[0]))  # warm-up
        started = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in batches[1:]:
                step(dict(batch))
    wall = (time.perf_counter() - started) / args.steps
    print(
        f"max_length {args.max_length}, batch {args.batch_size}, mixed precision "
        f"{accelerator.mixed_precision}, SDPA {args.sdpa_backend}: "
        f"{wall * 1000:.0f} ms/step under the profiler, "
        f"{args.batch_size / wall:.1f} samples/s"
    )
    events = prof.key_averages()
    for event in events:
        if event.key.startswith("phase: "):
            print(f"  {event.key[7:]:<16} {event.cpu_time_total / 1000 / args.steps:8.1f} ms/step")
    total = sum(event.self_cpu_time_total for event in events)
    print(f"\ntop {args.top} ops by self CPU time (both threads' time summed by the profiler):")
    for event in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]:
        share = event.self_cpu_time_total / total
        per_step = event.self_cpu_time_total / 1000 / args.steps
        print(f"  {event.key:<45} {share:6.1%} {per_step:8.1f} ms/step  x{event.count}")


if __name__ == "__main__":
    main()
