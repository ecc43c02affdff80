"""The training loop: Accelerate for devices and precision, length-grouped batches, AdamW with
linear warmup and decay, gradient accumulation and clipping, early stopping on a validation metric,
and a checkpoint at the end of every epoch that a killed run resumes from."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from bertpipe.batching import Collator, IndexDataset, LengthGroupedBatchSampler
from bertpipe.checkpoint import Checkpoint, load_checkpoint, mark_complete, save_checkpoint
from bertpipe.errors import UserError
from bertpipe.files import sha256_file
from bertpipe.inference import predict_logits, resolve_precision
from bertpipe.metrics import METRICS_BY_TASK, compute_metrics, is_better, scores_from_logits
from bertpipe.params import Params
from bertpipe.tokens import TokenizedSplit, split_files


@dataclass(frozen=True)
class LoopConfig:
    task: str
    lr: float
    epochs: int
    batch_size: int
    seed: int
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accum_steps: int = 1
    max_grad_norm: float | None = 1.0
    class_weights: str = "none"
    early_stopping_metric: str = "f1_macro"
    patience: int | None = 2
    threshold: float = 0.5
    eval_batch_size: int = 64
    precision: str = "auto"
    group_size: int = 50
    progress: bool = True


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_metric: float | None
    stopped_early: bool
    resumed_from_epoch: int | None
    world_size: int
    mixed_precision: str
    stats: dict[str, float] = field(default_factory=dict)


EpochCallback = Callable[[dict[str, float]], None]

# On the CPU, SDPA's fused ("flash") kernel has a slow backward pass on short sequences: on this
# project's 2-core CPU the "math" kernel trained 10-20 % faster up to 128 tokens, and flash 4 %
# faster at 192 and 43 % at 256 (benchmarks/profile_step.py, BENCHMARKS.md). With attention
# dropout on, PyTorch picks the math kernel anyway.
CPU_MATH_ATTENTION_MAX_LENGTH = 160


def attention_kernel(device: torch.device, seq_len: int) -> contextlib.AbstractContextManager[Any]:
    """The SDPA kernel for a training batch of `seq_len` tokens (PyTorch's choice off the CPU)."""
    if device.type == "cpu" and seq_len <= CPU_MATH_ATTENTION_MAX_LENGTH:
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # deterministic kernels where they exist; warn_only keeps ops without one running
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def check_config(config: LoopConfig) -> None:
    allowed = (*METRICS_BY_TASK[config.task], "loss")
    if config.early_stopping_metric not in allowed:
        raise UserError(
            f"train.early_stopping_metric: '{config.early_stopping_metric}' is not a metric of "
            f"task {config.task}; use one of {', '.join(allowed)}"
        )
    if config.class_weights == "balanced" and config.task == "regression":
        raise UserError("train.class_weights: balanced needs classes; use none for regression")


def balanced_weights(labels: np.ndarray, task: str, num_labels: int) -> torch.Tensor:
    """n / (k * count) per class; for multi-label, negatives / positives per label (pos_weight)."""
    if task == "multilabel":
        positives = labels.sum(axis=0)
        negatives = len(labels) - positives
        return torch.tensor(negatives / np.maximum(positives, 1), dtype=torch.float32)
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    weights = len(labels) / (num_labels * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def task_loss(
    logits: torch.Tensor, labels: torch.Tensor, task: str, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy, BCE-with-logits, or MSE, computed in fp32 whatever the autocast dtype."""
    logits = logits.float()
    if task == "regression":
        return F.mse_loss(logits.squeeze(-1), labels.float())
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight)
    return F.cross_entropy(logits, labels.long(), weight=weight)


def optimizer_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay the weight matrices only: biases and LayerNorm weights (all 1-d) are spared."""
    decay, no_decay = [], []
    for _name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_accelerator(precision: str, cpu: bool | None = None) -> Accelerator:
    from accelerate.state import AcceleratorState

    use_cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    device = torch.device("cpu") if use_cpu else torch.device("cuda")
    # Accelerate keeps one state per process and refuses a second Accelerator with another
    # precision; a second fit in one process (tests, a notebook) starts from a clean state.
    # The process group (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        mixed_precision=resolve_precision(precision, device),
        cpu=use_cpu,
        # with the DataLoader's pinned memory on CUDA, host-to-device copies overlap compute
        dataloader_config=DataLoaderConfiguration(non_blocking=not use_cpu),
    )


def _state_on_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()
    }


def fit(
    model: torch.nn.Module,
    train: TokenizedSplit,
    val: TokenizedSplit,
    config: LoopConfig,
    pad_token_id: int,
    accelerator: Accelerator | None = None,
    checkpoint_dir: Path | None = None,
    fingerprint: str = "",
    on_epoch_end: EpochCallback | None = None,
) -> FitResult:
    """Train `model` in place; on return it holds the best epoch's weights (early stopping)."""
    check_config(config)
    accelerator = accelerator or make_accelerator(config.precision)
    seed_everything(config.seed)
    num_labels = int(model.config.num_labels)
    weight = None
    if config.class_weights == "balanced":
        weight = balanced_weights(train.labels, config.task, num_labels).to(accelerator.device)

    sampler = LengthGroupedBatchSampler(
        train.lengths, config.batch_size, config.seed, group_size=config.group_size
    )
    loader = DataLoader(
        IndexDataset(len(train)),
        batch_sampler=sampler,
        collate_fn=Collator(train, pad_token_id),
        pin_memory=accelerator.device.type == "cuda",
    )
    optimizer = torch.optim.AdamW(
        optimizer_groups(model, config.weight_decay),
        lr=config.lr,
        # fused AdamW: one kernel for the whole update; on CPU it saves 5-9% of a step
        fused=accelerator.device.type in ("cuda", "cpu"),
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / config.grad_accum_steps)
    total_steps = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * total_steps), total_steps
    )

    state = Checkpoint(fingerprint=fingerprint)
    resumed_from = None
    if checkpoint_dir is not None:
        saved = load_checkpoint(checkpoint_dir, fingerprint)
        if saved is not None:
            state = saved.restore(accelerator.unwrap_model(model), optimizer, scheduler)
            resumed_from = state.epoch
            accelerator.print(f"resuming from the checkpoint of epoch {state.epoch}")
            if on_epoch_end is not None:
                for record in state.history:
                    on_epoch_end(record)

    metric = config.early_stopping_metric
    train_seconds = 0.0
    samples = tokens = padded_tokens = 0
    wall_start = time.perf_counter()
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if state.stopped_early:
            break
        # Accelerate's loader re-seeds its batch sampler with its own epoch counter, which
        # restarts at 0 on a resumed run: set both, so epoch k has the same batches either way.
        loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        model.train()
        epoch_start = time.perf_counter()
        loss_sum, loss_count = 0.0, 0
        batches = loader
        if config.progress and accelerator.is_local_main_process:
            from tqdm.auto import tqdm

            batches = tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", unit="batch")
        for batch_index, batch in enumerate(batches):
            labels = batch.pop("labels")
            batch.pop("index")
            last_of_step = (batch_index + 1) % config.grad_accum_steps == 0 or (
                batch_index + 1 == len(loader)
            )
            # skip the gradient all-reduce on micro-batches that do not step
            context = accelerator.no_sync(model) if not last_of_step else contextlib.nullcontext()
            kernel = attention_kernel(accelerator.device, batch["input_ids"].shape[1])
            with context, kernel:
                # (batch, seq_len) -> (batch, num_labels)
                logits = model(**batch).logits
                loss = task_loss(logits, labels, config.task, weight)
                # scale the loss so k accumulated micro-batches average like one batch of k*b
                accelerator.backward(loss / config.grad_accum_steps)
            if last_of_step:
                if config.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state.global_step += 1
            loss_sum += loss.item()
            loss_count += 1
            samples += len(labels)
            tokens += int(batch["attention_mask"].sum())
            padded_tokens += batch["attention_mask"].numel()
            if batches is not loader:
                batches.set_postfix(loss=f"{loss_sum / loss_count:.4f}")
        train_seconds += time.perf_counter() - epoch_start
        # every process saw its own shard: sum the loss and the counts over all of them
        totals = accelerator.reduce(
            torch.tensor([loss_sum, loss_count], device=accelerator.device), reduction="sum"
        )
        loss_sum, loss_count = float(totals[0]), int(totals[1])

        val_logits = predict_logits(
            accelerator.unwrap_model(model),
            val,
            config.eval_batch_size,
            pad_token_id,
            accelerator.mixed_precision,
        )
        val_labels = torch.from_numpy(val.labels)
        record: dict[str, float] = {
            "epoch": epoch,
            "train_loss": round(loss_sum / max(loss_count, 1), 6),
            "lr": scheduler.get_last_lr()[0],
            "val_loss": round(
                float(task_loss(torch.from_numpy(val_logits), val_labels, config.task, None)), 6
            ),
        }
        scores = scores_from_logits(val_logits, config.task)
        val_metrics = compute_metrics(val.labels, scores, config.task, config.threshold)
        record.update({f"val_{name}": value for name, value in val_metrics.items()})
        current = record["val_loss"] if metric == "loss" else val_metrics[metric]
        state.history.append(record)
        state.epoch = epoch
        if is_better(current, state.best_metric, metric):
            state.best_metric, state.best_epoch = current, epoch
            state.best_weights = _state_on_cpu(accelerator.unwrap_model(model))
            state.epochs_without_improvement = 0
        else:
            state.epochs_without_improvement += 1
            if config.patience is not None and state.epochs_without_improvement >= config.patience:
                state.stopped_early = True
        accelerator.print(
            f"epoch {epoch}: train_loss {record['train_loss']:.4f}, val_{metric} {current:.4f}"
            + (" (stopping early)" if state.stopped_early else "")
        )
        if on_epoch_end is not None:
            on_epoch_end(record)
        if checkpoint_dir is not None and accelerator.is_main_process:
            save_checkpoint(
                checkpoint_dir, state, accelerator.unwrap_model(model), optimizer, scheduler
            )
        accelerator.wait_for_everyone()

    unwrapped = accelerator.unwrap_model(model)
    if state.best_weights is not None:
        unwrapped.load_state_dict(state.best_weights)
    if checkpoint_dir is not None and accelerator.is_main_process:
        mark_complete(checkpoint_dir, fingerprint)
    # throughput of the whole job: examples and tokens summed over the processes
    counts = accelerator.reduce(
        torch.tensor([samples, tokens, padded_tokens], device=accelerator.device), reduction="sum"
    )
    samples, tokens, padded_tokens = (int(value) for value in counts)
    stats = {
        "train_seconds": round(train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - wall_start, 3),
        "train_samples": samples,
        "train_samples_per_second": round(samples / train_seconds, 3) if train_seconds else 0.0,
        "train_tokens_per_second": round(tokens / train_seconds, 1) if train_seconds else 0.0,
        "padding_fraction": round(1 - tokens / padded_tokens, 4) if padded_tokens else 0.0,
    }
    return FitResult(
        history=state.history,
        best_epoch=state.best_epoch,
        best_metric=state.best_metric,
        stopped_early=state.stopped_early,
        resumed_from_epoch=resumed_from,
        world_size=accelerator.num_processes,
        mixed_precision=accelerator.mixed_precision,
        stats=stats,
    )


