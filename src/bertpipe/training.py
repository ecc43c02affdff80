"""The training loop: Accelerate for devices and precision, length-grouped batches, AdamW with
linear warmup and decay, gradient accumulation and clipping, early stopping on a validation metric,
and checkpoints (every `train.checkpoint_every_steps` optimizer steps and at the end of every
epoch) that a killed run resumes from."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import sys
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
from torch.profiler import record_function
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from bertpipe.batching import Collator, IndexDataset, LengthGroupedBatchSampler
from bertpipe.checkpoint import (
    Checkpoint,
    SavedCheckpoint,
    clear_checkpoints,
    load_checkpoint,
    mark_complete,
    save_checkpoint,
    state_on_cpu,
)
from bertpipe.decision import fit_decision
from bertpipe.errors import UserError
from bertpipe.files import sha256_file
from bertpipe.inference import (
    default_device,
    device_name,
    out_of_memory_refused,
    overflow_refused,
    predict_logits,
    resolve_precision,
)
from bertpipe.metrics import compute_metrics, is_better
from bertpipe.model import fold_regression_scale, scale_regression_output, takes_boolean_mask
from bertpipe.params import (
    Params,
    resolve_batch_size,
    resolve_task_defaults,
    train_option_conflict,
)
from bertpipe.progress import progress_bar
from bertpipe.tokens import TokenizedSplit, split_files


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_metric: float | None
    stopped_early: bool
    resumed_from_epoch: int | None
    resumed_from_step: int | None
    world_size: int
    mixed_precision: str
    stats: dict[str, float] = field(default_factory=dict)


EpochCallback = Callable[[dict[str, float]], None]

# On the CPU, SDPA's fused ("flash") kernel has a slow backward pass on short sequences: up to
# about 160 tokens the "math" kernel trains faster, beyond it flash does (measured with
# benchmarks/profile_step.py; the figures are in BENCHMARKS.md). With attention dropout on,
# PyTorch picks the math kernel anyway.
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


# cuBLAS's deterministic workspace. cuBLAS reads the variable once, at the process's first
# matrix product on the GPU, so it is set when bertpipe's training is imported, before any.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

DeterminismSettings = tuple[bool, bool, bool]


def request_deterministic_kernels() -> DeterminismSettings:
    """Ask PyTorch for deterministic kernels where they exist (warn_only keeps ops without one
    running), for one fit; returns the process's settings before, for `restore_determinism`.
    (CUBLAS_WORKSPACE_CONFIG, set at import, stays: cuBLAS has read it by then.)

    PyTorch's deterministic mode also fills every new tensor with NaN, to expose kernels that
    read memory they never wrote. No kernel bertpipe runs does; the fill costs a kernel launch
    per allocation (a MiniLM train step made 387 fills instead of 61), so it is left off."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    return before


def restore_determinism(settings: DeterminismSettings) -> None:
    enabled, warn_only, fill = settings
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.utils.deterministic.fill_uninitialized_memory = fill


def check_params(params: Params) -> None:
    """The train options' fit to the task, for a `params` built without validation (a
    model_copy): loading params.yaml checks the same (params.train_option_conflict)."""
    conflict = train_option_conflict(params)
    if conflict:
        raise UserError(conflict)


