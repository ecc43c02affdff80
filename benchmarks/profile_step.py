"""Where one bertpipe train step goes: torch.profiler over a few calls of `training.train_step`,
the step `fit` takes.

The packaged MiniLM, batch 16 of medical abstracts truncated at --max-length (most fill it),
bertpipe's defaults from the params schema (bf16 autocast through Accelerate where the CPU has
it, train.attention_dropout 0, fused AdamW, clipping, AdamW with linear warmup and decay, the
attention kernel `fit` picks for the batch's length: training.attention_kernel). One warm-up
step, then --steps profiled steps; prints the time per step of each phase (train_step's
`record_function` labels) and the ops with the most self CPU time.

`--inference` profiles `predict_logits`'s forward pass instead (eval mode, no grad, bf16
autocast, batch 32 by default), and gives each matmul op's achieved TFLOP/s from the
profiler's FLOP counts: how close the GEMMs run to the machine's peak, and how much time is
not GEMM at all.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/profile_step.py --max-length 128
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/profile_step.py --max-length 128 --inference

--device cuda (the default where torch sees a GPU) runs on the GPU: the batches go to the
model's device, and the profiler records CUDA kernels too (their times are in the tables' CPU
columns only as launch time: read the CUDA totals printed under them).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from abstracts import DATA_DIR, first_abstracts
from contestants import DEVICES, bertpipe_accelerator, resolve_device
from torch.profiler import ProfilerActivity, profile
from transformers import get_linear_schedule_with_warmup

from bertpipe.batching import Collator
from bertpipe.errors import run_main
from bertpipe.inference import autocast, resolve_precision
from bertpipe.model import load_classifier, pad_token_id, takes_boolean_mask
from bertpipe.params import Params
from bertpipe.training import optimizer_groups, train_step


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The collated batch on the model's device (the Collator builds it on the CPU)."""
    return {name: tensor.to(device) for name, tensor in batch.items()}


def activities(device: torch.device) -> list[ProfilerActivity]:
    if device.type == "cuda":
        return [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    return [ProfilerActivity.CPU]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def print_cuda_total(events: Any, device: torch.device, steps: int) -> None:
    if device.type == "cuda":
        busy = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1000 / steps
        print(f"\nGPU kernels: {busy:.1f} ms/step busy in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="bertpipe's batch_size (train) or evaluate.batch_size (inference)",
    )
    parser.add_argument("--inference", action="store_true", help="profile the eval forward pass")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", choices=DEVICES, default=None, help="default: cuda if any")
    parser.add_argument("--model", default="minilm", help="minilm, or a folder holding it")
    parser.add_argument(
        "--data", type=Path, default=DATA_DIR, help="medical_abstracts.csv's folder"
    )
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    device = resolve_device(args.device)
    defaults = Params()
    if args.batch_size is None:
        args.batch_size = defaults.evaluate.batch_size if args.inference else defaults.batch_size

    rows = args.batch_size * (args.steps + 1)
    split, names, tokenizer = first_abstracts(rows, args.max_length, args.model, args.data)
    torch.manual_seed(0)
    params = defaults.model_copy(update={"batch_size": args.batch_size})
    model = load_classifier(
        args.model,
        len(names),
        "single_label_classification",
        names,
        attention_dropout=params.train.attention_dropout,
    )
    # the batches as fit and predict make them on this device (pad_batch)
    boolean_mask = takes_boolean_mask(model, device.type)
    collate = Collator(split, pad_token_id(tokenizer), True, boolean_mask)
    batches = [
        collate(list(range(start, start + args.batch_size)))
        for start in range(0, rows, args.batch_size)
    ]
    if args.inference:
        # predict_logits takes the bare model (no Accelerate wrapper) and autocasts itself
        precision = resolve_precision(params.train.precision, device)
        model.to(device)
        batches = [to_device(batch, device) for batch in batches]
        profile_inference(model, batches, precision, device, args)
        return
    accelerator = bertpipe_accelerator(params.train.precision, device)
    optimizer = torch.optim.AdamW(
        optimizer_groups(model, params.train.weight_decay), lr=params.lr, fused=True
    )
    # as fit's schedule over one epoch of these batches
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(params.train.warmup_ratio * len(batches)), len(batches)
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    batches = [to_device(batch, accelerator.device) for batch in batches]

    def step(batch: dict[str, torch.Tensor]) -> None:
        train_step(model, batch, optimizer, scheduler, accelerator, params, None, True)

    step(batches[0])  # warm-up
    _sync(device)
    started = time.perf_counter()
    with profile(activities=activities(device)) as prof:
        for batch in batches[1:]:
            step(batch)
        _sync(device)
    wall = (time.perf_counter() - started) / args.steps
    print(
        f"{device.type}, max_length {args.max_length}, batch {args.batch_size}, mixed precision "
        f"{accelerator.mixed_precision}: "
        f"{wall * 1000:.0f} ms/step under the profiler, "
        f"{args.batch_size / wall:.1f} samples/s"
    )
    events = prof.key_averages()
    for event in events:
        if event.key.startswith("phase: "):
            print(f"  {event.key[7:]:<16} {event.cpu_time_total / 1000 / args.steps:8.1f} ms/step")
    total = sum(event.self_cpu_time_total for event in events)
    print(f"\ntop {args.top} ops by self CPU time (the calling thread's; sums to the wall time):")
    for event in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]:
        share = event.self_cpu_time_total / total
        per_step = event.self_cpu_time_total / 1000 / args.steps
        print(f"  {event.key:<45} {share:6.1%} {per_step:8.1f} ms/step  x{event.count}")
    print_cuda_total(events, device, args.steps)


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm")


