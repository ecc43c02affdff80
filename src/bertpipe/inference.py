"""Batched inference: length-sorted batches, no grad, bf16 where supported, input order out."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertpipe.batching import pad_batch, sorted_batches
from bertpipe.errors import UserError
from bertpipe.model import takes_boolean_mask
from bertpipe.progress import progress_bar
from bertpipe.tokens import TokenizedSplit


@cache
def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16: the CPU runs bf16 matrix work natively (otherwise it is slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def device_name(device: torch.device) -> str:
    """What the device is, for a run's stats: the GPU's model, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "cpu"


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 where supported, else fp32; returns Accelerate's name: no, bf16 or fp16."""
    if precision == "auto":
        if device.type == "cuda":
            # native bf16 only (Ampere and newer): before it, torch emulates bf16, slowly
            native = torch.cuda.is_bf16_supported(including_emulation=False)
            return "bf16" if native else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_bf16() else "no"
    if precision == "fp16" and device.type != "cuda":
        raise UserError("train.precision: fp16 needs a CUDA GPU; use auto, bf16 or fp32")
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]


def inference_precision(precision: str, device: torch.device) -> str:
    """`resolve_precision` for predicting with a model trained at `precision`: fp16, which only
    a GPU runs, becomes auto on a machine without one, so that a model trained on a GPU
    predicts on a CPU (the scores then differ from the GPU's in the last digits, as any bf16 or
    fp32 run's do)."""
    if precision == "fp16" and device.type != "cuda":
        precision = "auto"
    return resolve_precision(precision, device)


def autocast(device: torch.device, mixed_precision: str) -> contextlib.AbstractContextManager[Any]:
    if mixed_precision == "no":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if mixed_precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def overflow_refused(mixed_precision: str) -> Iterator[None]:
    """A forward pass that cannot run under `mixed_precision` as one clear line.

    DeBERTa (v1) fills its masked attention scores with float32's minimum, which bf16 and fp16
    cannot hold: under autocast its forward pass stops with "value cannot be converted to type
    c10::BFloat16 without overflow"."""
    try:
        yield
    except RuntimeError as exc:
        if mixed_precision == "no" or "without overflow" not in str(exc):
            raise
        raise UserError(
            f"model: its forward pass overflows under {mixed_precision} autocast "
            f"({str(exc).strip().splitlines()[0][:80]}), a fault of the model's code in "
            "transformers; set train.precision: fp32"
        ) from None


@contextlib.contextmanager
def out_of_memory_refused(device: torch.device, doing: str, remedy: str) -> Iterator[None]:
    """Running out of the device's memory as one line: what ran out (`doing`) and what to lower
    (`remedy`). The CPU's allocator raises a RuntimeError that says "can't allocate memory"."""
    try:
        yield
    except RuntimeError as exc:
        cpu_out = "can't allocate memory" in str(exc)
        if not (isinstance(exc, torch.OutOfMemoryError) or cpu_out):
            raise
        raise UserError(
            f"{device.type} ({device_name(device)}) ran out of memory {doing}; {remedy}"
        ) from None


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _batches(
    split: TokenizedSplit,
    batch_size: int,
    pad_token_id: int,
    device: torch.device,
    boolean_mask: bool = False,
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    for indices in sorted_batches(split.lengths, batch_size):
        batch = pad_batch(split, indices.tolist(), pad_token_id, True, boolean_mask)
        non_blocking = device.type == "cuda"
        if non_blocking:
            batch = {name: tensor.pin_memory() for name, tensor in batch.items()}
        yield indices, {name: t.to(device, non_blocking=non_blocking) for name, t in batch.items()}


def predict_logits(
    model: torch.nn.Module,
    split: TokenizedSplit,
    batch_size: int,
    pad_token_id: int,
    mixed_precision: str = "no",
    device: torch.device | None = None,
    progress: bool = False,
    pooling: str = "mean",
    batch_size_key: str = "evaluate.batch_size",
) -> np.ndarray:
    """(texts, num_labels) float32 logits, row i for text i whatever order the batches ran in;
    a split with windows has its windows' logits pooled per text (`pool_windows`).
    `batch_size_key`: the setting that gave `batch_size`, for an out-of-memory message."""
    device = device or next(model.parameters()).device
    num_labels = int(model.config.num_labels)
    logits = np.zeros((len(split), num_labels), dtype=np.float32)
    was_training = model.training
    model.eval()
    boolean_mask = takes_boolean_mask(model, device.type)
    batches = _batches(split, batch_size, pad_token_id, device, boolean_mask)
    if progress:
        total = -(-len(split) // batch_size)
        batches = progress_bar(batches, "predict", total=total, leave=False)
    # The batches' logits stay on the device and come back in one copy at the end: a copy per
    # batch would make the host wait for each forward pass before it queues the next one.
    # (texts, num_labels) float32 is small next to the model.
    order: list[np.ndarray] = []
    outputs: list[torch.Tensor] = []
    out_of_memory = out_of_memory_refused(
        device,
        f"predicting batches of {batch_size} texts",
        f"give a smaller {batch_size_key}",
    )
    with (
        torch.no_grad(),
        autocast(device, mixed_precision),
        overflow_refused(mixed_precision),
        out_of_memory,
    ):
        for indices, batch in batches:
            order.append(indices)
            outputs.append(model(**batch).logits.float())
    if outputs:
        logits[np.concatenate(order)] = torch.cat(outputs).cpu().numpy()
    model.train(was_training)
    return pool_windows(logits, split.text_index, pooling)


def pool_windows(logits: np.ndarray, text_index: np.ndarray | None, pooling: str) -> np.ndarray:
    """One row of logits per text from its windows' rows: their mean, or their maximum per
    label. `text_index` None: every row is already a text."""
    if text_index is None:
        return logits
    num_texts = int(text_index[-1]) + 1 if len(text_index) else 0
    if pooling == "max":
        pooled = np.full((num_texts, logits.shape[1]), -np.inf, dtype=np.float32)
        np.maximum.at(pooled, text_index, logits)
        return pooled
    if pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}")
    sums = np.zeros((num_texts, logits.shape[1]), dtype=np.float64)
    np.add.at(sums, text_index, logits)
    counts = np.bincount(text_index, minlength=num_texts)[:, None]
    return (sums / counts).astype(np.float32)