def balanced_weights(labels: np.ndarray, task: str, num_labels: int) -> torch.Tensor:
    """n / (k * count) per class; for multi-label, negatives / positives per label (pos_weight),
    1 for a label that is on every training row or on none: with nothing to balance, a weight of
    negatives / positives = 0 would zero the loss of a label on every row, which then never
    trains."""
    if task == "multilabel":
        positives = labels.sum(axis=0).astype(np.float64)
        negatives = len(labels) - positives
        both = (positives > 0) & (negatives > 0)
        weights = np.where(both, negatives / np.maximum(positives, 1), 1.0)
        return torch.tensor(weights, dtype=torch.float32)
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    weights = len(labels) / (num_labels * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def task_loss(
    logits: torch.Tensor, labels: torch.Tensor, task: str, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy, BCE-with-logits, or MSE, computed in fp32 whatever the autocast dtype.
    `weight`: the class weights (pos_weight for multilabel); for regression, the factor that
    measures the squared error in units of the training targets' variance."""
    logits = logits.float()
    if task == "regression":
        loss = F.mse_loss(logits.squeeze(-1), labels.float())
        return loss if weight is None else loss * weight
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


def make_accelerator(precision: str, device: str | torch.device | None = None) -> Accelerator:
    """An Accelerator on `device` ("cpu" or "cuda"; None: default_device(), the CPU where
    ACCELERATE_USE_CPU is set) with `precision` resolved for it (resolve_precision).

    Accelerate keeps its state per process: AcceleratorState (the precision) and, under it,
    PartialState (the device and the process group). Both outlive the Accelerator, so a second
    fit in one process (tests, a notebook, a benchmark) would inherit the first one's. Each
    call starts AcceleratorState afresh. PartialState is kept when it holds a launcher's process
    group (several processes), and dropped when it is a single process on another device: an
    `Accelerator(cpu=True)` or a `Trainer(use_cpu=True)` run before this one left it on the CPU,
    and the next fit then trained on the CPU beside an idle GPU."""
    from accelerate.state import AcceleratorState, GradientState, PartialState
    from accelerate.utils import DistributedType, parse_flag_from_env

    if device is not None:
        wanted = torch.device(device)
    elif parse_flag_from_env("ACCELERATE_USE_CPU"):
        wanted = torch.device("cpu")
    else:
        wanted = default_device()
    if wanted.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, not {wanted}")
    if wanted.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda: this machine has no CUDA GPU that torch can use")
    partial = PartialState._shared_state
    stale = (
        partial != {}
        and partial.get("distributed_type") == DistributedType.NO
        and partial["device"].type != wanted.type
    )
    AcceleratorState._reset_state(reset_partial_state=stale)
    GradientState._reset_state()  # it holds the last fit's data loaders
    on_cpu = wanted.type == "cpu"
    accelerator = Accelerator(
        mixed_precision=resolve_precision(precision, wanted),
        cpu=on_cpu,
        # with the DataLoader's pinned memory on CUDA, host-to-device copies overlap compute
        dataloader_config=DataLoaderConfiguration(non_blocking=not on_cpu),
    )
    if accelerator.device.type != wanted.type:
        raise UserError(
            f"device {wanted.type}: this process's Accelerate state is on "
            f"{accelerator.device.type} (set up by a launcher, or by ACCELERATE_USE_CPU); run on "
            f"{accelerator.device.type}, or start a new process"
        )
    return accelerator


def uses_cuda_graphs(params: Params, accelerator: Accelerator) -> bool:
    """Whether `train.compile` replays the steps as CUDA graphs: on one GPU, without gradient
    accumulation. A graph's outputs live in memory the next replay overwrites; accumulated
    gradients would be kept across replays, and DDP's gradient hooks run between graphs, so
    both compile without graphs."""
    return (
        params.train.compile
        and accelerator.device.type == "cuda"
        and accelerator.num_processes == 1
        and params.train.grad_accum_steps == 1
    )


def compile_for_training(model: torch.nn.Module, cuda_graphs: bool) -> torch.nn.Module:
    """`model` under torch.compile, for the training steps (`train.compile: true`).

    The compiled wrapper shares the module's parameters; the module itself is what checkpoints,
    validation and the saved model use, so its state_dict keys carry no `_orig_mod.` prefix.

    With `cuda_graphs` (uses_cuda_graphs), mode "reduce-overhead" replays each step as CUDA
    graphs: one launch in place of hundreds, where a GPU step is bound by the host (FACTS.md:
    62 ms for 1 ms of arithmetic). A graph is recorded per input shape; batches are padded to a
    multiple of 8 tokens (bertpipe.batching), so there are at most max_length / 8 lengths, each
    at most twice (an epoch's last batch may be short). The shapes are dynamic to the compiler
    (one recompile on the second shape, not one per shape, so torch's recompile limit is never
    met)."""
    if cuda_graphs:
        return torch.compile(model, mode="reduce-overhead")
    return torch.compile(model)


@dataclass
class Throughput:
    """Examples and tokens trained on, and the seconds the training epochs took."""

    seconds: float = 0.0
    samples: int = 0
    # summed on the batches' device: reading a CUDA sum back each batch would make the host
    # wait for the step (`stats` reads it once)
    tokens: torch.Tensor | int = 0
    padded_tokens: int = 0

    def count(self, batch: dict[str, torch.Tensor]) -> None:
        self.samples += len(batch["labels"])  # shapes are known on the host: no wait
        self.padded_tokens += batch["input_ids"].numel()
        mask = batch.get("attention_mask")  # None: no row is padded (pad_batch)
        self.tokens = self.tokens + (batch["input_ids"].numel() if mask is None else mask.sum())

    def stats(self, accelerator: Accelerator, wall_seconds: float) -> dict[str, float]:
        # throughput of the whole job: examples and tokens summed over the processes
        counts = accelerator.reduce(
            torch.tensor(
                [self.samples, int(self.tokens), self.padded_tokens], device=accelerator.device
            ),
            reduction="sum",
        )
        samples, tokens, padded_tokens = (int(value) for value in counts)
        seconds = self.seconds
        return {
            "train_seconds": round(seconds, 3),
            "wall_seconds": round(wall_seconds, 3),
            "train_samples": samples,
            "train_samples_per_second": round(samples / seconds, 3) if seconds else 0.0,
            "train_tokens_per_second": round(tokens / seconds, 1) if seconds else 0.0,
            "padding_fraction": round(1 - tokens / padded_tokens, 4) if padded_tokens else 0.0,
        }


def train_step(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    accelerator: Accelerator,
    params: Params,
    weight: torch.Tensor | None,
    last_of_step: bool,
) -> torch.Tensor:
    """One micro-batch: forward under `attention_kernel`, the task loss and its backward pass;
    when `last_of_step` completes an accumulation, the clipped optimizer and scheduler step.

    Returns the micro-batch's loss, unscaled. The `record_function` labels name the phases for
    torch.profiler (benchmarks/profile_step.py) and cost nothing without a profiler.
    """
    grad_accum_steps, max_grad_norm = params.train.grad_accum_steps, params.train.max_grad_norm
    inputs = {name: tensor for name, tensor in batch.items() if name != "labels"}
    # skip the gradient all-reduce on micro-batches that do not step
    sync = contextlib.nullcontext() if last_of_step else accelerator.no_sync(model)
    with sync, attention_kernel(accelerator.device, inputs["input_ids"].shape[1]):
        with (
            record_function("phase: forward + loss"),
            overflow_refused(accelerator.mixed_precision),
        ):
            # (batch, seq_len) -> (batch, num_labels)
            logits = model(**inputs).logits
            loss = task_loss(logits, batch["labels"], params.task, weight)
        with record_function("phase: backward"):
            # scale the loss so k accumulated micro-batches average like one batch of k*b
            accelerator.backward(loss / grad_accum_steps)
    if last_of_step:
        if max_grad_norm is not None:
            with record_function("phase: clip"):
                accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        with record_function("phase: optimizer"):
            optimizer.step()
            scheduler.step()
        with record_function("phase: zero_grad"):
            optimizer.zero_grad(set_to_none=True)
    return loss


def validate(
    model: torch.nn.Module,
    val: TokenizedSplit,
    params: Params,
    pad_token_id: int,
    mixed_precision: str,
    weight: torch.Tensor | None = None,
) -> dict[str, float]:
    """val_loss and every val_<metric> of the task for `model` (unwrapped from Accelerate).

    val_loss is the training objective, with the same class `weight` as train_loss, so that
    the two curves of one plot measure the same thing. With windows, each text's windows are
    pooled into one prediction first, as evaluate does.
    """
    val_logits = predict_logits(
        model,
        val,
        params.train.eval_batch_size,
        pad_token_id,
        mixed_precision,
        pooling=params.windows.pooling,
        batch_size_key="train.eval_batch_size",
    )
    targets = val.text_labels
    loss_weight = None if weight is None else weight.cpu()
    loss = task_loss(
        torch.from_numpy(val_logits), torch.from_numpy(targets), params.task, loss_weight
    )
    val_loss = float(loss)
    # the decision this epoch's model would be saved with, so that early stopping compares each
    # model at its own fitted threshold(s)
    decision = fit_decision(
        val_logits,
        targets,
        params.task,
        params.train.threshold,
        params.train.target_recall,
        class_weight=loss_weight,
    )
    scores = decision.scores(val_logits)
    val_metrics = compute_metrics(targets, scores, params.task, decision.threshold)
    return {
        "val_loss": round(val_loss, 6),
        **{f"val_{name}": value for name, value in val_metrics.items()},
    }


def training_class_weight(
    train: TokenizedSplit, params: Params, num_labels: int
) -> torch.Tensor | None:
    """The loss's class weight (pos_weight for multilabel) under `train.class_weights`."""
    if params.train.class_weights != "balanced":
        return None
    return balanced_weights(train.labels, params.task, num_labels)


def _standardised_targets(
    model: torch.nn.Module, train: TokenizedSplit, params: Params
) -> torch.Tensor | None:
    """For regression, the output layer learns (target - mean) / std of the training targets
    (`scale_regression_output`) and the loss is measured in units of their variance: the
    loss's factor, 1 / variance. None for the other tasks, or a head without such a layer."""
    if params.task != "regression" or len(train.labels) == 0:
        return None
    targets = np.asarray(train.labels, dtype=np.float64)
    shift, scale = float(targets.mean()), float(targets.std())
    scale = scale if scale > 0 else 1.0
    if not scale_regression_output(model, shift, scale):
        return None
    return torch.tensor(1.0 / scale**2, dtype=torch.float32)


def _class_weight(
    model: torch.nn.Module, train: TokenizedSplit, params: Params, device: torch.device
) -> torch.Tensor | None:
    weight = training_class_weight(train, params, int(model.config.num_labels))
    return None if weight is None else weight.to(device)


def _train_loader(
    train: TokenizedSplit,
    params: Params,
    pad_token_id: int,
    device: torch.device,
    boolean_mask: bool = False,
) -> tuple[DataLoader[int], LengthGroupedBatchSampler]:
    sampler = LengthGroupedBatchSampler(
        train.lengths, params.batch_size, params.seed, group_size=params.train.group_size
    )
    loader = DataLoader(
        IndexDataset(len(train)),
        batch_sampler=sampler,
        collate_fn=Collator(train, pad_token_id, drop_full_mask=True, boolean_mask=boolean_mask),
        pin_memory=device.type == "cuda",
    )
    return loader, sampler


def _optimizer(
    model: torch.nn.Module, params: Params, device: torch.device
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        optimizer_groups(model, params.train.weight_decay),
        lr=params.lr,
        # fused AdamW: one kernel for the whole parameter update (the gain: BENCHMARKS.md)
        fused=device.type in ("cuda", "cpu"),
    )


def _per_process(accelerator: Accelerator, value: float) -> list[float]:
    """`value` of every process, in process order (float64: a Python float exactly)."""
    gathered = accelerator.gather(
        torch.tensor([value], dtype=torch.float64, device=accelerator.device)
    )
    return [float(item) for item in gathered.cpu()]


def _mean_over_processes(accelerator: Accelerator, loss_sum: float, loss_count: int) -> float:
    """The mean train loss of an epoch: every process saw its own shard, so sum over them all."""
    # float64, as the sum was kept: float32 would round it at the 7th digit
    totals = accelerator.reduce(
        torch.tensor([loss_sum, loss_count], dtype=torch.float64, device=accelerator.device),
        reduction="sum",
    )
    return round(float(totals[0]) / max(int(totals[1]), 1), 6)


def _resume(
    checkpoint_dir: Path | None,
    fingerprint: str,
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> SavedCheckpoint | None:
    """The saved state of an interrupted run with this fingerprint, restored into the objects,
    and a function that restores its RNG states (see `fit`)."""
    if checkpoint_dir is None:
        return None

    def warn(line: str) -> None:
        if accelerator.is_main_process:
            print(line, file=sys.stderr)

    saved = load_checkpoint(checkpoint_dir, fingerprint, warn)
    if saved is None:
        if accelerator.is_main_process:
            # unusable: another run's, a finished run's, or damaged ones a kill left behind
            clear_checkpoints(checkpoint_dir)
        accelerator.wait_for_everyone()
        return None
    state = saved.restore(accelerator.unwrap_model(model), optimizer, scheduler)
    accelerator.print(
        f"resuming from the checkpoint at step {state.global_step} "
        f"(epoch {state.epoch + 1}, batch {state.batches_done})"
        if state.batches_done
        else f"resuming from the checkpoint of epoch {state.epoch}"
    )
    return saved


def _track_best(
    state: Checkpoint, epoch: int, current: float, metric: str, patience: int | None, model: Any
) -> None:
    """Early stopping: keep the best epoch's weights; stop after `patience` epochs without."""
    state.epoch = epoch
    if is_better(current, state.best_metric, metric):
        state.best_metric, state.best_epoch = current, epoch
        state.best_weights = state_on_cpu(model)
        state.epochs_without_improvement = 0
    else:
        state.epochs_without_improvement += 1
        if patience is not None and state.epochs_without_improvement >= patience:
            state.stopped_early = True


@dataclass
class _Loop:
    """What the epochs of one fit share, prepared by Accelerate."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    accelerator: Accelerator
    train_loader: DataLoader[int]
    sampler: LengthGroupedBatchSampler
    params: Params
    weight: torch.Tensor | None
    checkpoint_dir: Path | None
    # what runs the training steps: `model`, or it compiled (`train.compile`)
    step_model: torch.nn.Module
    cuda_graphs: bool
    throughput: Throughput = field(default_factory=Throughput)


def _checkpoint_due(loop: _Loop, state: Checkpoint, batch_index: int, last_of_step: bool) -> bool:
    """A mid-epoch checkpoint falls on an optimizer step's boundary (no gradients pending),
    every `checkpoint_every_steps` steps, and never on an epoch's last batch (the epoch's own
    checkpoint follows it)."""
    every = loop.params.train.checkpoint_every_steps
    return (
        loop.checkpoint_dir is not None
        and every is not None
        and last_of_step
        and state.global_step % every == 0
        and batch_index + 1 < len(loop.train_loader)
    )


def _checkpoint_mid_epoch(
    loop: _Loop, state: Checkpoint, batches_done: int, loss_sum: float, loss_count: int
) -> None:
    """Save the run inside an epoch: the batches done and each process's running loss."""
    accelerator = loop.accelerator
    state.batches_done = batches_done
    state.loss_sums = _per_process(accelerator, loss_sum)
    state.loss_counts = [int(n) for n in _per_process(accelerator, loss_count)]
    if accelerator.is_main_process and loop.checkpoint_dir is not None:
        unwrapped = accelerator.unwrap_model(loop.model)
        save_checkpoint(loop.checkpoint_dir, state, unwrapped, loop.optimizer, loop.scheduler)
    accelerator.wait_for_everyone()
    state.batches_done, state.loss_sums, state.loss_counts = 0, [], []


# How often the progress bar's running loss is read back from the device, at most. A read makes
# the host wait for the device to finish every queued step, so it is not done per batch.
LOSS_READ_SECONDS = 1.0


def skip_batches(accelerator: Accelerator, loader: Any, count: int) -> Any:
    """The prepared `loader` from its `count`-th batch on: the sampler's order for the epoch,
    without collating the skipped batches. Accelerate's new loader forgets the prepared one's
    non-blocking copies (accelerate 1.15), which a resumed epoch on a GPU keeps."""
    skipped = accelerator.skip_first_batches(loader, count)
    if hasattr(skipped, "_non_blocking"):
        skipped._non_blocking = getattr(loader, "_non_blocking", False)
    return skipped


def _train_epoch(
    loop: _Loop, state: Checkpoint, epoch: int, pending_rng: Any, progress: bool
) -> float:
    """One epoch of `train_step`, from where a mid-epoch checkpoint left it if it did; returns
    the epoch's mean train loss over every process.

    Nothing in a step waits for the device: the running loss is summed where the losses are,
    and read back only for the progress bar (at most every LOSS_READ_SECONDS), for a
    checkpoint, and at the epoch's end."""
    params, accelerator = loop.params, loop.accelerator
    # Accelerate's loader re-seeds its batch sampler with its own epoch counter, which
    # restarts at 0 on a resumed run: set both, so epoch k has the same batches either way.
    loop.train_loader.set_epoch(epoch)
    loop.sampler.set_epoch(epoch)
    loop.model.train()
    epoch_start = time.perf_counter()
    first_batch, loss_count = 0, 0
    # float64, as the Python float that summed `loss.item()` before: the sum, and so the
    # reported train loss, are the same to the bit
    loss_sum = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    loader = loop.train_loader
    if state.batches_done:  # resumed inside this epoch: skip the batches already trained
        first_batch = state.batches_done
        process = accelerator.process_index
        loss_sum.fill_(state.loss_sums[process])
        loss_count = state.loss_counts[process]
        loader = skip_batches(accelerator, loop.train_loader, first_batch)
        state.batches_done, state.loss_sums, state.loss_counts = 0, [], []
    batches = loader
    if progress and accelerator.is_local_main_process:
        # a resumed epoch counts the batches it skipped: "batch 135/135" at its end
        batches = progress_bar(
            loader,
            f"epoch {epoch}/{params.epochs}",
            total=len(loop.train_loader),
            initial=first_batch,
        )
    loss_read = time.monotonic()
    for batch_index, batch in enumerate(batches, start=first_batch):
        if pending_rng is not None:
            pending_rng.restore_rng()
            pending_rng = None
        last_batch = batch_index + 1 == len(loop.train_loader)
        last_of_step = (batch_index + 1) % params.train.grad_accum_steps == 0 or last_batch
        if loop.cuda_graphs:
            # a new step of the CUDA graphs: the last step's outputs (its loss) may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        loss = train_step(
            loop.step_model,
            batch,
            loop.optimizer,
            loop.scheduler,
            accelerator,
            params,
            loop.weight,
            last_of_step,
        )
        state.global_step += last_of_step
        loss_sum += loss.detach()  # in float64, on the device: no wait
        loss_count += 1
        loop.throughput.count(batch)
        if batches is not loader and (
            last_batch or time.monotonic() - loss_read >= LOSS_READ_SECONDS
        ):
            batches.set_postfix(loss=f"{float(loss_sum) / loss_count:.4f}")
            loss_read = time.monotonic()
        if _checkpoint_due(loop, state, batch_index, last_of_step):
            _checkpoint_mid_epoch(loop, state, batch_index + 1, float(loss_sum), loss_count)
    epoch_loss_sum = float(loss_sum)  # waits for the epoch's last step, before the clock stops
    loop.throughput.seconds += time.perf_counter() - epoch_start
    return _mean_over_processes(accelerator, epoch_loss_sum, loss_count)


def fit(
    model: torch.nn.Module,
    train: TokenizedSplit,
    val: TokenizedSplit,
    params: Params,
    pad_token_id: int,
    progress: bool = True,
    accelerator: Accelerator | None = None,
    checkpoint_dir: Path | None = None,
    fingerprint: str = "",
    on_epoch_end: EpochCallback | None = None,
) -> FitResult:
    """Train `model` in place; on return it holds the best epoch's weights (early stopping).
    `batch_size: auto` is resolved for the accelerator's device (resolve_batch_size)."""
    params = resolve_task_defaults(params)
    check_params(params)
    settings = params.train
    accelerator = accelerator or make_accelerator(settings.precision)
    params = resolve_batch_size(params, accelerator.device.type)
    seed_everything(params.seed)
    target_factor = _standardised_targets(model, train, params)
    determinism_before = request_deterministic_kernels()
    try:  # from here on the regression head is scaled: the finally folds it back
        weight = (
            _class_weight(model, train, params, accelerator.device)
            if target_factor is None
            else target_factor.to(accelerator.device)
        )
        unprepared_loader, sampler = _train_loader(
            train,
            params,
            pad_token_id,
            accelerator.device,
            takes_boolean_mask(model, accelerator.device.type),
        )
        optimizer = _optimizer(model, params, accelerator.device)
        model, optimizer, train_loader = accelerator.prepare(model, optimizer, unprepared_loader)
        total_steps = math.ceil(len(train_loader) / settings.grad_accum_steps) * params.epochs
        scheduler = get_linear_schedule_with_warmup(
            optimizer, round(settings.warmup_ratio * total_steps), total_steps
        )
        cuda_graphs = uses_cuda_graphs(params, accelerator)
        loop = _Loop(
            model,
            optimizer,
            scheduler,
            accelerator,
            train_loader,
            sampler,
            params,
            weight,
            checkpoint_dir,
            compile_for_training(model, cuda_graphs) if settings.compile else model,
            cuda_graphs,
        )

        saved = _resume(checkpoint_dir, fingerprint, accelerator, model, optimizer, scheduler)
        state = Checkpoint(fingerprint=fingerprint) if saved is None else saved.state
        resumed_from = None if saved is None else state.epoch
        resumed_from_step = None if saved is None else state.global_step
        # The RNG states as the next training batch saw them without a kill. At an epoch's end
        # they are restored now: the next epoch's loader then draws its base seed from torch's RNG,
        # as it did. Inside an epoch that draw was made before the checkpoint, so they are restored
        # once the resumed epoch's first batch is loaded.
        pending_rng = saved if saved is not None and state.batches_done else None
        if saved is not None and pending_rng is None:
            saved.restore_rng()
        if on_epoch_end is not None:
            for record in state.history:  # the resumed epochs, logged again
                on_epoch_end(record)

        metric = settings.early_stopping_metric
        wall_start = time.perf_counter()
        doing = f"training batches of {params.batch_size} at max_length {params.max_length}"
        remedy = (
            "lower batch_size (and raise train.grad_accum_steps to keep the batch the optimizer "
            "sees), or max_length"
        )
        for epoch in range(state.epoch + 1, params.epochs + 1):
            if state.stopped_early:
                break
            with out_of_memory_refused(accelerator.device, doing, remedy):
                train_loss = _train_epoch(loop, state, epoch, pending_rng, progress)
            pending_rng = None
            unwrapped = accelerator.unwrap_model(model)
            record: dict[str, float] = {
                "epoch": epoch,
                "train_loss": train_loss,
                "lr": scheduler.get_last_lr()[0],
                **validate(
                    unwrapped, val, params, pad_token_id, accelerator.mixed_precision, weight
                ),
            }
            current = record[f"val_{metric}"]
            state.history.append(record)
            _track_best(state, epoch, current, metric, settings.patience, unwrapped)
            accelerator.print(
                f"epoch {epoch}: train_loss {record['train_loss']:.4f}, val_{metric} {current:.4f}"
                + (" (stopping early)" if state.stopped_early else "")
            )
            if on_epoch_end is not None:
                on_epoch_end(record)
            if checkpoint_dir is not None and accelerator.is_main_process:
                save_checkpoint(checkpoint_dir, state, unwrapped, optimizer, scheduler)
            accelerator.wait_for_everyone()

        if state.best_weights is not None:
            accelerator.unwrap_model(model).load_state_dict(state.best_weights)
        if checkpoint_dir is not None and accelerator.is_main_process:
            mark_complete(checkpoint_dir, fingerprint)
        return FitResult(
            history=state.history,
            best_epoch=state.best_epoch,
            best_metric=state.best_metric,
            stopped_early=state.stopped_early,
            resumed_from_epoch=resumed_from,
            resumed_from_step=resumed_from_step,
            world_size=accelerator.num_processes,
            mixed_precision=accelerator.mixed_precision,
            stats={
                **loop.throughput.stats(accelerator, time.perf_counter() - wall_start),
                "batch_size": int(params.batch_size),
                "device": str(accelerator.device),
                "device_name": device_name(accelerator.device),
            },
        )
    finally:
        # prepare() wrapped the model's forward in this fit's autocast; a later fit of the same
        # model (a notebook, a test) at another precision would still run under it
        accelerator.unwrap_model(model, keep_fp32_wrapper=False)
        # in the targets' units on any way out, so that a fit that failed can be run again
        fold_regression_scale(accelerator.unwrap_model(model))
        # a notebook's or a benchmark's next step runs as it would have without this fit
        restore_determinism(determinism_before)


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