def loop_config(params: Params, progress: bool = True) -> LoopConfig:
    train = params.train
    return LoopConfig(
        task=params.task,
        lr=params.lr,
        epochs=params.epochs,
        batch_size=params.batch_size,
        seed=params.seed,
        warmup_ratio=train.warmup_ratio,
        weight_decay=train.weight_decay,
        grad_accum_steps=train.grad_accum_steps,
        max_grad_norm=train.max_grad_norm,
        class_weights=train.class_weights,
        early_stopping_metric=train.early_stopping_metric,
        patience=train.patience,
        threshold=train.threshold,
        eval_batch_size=train.eval_batch_size,
        precision=train.precision,
        group_size=train.group_size,
        progress=progress,
    )


def run_fingerprint(params: Params, tokens_dir: Path) -> str:
    """What a checkpoint must match to be resumed: the params that shape training, and the data."""
    digest = hashlib.sha256()
    relevant = params.model_dump(mode="json", exclude={"evaluate", "gate"})
    digest.update(json.dumps(relevant, sort_keys=True).encode())
    files = [
        tokens_dir / "labels.json",
        *split_files(tokens_dir / "train"),
        *split_files(tokens_dir / "val"),
    ]
    for path in files:
        digest.update(f"{path.relative_to(tokens_dir)}:{sha256_file(path)}".encode())
    return digest.hexdigest()