def matmul_seconds(event: Any, device: torch.device) -> float:
    """The time a matmul op computes: on the CPU its self time; on CUDA its kernels' time (its
    CPU time there is only the launch)."""
    if device.type == "cuda":
        return getattr(event, "device_time_total", 0) / 1e6 or float("nan")
    return event.self_cpu_time_total / 1e6


def profile_inference(
    model: torch.nn.Module,
    batches: list[dict[str, torch.Tensor]],
    precision: str,
    device: torch.device,
    args: Any,
) -> None:
    """The forward pass as `predict_logits` runs it, with the achieved rate of each matmul op."""
    model.eval()

    def forward(batch: dict[str, torch.Tensor]) -> None:
        batch = {k: v for k, v in batch.items() if k != "labels"}
        with torch.no_grad(), autocast(device, precision):
            model(**batch)

    forward(batches[0])  # warm-up
    _sync(device)
    started = time.perf_counter()
    with profile(activities=activities(device), with_flops=True) as prof:
        for batch in batches[1:]:
            forward(batch)
        _sync(device)
    wall = (time.perf_counter() - started) / args.steps
    print(
        f"inference on {device.type}, max_length {args.max_length}, "
        f"batch {args.batch_size}, {precision}: "
        f"{wall * 1000:.0f} ms/batch under the profiler, {args.batch_size / wall:.1f} examples/s"
    )
    events = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    # An op's self CPU time is the wall time of the thread that called it (its intra-op threads
    # work inside that span): the ops' self times add up to about the wall time per batch.
    print(f"\ntop {args.top} ops by self CPU time (the calling thread's; sums to the wall time):")
    for event in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]:
        share = event.self_cpu_time_total / total
        per_batch = event.self_cpu_time_total / 1000 / args.steps
        rate = ""
        if event.key in MATMUL_OPS and event.flops:
            rate = f"  {event.flops / matmul_seconds(event, device) / 1e12:.3f} TFLOP/s"
        print(f"  {event.key:<45} {share:6.1%} {per_batch:8.1f} ms/batch  x{event.count}{rate}")
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    matmul_s = sum(matmul_seconds(e, device) for e in events if e.key in MATMUL_OPS)
    flops = sum(e.flops or 0 for e in events if e.key in MATMUL_OPS)
    print(
        f"\nmatmuls (mm, addmm, bmm): {matmul / total:.1%} of self CPU time, "
        f"{flops / matmul_s / 1e12:.3f} TFLOP/s while they run"
        f"{' (their GPU kernels)' if device.type == 'cuda' else ''}; "
        f"everything else: {1 - matmul / total:.1%}"
    )
    print_cuda_total(events, device, args.steps)


if __name__ == "__main__":
    run_main(main)
