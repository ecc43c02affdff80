"""Training and inference speed: bertpipe vs transformers.Trainer vs the seed loop, same work.

One seeded, stratified 80/20 split of ../shared/data/medical_abstracts (random_state=42), then a
seeded, stratified subset of train and test, fine-tuned with the packaged all-MiniLM-L6-v2 by:

  bertpipe   bertpipe.training.fit (precision auto = bf16 autocast here, length-grouped batches,
             linear warmup/decay) and bertpipe.evaluation.evaluate_model for the test metrics;
  trainer    transformers.Trainer, bf16=True, DataCollatorWithPadding, group_by_length, no eval
             or checkpoints during training, and Trainer.predict for the test metrics;
  seed-loop  the project's first loop: every batch padded to max_length, fp32, AdamW at a
             constant lr, plain PyTorch with tqdm, evaluation in input order, batch 16.

Then the inference paths alone on bertpipe's trained weights: evaluate_model vs Trainer.predict
vs transformers.pipeline; a measured matmul peak; and a training FLOPs estimate against it.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_speed.py --json /tmp/train_speed.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_speed.py --quick
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import copy
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from bertpipe.batching import LengthGroupedBatchSampler, padded_length
from bertpipe.evaluation import evaluate_model
from bertpipe.metrics import compute_metrics
from bertpipe.model import load_classifier, load_tokenizer
from bertpipe.params import EvaluateParams, TrainParams
from bertpipe.tokens import TokenizedSplit, tokenize_split
from bertpipe.training import LoopConfig, fit

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data" / "medical_abstracts"
TASK = "multiclass"
# per training seed: one value if every contestant's head started the same
HEAD_CHECKSUMS: dict[int, set[float]] = {}
PROBLEM_TYPE = "single_label_classification"
CONTESTANTS = ("bertpipe", "trainer", "seed-loop")


# --------------------------------------------------------------------------------------------
# Measuring: wall time, this process's CPU time, and what the rest of the machine did meanwhile


def _machine_busy_seconds() -> float:
    """CPU seconds all processes spent busy since boot (/proc/stat, every core)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    wall_s: float = 0.0
    own_cpu_s: float = 0.0  # this process, all threads
    other_cpu_s: float = 0.0  # every other process on the machine: contention
    load_before: float = 0.0
    load_after: float = 0.0
    waited_s: float = 0.0  # waiting for a quiet machine before the clock started

    @property
    def other_cores(self) -> float:
        """Cores' worth of CPU that other processes used during the phase (0 = quiet machine)."""
        return self.other_cpu_s / self.wall_s if self.wall_s else 0.0


def other_cores_now(seconds: float = 2.0) -> float:
    """Cores' worth of CPU the machine spent busy over `seconds` while this process slept."""
    machine0, own0 = _machine_busy_seconds(), _own_cpu_seconds()
    time.sleep(seconds)
    other = _machine_busy_seconds() - machine0 - (_own_cpu_seconds() - own0)
    return max(0.0, other) / seconds


QUIET_CORES = 0.15
QUIET_WAIT_S = 0.0  # set by --wait-quiet: how long each timed phase may wait for a quiet machine
TOTAL_WAITED_S = 0.0


def wait_quiet(max_wait_s: float) -> float:
    """Wait (up to max_wait_s) until other processes use < QUIET_CORES for 1 s; seconds waited.

    This machine's 2 cores are shared: one busy core slows a 2-thread PyTorch step ~10x, as the
    two OpenMP threads wait on each other, so a timed phase should start on a quiet machine.
    """
    start = time.perf_counter()
    announced = False
    while max_wait_s > 0:
        busy = other_cores_now(1.0)
        if busy < QUIET_CORES:
            break
        waited = time.perf_counter() - start
        if waited >= max_wait_s:
            print(f"  still {busy:.2f} other cores busy after {waited:.0f}s: going on anyway")
            break
        if not announced:
            print(f"  other processes busy ({busy:.2f} cores): waiting up to {max_wait_s:.0f}s")
            announced = True
    global TOTAL_WAITED_S
    TOTAL_WAITED_S += time.perf_counter() - start
    return time.perf_counter() - start


@contextmanager
def timed() -> Iterator[Timing]:
    waited = wait_quiet(QUIET_WAIT_S)
    timing = Timing(load_before=os.getloadavg()[0], waited_s=waited)
    machine0, own0, wall0 = _machine_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
    try:
        yield timing
    finally:
        timing.wall_s = time.perf_counter() - wall0
        timing.own_cpu_s = _own_cpu_seconds() - own0
        timing.other_cpu_s = max(0.0, _machine_busy_seconds() - machine0 - timing.own_cpu_s)
        timing.load_after = os.getloadavg()[0]


# --------------------------------------------------------------------------------------------
# Data


@dataclass
class Data:
    train_texts: list[str]
    train_labels: list[str]
    val_texts: list[str]
    val_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]
    label_names: list[str]
    full_train_size: int
    full_test_size: int


def _subset(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    if size >= len(frame):
        return frame
    part, _ = train_test_split(
        frame, train_size=size, stratify=frame["condition_label"], random_state=seed
    )
    return part


def load_data(train_size: int, test_size: int, val_size: int, seed: int) -> Data:
    """The README's split (stratified 80/20, random_state=42), then stratified subsets.

    The val set (bertpipe's fit needs one for its end-of-epoch metrics) comes from the 80% train
    part, outside the train subset, so no contestant trains on anything another one tests on.
    """
    frame = pd.read_csv(DATA_DIR / "medical_abstracts.csv")
    names = pd.read_csv(DATA_DIR / "labels.csv")
    label_of = dict(zip(names["condition_label"], names["condition_name"], strict=True))
    full_train, full_test = train_test_split(
        frame, test_size=0.2, stratify=frame["condition_label"], random_state=42
    )
    train = _subset(full_train, train_size, seed)
    rest = full_train.drop(index=train.index)
    val = _subset(rest, val_size, seed)
    test = _subset(full_test, test_size, seed)

    def texts(part: pd.DataFrame) -> list[str]:
        return part["medical_abstract"].astype(str).tolist()

    def labels(part: pd.DataFrame) -> list[str]:
        return [label_of[value] for value in part["condition_label"]]

    return Data(
        train_texts=texts(train),
        train_labels=labels(train),
        val_texts=texts(val),
        val_labels=labels(val),
        test_texts=texts(test),
        test_labels=labels(test),
        label_names=[label_of[key] for key in sorted(label_of)],
        full_train_size=len(full_train),
        full_test_size=len(full_test),
    )


@dataclass
class Splits:
    train: TokenizedSplit
    val: TokenizedSplit
    test: TokenizedSplit


def tokenize(data: Data, tokenizer: Any, max_length: int) -> Splits:
    def one(texts: list[str], labels: list[str]) -> TokenizedSplit:
        rows = np.arange(len(texts))
        return tokenize_split(texts, labels, rows, tokenizer, max_length, data.label_names, TASK)

    return Splits(
        train=one(data.train_texts, data.train_labels),
        val=one(data.val_texts, data.val_labels),
        test=one(data.test_texts, data.test_labels),
    )


class EncodedDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """The same token ids as bertpipe's split, as the dicts Trainer and its collator expect."""

    def __init__(self, split: TokenizedSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ids = self.split.ids(index).tolist()
        return {
            "input_ids": ids,
            "attention_mask": [1] * len(ids),
            "labels": int(self.split.labels[index]),
        }


# --------------------------------------------------------------------------------------------
# The model, identical for everyone


def fresh_model(
    seed: int, label_names: list[str], attention_dropout: float | None = None
) -> torch.nn.Module:
    """The packaged MiniLM with a classifier head drawn from the same seed for every contestant.

    `attention_dropout` None keeps the model's published 0.1 (Trainer and the seed loop);
    bertpipe passes its own `train.attention_dropout` default.
    """
    torch.manual_seed(seed)
    model = load_classifier(
        "minilm", len(label_names), PROBLEM_TYPE, label_names, attention_dropout=attention_dropout
    )
    checksum = round(float(model.classifier.weight.detach().double().sum()), 9)
    HEAD_CHECKSUMS.setdefault(seed, set()).add(checksum)
    return model


def non_embedding_params(model: torch.nn.Module) -> int:
    return sum(
        p.numel() for name, p in model.named_parameters() if ".embeddings." not in f".{name}"
    )


@dataclass
class TokenCount:
    real: int = 0  # non-pad tokens
    padded: int = 0  # everything the model computed on, pad included
    attention_pairs: int = 0  # sum over sequences of seq_len**2 (the attention term)

    def add_batch(self, attention_mask: torch.Tensor) -> None:
        rows, seq_len = attention_mask.shape
        self.real += int(attention_mask.sum())
        self.padded += rows * seq_len
        self.attention_pairs += rows * seq_len * seq_len


# --------------------------------------------------------------------------------------------
# The contestants


@dataclass
class Settings:
    lr: float
    epochs: int
    batch_size: int
    seed: int
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    eval_batch_size: int
    progress: bool
    bertpipe_attention_dropout: float | None
    others_attention_dropout: float | None
    bertpipe_group_size: int


@dataclass
class Result:
    contestant: str
    max_length: int
    train_samples: int
    train_loop_s: float  # what the contestant itself calls its training time
    train_call: Timing  # the whole call: setup, the loop, and (bertpipe) the val pass per epoch
    samples_per_s: float
    tokens: TokenCount
    test_accuracy: float
    test_f1_macro: float
    test_predict: Timing
    notes: dict[str, Any] = field(default_factory=dict)


def warmup_steps(settings: Settings, train_size: int) -> int:
    """bertpipe's rule, round(ratio * total steps), handed to Trainer as a step count."""
    steps = -(-train_size // settings.batch_size) * settings.epochs
    return round(settings.warmup_ratio * steps)


def bertpipe_tokens(split: TokenizedSplit, settings: Settings) -> TokenCount:
    """The batches fit runs: its sampler, re-seeded per epoch exactly as fit does."""
    count = TokenCount()
    sampler = LengthGroupedBatchSampler(
        split.lengths, settings.batch_size, settings.seed, group_size=settings.bertpipe_group_size
    )
    for epoch in range(1, settings.epochs + 1):
        sampler.set_epoch(epoch)
        for batch in sampler:
            lengths = split.lengths[batch]
            seq_len = padded_length(int(lengths.max()))
            count.real += int(lengths.sum())
            count.padded += len(batch) * seq_len
            count.attention_pairs += len(batch) * seq_len * seq_len
    return count


def run_bertpipe(
    splits: Splits, settings: Settings, label_names: list[str], pad_id: int, max_length: int
) -> tuple[Result, torch.nn.Module]:
    model = fresh_model(settings.seed, label_names, settings.bertpipe_attention_dropout)
    config = LoopConfig(
        task=TASK,
        lr=settings.lr,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        warmup_ratio=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        patience=None,
        eval_batch_size=settings.eval_batch_size,
        precision="auto",
        group_size=settings.bertpipe_group_size,
        progress=settings.progress,
    )
    with timed() as call:
        fitted = fit(model, splits.train, splits.val, config, pad_id)
    # fit turns on torch.use_deterministic_algorithms for the process; bertpipe's own evaluate
    # stage runs in a fresh process, so the test pass (and everyone after) runs without it
    torch.use_deterministic_algorithms(False)
    with timed() as predict:
        evaluation = evaluate_model(
            model, splits.test, TASK, pad_id, batch_size=settings.eval_batch_size
        )
    stats = fitted.stats
    return Result(
        contestant="bertpipe",
        max_length=max_length,
        train_samples=int(stats["train_samples"]),
        train_loop_s=float(stats["train_seconds"]),
        train_call=call,
        samples_per_s=stats["train_samples"] / stats["train_seconds"],
        tokens=bertpipe_tokens(splits.train, settings),
        test_accuracy=evaluation.metrics["accuracy"],
        test_f1_macro=evaluation.metrics["f1_macro"],
        test_predict=predict,
        notes={
            "mixed_precision": fitted.mixed_precision,
            "padding_fraction": stats["padding_fraction"],
        },
    ), model


def _reset_accelerate() -> None:
    # fit's Accelerator leaves a process-wide state behind; give Trainer's its own
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


def _trainer_collator(tokenizer: Any, count: TokenCount | None) -> Any:
    from transformers import DataCollatorWithPadding

    class CountingCollator(DataCollatorWithPadding):
        def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
            batch = super().__call__(features)
            if count is not None:
                count.add_batch(batch["attention_mask"])
            return batch

    # padded to a multiple of 8, as bertpipe pads, so that only the loops differ
    return CountingCollator(tokenizer, pad_to_multiple_of=8)


def _trainer_args(settings: Settings, output_dir: str, train_size: int) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        learning_rate=settings.lr,
        num_train_epochs=settings.epochs,
        lr_scheduler_type="linear",
        warmup_steps=warmup_steps(settings, train_size),
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        bf16=True,
        train_sampling_strategy="group_by_length",
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        seed=settings.seed,
        dataloader_num_workers=0,
        use_cpu=True,
        disable_tqdm=not settings.progress,
    )


def run_trainer(
    splits: Splits,
    settings: Settings,
    label_names: list[str],
    tokenizer: Any,
    max_length: int,
    scratch: str,
) -> Result:
    from transformers import Trainer

    _reset_accelerate()
    model = fresh_model(settings.seed, label_names, settings.others_attention_dropout)
    count = TokenCount()
    trainer = Trainer(
        model=model,
        args=_trainer_args(settings, scratch, len(splits.train)),
        train_dataset=EncodedDataset(splits.train),
        data_collator=_trainer_collator(tokenizer, count),
        processing_class=tokenizer,
    )
    with timed() as call:
        output = trainer.train()
    tokens = copy.copy(count)
    runtime = float(output.metrics["train_runtime"])
    samples = len(splits.train) * settings.epochs
    with timed() as predict:
        prediction = trainer.predict(EncodedDataset(splits.test))
    # group_by_length also orders predict's batches: score against its own label_ids
    metrics = compute_metrics(
        np.asarray(prediction.label_ids), _softmax(prediction.predictions), TASK
    )
    return Result(
        contestant="trainer",
        max_length=max_length,
        train_samples=samples,
        train_loop_s=runtime,
        train_call=call,
        samples_per_s=samples / runtime,
        tokens=tokens,
        test_accuracy=metrics["accuracy"],
        test_f1_macro=metrics["f1_macro"],
        test_predict=predict,
        notes={"optim": str(trainer.args.optim), "warmup_steps": trainer.args.warmup_steps},
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _padded_tensors(
    texts: list[str], labels: np.ndarray, tokenizer: Any, max_length: int
) -> torch.utils.data.TensorDataset:
    encoded = tokenizer(
        texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return torch.utils.data.TensorDataset(
        encoded["input_ids"], encoded["attention_mask"], torch.from_numpy(labels)
    )


def run_seed_loop(
    data: Data,
    splits: Splits,
    settings: Settings,
    tokenizer: Any,
    max_length: int,
) -> Result:
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    model = fresh_model(settings.seed, data.label_names, settings.others_attention_dropout)
    train_set = _padded_tensors(data.train_texts, splits.train.labels, tokenizer, max_length)
    test_set = _padded_tensors(data.test_texts, splits.test.labels, tokenizer, max_length)
    loader = DataLoader(
        train_set,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    count = TokenCount()
    with timed() as call:
        model.train()
        for epoch in range(settings.epochs):
            batches = tqdm(loader, desc=f"epoch {epoch + 1}", disable=not settings.progress)
            for input_ids, attention_mask, labels in batches:
                loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                count.add_batch(attention_mask)
                batches.set_postfix(loss=f"{loss.item():.4f}")
    with timed() as predict:
        model.eval()
        logits = []
        with torch.no_grad():
            for input_ids, attention_mask, _labels in DataLoader(test_set, batch_size=16):
                logits.append(model(input_ids=input_ids, attention_mask=attention_mask).logits)
        scores = torch.softmax(torch.cat(logits), dim=-1).numpy()
    metrics = compute_metrics(splits.test.labels, scores, TASK)
    samples = len(train_set) * settings.epochs
    return Result(
        contestant="seed-loop",
        max_length=max_length,
        train_samples=samples,
        train_loop_s=call.wall_s,
        train_call=call,
        samples_per_s=samples / call.wall_s,
        tokens=count,
        test_accuracy=metrics["accuracy"],
        test_f1_macro=metrics["f1_macro"],
        test_predict=predict,
    )


# --------------------------------------------------------------------------------------------
# Inference paths, on the same trained weights


@dataclass
class InferenceResult:
    path: str
    max_length: int
    examples: int
    timing: Timing  # the fastest of the repeats
    examples_per_s: float
    accuracy: float
    all_wall_s: list[float]
    real_tokens: int  # non-pad tokens of the test subset


def inference_flops(result: dict[str, Any], params: int, peak: MatmulPeak) -> dict[str, float]:
    """2 x non-embedding params x real tokens, against the bf16 peak (the pipeline: fp32)."""
    tflops = 2.0 * params * result["real_tokens"] / result["timing"]["wall_s"] / 1e12
    reference = peak.fp32_tflops if result["path"] == "pipeline" else peak.bf16_tflops
    return {"tflops_real": tflops, "fraction_of_peak_real": tflops / reference}


def _fastest(run: Callable[[], Any], repeats: int) -> tuple[Timing, list[float], Any]:
    """Run `repeats` timed times: the fastest run's timing, every wall time, the last output."""
    best: Timing | None = None
    walls: list[float] = []
    output = None
    for _ in range(repeats):
        with timed() as timing:
            output = run()
        walls.append(round(timing.wall_s, 3))
        if best is None or timing.wall_s < best.wall_s:
            best = timing
    assert best is not None
    return best, walls, output


def compare_inference(
    model: torch.nn.Module,
    data: Data,
    splits: Splits,
    settings: Settings,
    tokenizer: Any,
    max_length: int,
    scratch: str,
    warmup: int,
    repeats: int,
) -> list[InferenceResult]:
    """bertpipe's evaluate_model vs Trainer.predict (bf16) vs pipeline(batch_size=32).

    bertpipe's trained model is saved with save_pretrained and each path loads its own copy
    with from_pretrained, as a user would: in eval mode, fp32 weights, and without the autocast
    wrapper that Accelerate's prepare puts on the trained object's forward (a copy of that
    object ran the "fp32" pipeline in bf16, and in train mode). Each path gets one untimed
    warm-up run on the first `warmup` test examples, then `repeats` timed runs on the whole test
    subset, of which the fastest counts. bertpipe and Trainer start from tokens (bertpipe's
    tokenize stage does that once); the pipeline starts from raw text, so its time includes the
    tokenizer: the row `bertpipe+tokenize` adds bertpipe's tokenization of the same texts.
    """
    from transformers import AutoModelForSequenceClassification, Trainer, pipeline

    saved = Path(scratch) / f"inference_model_{max_length}"
    model.save_pretrained(saved)

    def load() -> torch.nn.Module:
        return AutoModelForSequenceClassification.from_pretrained(saved, attn_implementation="sdpa")

    n = len(splits.test)
    real_tokens = int(splits.test.lengths.sum())
    gold = splits.test.labels
    head = _take(splits.test, min(warmup, n))
    results: list[InferenceResult] = []

    def record(path: str, timing: Timing, walls: list[float], accuracy: float) -> None:
        rate = n / timing.wall_s
        results.append(
            InferenceResult(
                path, max_length, n, timing, rate, round(accuracy, 6), walls, real_tokens
            )
        )

    # bertpipe: length-sorted batches, bf16 autocast, logits back in input order
    ours = load()
    pad_id = tokenizer.pad_token_id
    evaluate_model(ours, head, TASK, pad_id, settings.eval_batch_size)
    timing, walls, evaluation = _fastest(
        lambda: evaluate_model(ours, splits.test, TASK, pad_id, settings.eval_batch_size),
        repeats,
    )
    record("bertpipe", timing, walls, evaluation.metrics["accuracy"])
    tokenize_timing, _, _ = _fastest(
        lambda: tokenize_split(
            data.test_texts,
            data.test_labels,
            np.arange(n),
            tokenizer,
            max_length,
            data.label_names,
            TASK,
        ),
        repeats,
    )
    both = Timing(
        wall_s=timing.wall_s + tokenize_timing.wall_s,
        own_cpu_s=timing.own_cpu_s + tokenize_timing.own_cpu_s,
        other_cpu_s=timing.other_cpu_s + tokenize_timing.other_cpu_s,
        load_before=timing.load_before,
        load_after=tokenize_timing.load_after,
    )
    record("bertpipe+tokenize", both, [round(both.wall_s, 3)], evaluation.metrics["accuracy"])

    # Trainer.predict, bf16, group_by_length (so rows come back reordered, with their labels)
    _reset_accelerate()
    trainer = Trainer(
        model=load(),
        args=_trainer_args(settings, scratch, len(splits.train)),
        data_collator=_trainer_collator(tokenizer, None),
        processing_class=tokenizer,
    )
    test_set = EncodedDataset(splits.test)
    trainer.predict(EncodedDataset(head))
    timing, walls, prediction = _fastest(lambda: trainer.predict(test_set), repeats)
    predicted = np.asarray(prediction.predictions).argmax(axis=1)
    accuracy = float(np.mean(predicted == prediction.label_ids))
    record("trainer.predict", timing, walls, accuracy)

    # transformers.pipeline, as documented: raw texts in, the top label out, fp32
    classify = pipeline(
        "text-classification",
        model=load(),
        tokenizer=tokenizer,
        batch_size=32,
        device=torch.device("cpu"),
    )
    index = {name: i for i, name in enumerate(data.label_names)}
    classify(data.test_texts[:warmup], truncation=True, max_length=max_length)
    timing, walls, outputs = _fastest(
        lambda: classify(data.test_texts, truncation=True, max_length=max_length), repeats
    )
    predicted = np.asarray([index[output["label"]] for output in outputs])
    record("pipeline", timing, walls, float(np.mean(predicted == gold)))
    return results


def _take(split: TokenizedSplit, count: int) -> TokenizedSplit:
    end = int(split.offsets[count])
    return TokenizedSplit(
        values=split.values[:end],
        offsets=split.offsets[: count + 1],
        type_values=None if split.type_values is None else split.type_values[:end],
        labels=split.labels[:count],
        row_ids=split.row_ids[:count],
    )


# --------------------------------------------------------------------------------------------
# The machine's matmul peak


@dataclass
class MatmulPeak:
    size: int
    fp32_tflops: float
    bf16_tflops: float  # bf16 tensors
    autocast_bf16_tflops: float  # fp32 tensors under torch.autocast("cpu", bfloat16)


def _best_tflops(step: Any, flops: float, repeats: int) -> float:
    step()  # warm-up: oneDNN builds its kernels on the first call
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e12


def measure_peak(size: int, repeats: int) -> MatmulPeak:
    torch.manual_seed(0)
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a16, b16 = a.bfloat16(), b.bfloat16()
    flops = 2.0 * size**3

    def autocast_step() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return a @ b

    return MatmulPeak(
        size=size,
        fp32_tflops=_best_tflops(lambda: a @ b, flops, repeats),
        bf16_tflops=_best_tflops(lambda: a16 @ b16, flops, repeats),
        autocast_bf16_tflops=_best_tflops(autocast_step, flops, repeats),
    )


# --------------------------------------------------------------------------------------------
# Reporting


def flops_estimate(
    result: Result, params: int, layers: int, hidden: int, peak: MatmulPeak
) -> dict[str, float]:
    """6 x non-embedding params x tokens (real and padded), plus the attention matmuls.

    Attention adds 4 * seq_len * hidden FLOPs per token per layer forward (QK^T and AV), so
    12 * layers * hidden * sum(seq_len^2) for forward and backward, on padded shapes.
    """
    real = 6.0 * params * result.tokens.real
    padded = 6.0 * params * result.tokens.padded
    attention = 12.0 * layers * hidden * result.tokens.attention_pairs
    seconds = result.train_loop_s
    reference = peak.fp32_tflops if result.contestant == "seed-loop" else peak.bf16_tflops
    return {
        "flops_real_tokens": real,
        "flops_padded_tokens": padded,
        "flops_padded_with_attention": padded + attention,
        "tflops_real": real / seconds / 1e12,
        "tflops_padded": padded / seconds / 1e12,
        "tflops_padded_with_attention": (padded + attention) / seconds / 1e12,
        "peak_tflops_reference": reference,
        "fraction_of_peak_real": real / seconds / 1e12 / reference,
        "fraction_of_peak_padded_with_attention": (padded + attention) / seconds / 1e12 / reference,
    }


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()


def machine_info() -> dict[str, Any]:
    model_name = "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model_name = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    flags = Path("/proc/cpuinfo").read_text()
    return {
        "cpu": model_name,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "avx512_bf16": " avx512_bf16" in flags,
        "amx_bf16": " amx_bf16" in flags,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "accelerate": __import__("accelerate").__version__,
    }


# --------------------------------------------------------------------------------------------


CONTENDED_CORES = 0.25  # a training phase during which others used more than this is redone


def run_contestant(
    contestant: str,
    data: Data,
    splits: Splits,
    settings: Settings,
    tokenizer: Any,
    max_length: int,
    scratch: str,
    retries: int,
) -> tuple[Result, torch.nn.Module | None]:
    """Train and test one contestant; redo it (up to `retries` times) if the machine was busy.

    Keeps the least contended attempt. Every attempt starts from the same seeded model.
    """
    attempts: list[tuple[Result, torch.nn.Module | None]] = []
    for attempt in range(1 + retries):
        model: torch.nn.Module | None = None
        if contestant == "bertpipe":
            result, model = run_bertpipe(
                splits, settings, data.label_names, tokenizer.pad_token_id, max_length
            )
        elif contestant == "trainer":
            result = run_trainer(splits, settings, data.label_names, tokenizer, max_length, scratch)
        else:
            result = run_seed_loop(data, splits, settings, tokenizer, max_length)
        busy = result.train_call.other_cores
        print(
            f"{contestant}: {result.samples_per_s:.2f} samples/s, "
            f"train {result.train_loop_s:.1f}s, acc {result.test_accuracy:.3f}, "
            f"f1_macro {result.test_f1_macro:.3f}, other processes {busy:.2f} cores"
        )
        attempts.append((result, model))
        if busy <= CONTENDED_CORES:
            break
        if attempt < retries:
            print(f"  the machine was busy during training ({busy:.2f} cores): running it again")
    result, model = min(attempts, key=lambda pair: pair[0].train_call.other_cores)
    result.notes["seed"] = settings.seed
    result.notes["attempts"] = len(attempts)
    result.notes["attempt_samples_per_s"] = [round(r.samples_per_s, 3) for r, _ in attempts]
    result.notes["attempt_other_cores"] = [round(r.train_call.other_cores, 3) for r, _ in attempts]
    return result, model


def _dropout(text: str) -> float | None:
    return None if text == "model" else float(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--train-size", type=int, default=None, help="train subset (default 800)")
    parser.add_argument("--test-size", type=int, default=None, help="test subset (default 320)")
    parser.add_argument("--val-size", type=int, default=None, help="fit's val set (default 32)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=42, help="training: head init, batches")
    parser.add_argument("--data-seed", type=int, default=42, help="which subsets are drawn")
    parser.add_argument("--contestants", nargs="+", choices=CONTESTANTS, default=list(CONTESTANTS))
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument(
        "--retries",
        type=int,
        default=0,
        help="redo a contestant whose training ran while others used > 0.25 cores (up to N times)",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed runs per inference path (fastest counts)"
    )
    parser.add_argument("--matmul-size", type=int, default=None, help="default 4096 (1024 quick)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each timed phase, wait up to this long for other processes to go idle",
    )
    parser.add_argument(
        "--bertpipe-attention-dropout",
        type=_dropout,
        default=TrainParams().attention_dropout,
        help="bertpipe's train.attention_dropout (default: bertpipe's, 0; "
        "'model' keeps the model's 0.1)",
    )
    parser.add_argument(
        "--others-attention-dropout",
        type=_dropout,
        default=None,
        help="Trainer's and the seed loop's attention dropout (default: the model's own 0.1)",
    )
    parser.add_argument(
        "--bertpipe-group-size",
        type=int,
        default=TrainParams().group_size,
        help="bertpipe's train.group_size: batches sorted by length together (default: bertpipe's)",
    )
    parser.add_argument(
        "--f1-seeds",
        type=int,
        nargs="*",
        default=[],
        help="train bertpipe and Trainer again with these seeds (after the timed runs of each "
        "max_length) and report the mean macro-F1 difference over all seeds",
    )
    parser.add_argument(
        "--f1-max-lengths",
        type=int,
        nargs="*",
        default=None,
        help="run the --f1-seeds at these max_lengths only (default: all)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.train_size = args.train_size or (32 if quick else 800)
    args.test_size = args.test_size or (32 if quick else 320)
    args.val_size = args.val_size or (16 if quick else 32)
    args.matmul_size = args.matmul_size or (1024 if quick else 4096)
    return args


def main(argv: list[str] | None = None) -> None:
    global QUIET_WAIT_S
    args = parse_args(argv)
    QUIET_WAIT_S = args.wait_quiet
    started = time.perf_counter()
    load_start = os.getloadavg()
    settings = Settings(
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        warmup_ratio=0.1,
        weight_decay=0.01,
        max_grad_norm=1.0,
        # bertpipe's default evaluate.batch_size, for bertpipe and Trainer.predict alike
        eval_batch_size=EvaluateParams().batch_size,
        progress=not args.no_progress,
        bertpipe_attention_dropout=args.bertpipe_attention_dropout,
        others_attention_dropout=args.others_attention_dropout,
        bertpipe_group_size=args.bertpipe_group_size,
    )
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"load average at start: {load_start}")

    with timed() as peak_timing:
        peak = measure_peak(args.matmul_size, repeats=3 if args.quick else 5)
    print(
        f"measured matmul peak ({peak.size}x{peak.size}): fp32 {peak.fp32_tflops:.3f} TFLOP/s, "
        f"bf16 {peak.bf16_tflops:.3f}, autocast bf16 {peak.autocast_bf16_tflops:.3f} "
        f"(other processes used {peak_timing.other_cores:.2f} cores meanwhile)"
    )

    data = load_data(args.train_size, args.test_size, args.val_size, args.data_seed)
    print(
        f"data: split {data.full_train_size}/{data.full_test_size} (stratified 80/20, rs 42); "
        f"subsets train {len(data.train_texts)}, test {len(data.test_texts)}, "
        f"val (fit only) {len(data.val_texts)}; data seed {args.data_seed}, seed {args.seed}"
    )
    tokenizer = load_tokenizer("minilm")
    probe = fresh_model(args.seed, data.label_names)
    params = non_embedding_params(probe)
    layers, hidden = probe.config.num_hidden_layers, probe.config.hidden_size
    del probe

    results: list[Result] = []
    quality: list[Result] = []  # extra seeds: bertpipe and Trainer trained again, for F1 only
    inference: list[InferenceResult] = []
    length_stats: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="train_speed_") as scratch:
        for max_length in args.max_lengths:
            splits = tokenize(data, tokenizer, max_length)
            lengths = splits.train.lengths
            length_stats[max_length] = {
                "mean_train_length": float(lengths.mean()),
                "truncated_fraction": float(np.mean(lengths >= max_length)),
            }
            print(
                f"\n=== max_length {max_length}: mean train length {lengths.mean():.1f}, "
                f"{np.mean(lengths >= max_length):.0%} truncated ==="
            )
            trained = None
            for contestant in args.contestants:
                print(f"--- {contestant}, max_length {max_length}")
                result, model = run_contestant(
                    contestant, data, splits, settings, tokenizer, max_length, scratch, args.retries
                )
                if contestant == "bertpipe":
                    trained = model
                results.append(result)
            if trained is not None and not args.skip_inference:
                print(f"--- inference paths, max_length {max_length}")
                inference += compare_inference(
                    trained,
                    data,
                    splits,
                    settings,
                    tokenizer,
                    max_length,
                    scratch,
                    warmup=16,
                    repeats=args.repeats,
                )
            f1_seeds = args.f1_seeds if max_length in (args.f1_max_lengths or [max_length]) else []
            for extra_seed in f1_seeds:
                if extra_seed == args.seed:
                    continue
                seeded = replace(settings, seed=extra_seed)
                for contestant in ("bertpipe", "trainer"):
                    if contestant in args.contestants:
                        print(f"--- {contestant}, max_length {max_length}, seed {extra_seed}")
                        result, _ = run_contestant(
                            contestant, data, splits, seeded, tokenizer, max_length, scratch, 0
                        )
                        quality.append(result)

    report = build_report(args, machine, peak, data, results, inference, params, layers, hidden)
    report["length_stats"] = length_stats
    report["load_average_start"] = load_start
    report["load_average_end"] = os.getloadavg()
    report["total_wall_s"] = time.perf_counter() - started
    report["waited_for_quiet_s"] = TOTAL_WAITED_S
    report["identical_head_init"] = all(len(sums) == 1 for sums in HEAD_CHECKSUMS.values())
    report["f1_seeds"] = f1_seed_summary(args.max_lengths, [*results, *quality])
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {args.json}")


def f1_seed_summary(max_lengths: list[int], results: list[Result]) -> dict[str, Any]:
    """Test macro-F1 of bertpipe and Trainer per seed (the timed run's and --f1-seeds), and the
    mean difference: one 1-epoch run on 800 rows is too noisy to compare F1 alone."""
    summary: dict[str, Any] = {}
    for max_length in max_lengths:
        by_seed: dict[int, dict[str, float]] = {}
        for result in results:
            if result.max_length == max_length and result.contestant in ("bertpipe", "trainer"):
                scores = by_seed.setdefault(result.notes["seed"], {})
                scores[result.contestant] = result.test_f1_macro
        pairs = [v for v in by_seed.values() if {"bertpipe", "trainer"} <= set(v)]
        if len(pairs) < 2:
            continue
        differences = [v["bertpipe"] - v["trainer"] for v in pairs]
        summary[str(max_length)] = {
            "by_seed": {str(seed): v for seed, v in by_seed.items()},
            "mean_bertpipe": float(np.mean([v["bertpipe"] for v in pairs])),
            "mean_trainer": float(np.mean([v["trainer"] for v in pairs])),
            "mean_difference": float(np.mean(differences)),
            "standard_error": float(np.std(differences, ddof=1) / np.sqrt(len(differences))),
        }
    return summary


def build_report(
    args: argparse.Namespace,
    machine: dict[str, Any],
    peak: MatmulPeak,
    data: Data,
    results: list[Result],
    inference: list[InferenceResult],
    params: int,
    layers: int,
    hidden: int,
) -> dict[str, Any]:
    by_key = {(r.contestant, r.max_length): r for r in results}
    ratios: dict[str, dict[str, float]] = {}
    for max_length in args.max_lengths:
        ours = by_key.get(("bertpipe", max_length))
        if ours is None:
            continue
        entry: dict[str, float] = {}
        for other in ("trainer", "seed-loop"):
            if (other, max_length) in by_key:
                theirs = by_key[(other, max_length)]
                entry[f"samples_per_s_vs_{other}"] = ours.samples_per_s / theirs.samples_per_s
                entry[f"f1_macro_minus_{other}"] = ours.test_f1_macro - theirs.test_f1_macro
        ratios[str(max_length)] = entry
    inference_ratios: dict[str, float] = {}
    for max_length in args.max_lengths:
        rates = {r.path: r.examples_per_s for r in inference if r.max_length == max_length}
        others = [rates[p] for p in ("trainer.predict", "pipeline") if p in rates]
        if "bertpipe" in rates and others:
            inference_ratios[str(max_length)] = rates["bertpipe"] / max(others)
            inference_ratios[f"{max_length}_with_tokenize"] = rates["bertpipe+tokenize"] / max(
                others
            )
    return {
        "command": " ".join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine,
        "settings": {
            "train_size": len(data.train_texts),
            "test_size": len(data.test_texts),
            "val_size": len(data.val_texts),
            "full_split": [data.full_train_size, data.full_test_size],
            "max_lengths": args.max_lengths,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "data_seed": args.data_seed,
            "warmup_ratio": 0.1,
            "weight_decay": 0.01,
            "bertpipe_attention_dropout": args.bertpipe_attention_dropout,
            "others_attention_dropout": args.others_attention_dropout,
            "bertpipe_group_size": args.bertpipe_group_size,
        },
        "matmul_peak": asdict(peak),
        "non_embedding_params": params,
        "results": [
            {**asdict(r), "flops": flops_estimate(r, params, layers, hidden, peak)} for r in results
        ],
        "ratios": ratios,
        "inference": [
            {**asdict(r), "flops": inference_flops(asdict(r), params, peak)} for r in inference
        ],
        "inference_ratio_vs_faster_other": inference_ratios,
    }


def print_report(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print("\n================ summary ================")
    print(
        f"subsets: train {settings['train_size']}, test {settings['test_size']} "
        f"(of {settings['full_split'][0]}/{settings['full_split'][1]}), "
        f"val {settings['val_size']}; "
        f"epochs {settings['epochs']}, batch {settings['batch_size']}, lr {settings['lr']}"
    )
    peak = report["matmul_peak"]
    print(
        f"measured matmul peak {peak['size']}^3: fp32 {peak['fp32_tflops']:.3f} TFLOP/s, "
        f"bf16 {peak['bf16_tflops']:.3f}, autocast bf16 {peak['autocast_bf16_tflops']:.3f}"
    )
    print(
        f"non-embedding parameters: {report['non_embedding_params']:,}; every contestant's "
        f"classifier head starts identical: {report['identical_head_init']}\n"
    )
    rows = []
    for r in report["results"]:
        f = r["flops"]
        rows.append(
            [
                r["contestant"],
                str(r["max_length"]),
                f"{r['samples_per_s']:.2f}",
                f"{r['train_loop_s']:.1f}",
                f"{r['train_call']['wall_s']:.1f}",
                f"{r['test_accuracy']:.3f}",
                f"{r['test_f1_macro']:.3f}",
                f"{r['test_predict']['wall_s']:.1f}",
                f"{r['tokens']['real'] / max(r['tokens']['padded'], 1):.2f}",
                f"{f['tflops_real']:.3f}",
                f"{f['fraction_of_peak_real']:.1%}",
                f"{f['fraction_of_peak_padded_with_attention']:.1%}",
                f"{r['train_call']['other_cpu_s'] / r['train_call']['wall_s']:.2f}",
            ]
        )
    print_table(
        [
            "contestant",
            "max_len",
            "train samples/s",
            "train s",
            "call s",
            "test acc",
            "macro-F1",
            "test pred s",
            "real/padded tok",
            "TFLOP/s (6N, real)",
            "of peak (real)",
            "of peak (padded+attn)",
            "other cores",
        ],
        rows,
    )
    print(
        "of peak: against the measured bf16 matmul peak (bertpipe, Trainer) or the fp32 one "
        "(the seed loop, the pipeline); real = non-pad tokens x 6N (train) or 2N (inference)\n"
    )
    for max_length, entry in report["ratios"].items():
        parts = [
            f"{key.replace('samples_per_s_vs_', 'bertpipe/')} {value:.2f}x"
            for key, value in entry.items()
            if key.startswith("samples_per_s")
        ]
        parts += [
            f"F1 bertpipe-{key.removeprefix('f1_macro_minus_')} {value:+.3f}"
            for key, value in entry.items()
            if key.startswith("f1_macro")
        ]
        print(f"max_length {max_length}: " + ", ".join(parts))
    for max_length, entry in report.get("f1_seeds", {}).items():
        seeds = ", ".join(
            f"{seed}: {v.get('bertpipe', float('nan')):.3f} / {v.get('trainer', float('nan')):.3f}"
            for seed, v in entry["by_seed"].items()
        )
        print(
            f"max_length {max_length}, macro-F1 bertpipe / Trainer by seed: {seeds}; mean "
            f"{entry['mean_bertpipe']:.3f} / {entry['mean_trainer']:.3f}, difference "
            f"{entry['mean_difference']:+.3f} (standard error {entry['standard_error']:.3f})"
        )
    if report["inference"]:
        print()
        print_table(
            [
                "inference path",
                "max_len",
                "examples",
                "seconds",
                "examples/s",
                "accuracy",
                "TFLOP/s (2N, real)",
                "of peak",
                "other cores",
            ],
            [
                [
                    r["path"],
                    str(r["max_length"]),
                    str(r["examples"]),
                    f"{r['timing']['wall_s']:.2f}",
                    f"{r['examples_per_s']:.1f}",
                    f"{r['accuracy']:.3f}",
                    f"{r['flops']['tflops_real']:.3f}",
                    f"{r['flops']['fraction_of_peak_real']:.1%}",
                    f"{r['timing']['other_cpu_s'] / r['timing']['wall_s']:.2f}",
                ]
                for r in report["inference"]
            ],
        )
        for key, value in report["inference_ratio_vs_faster_other"].items():
            print(
                f"inference bertpipe / faster of (Trainer.predict, pipeline), {key}: {value:.2f}x"
            )
    print(
        f"\ntotal {report['total_wall_s']:.0f}s (of which {report['waited_for_quiet_s']:.0f}s "
        f"waiting for a quiet machine), peak RSS {report['peak_rss_mib']:.0f} MiB, "
        f"load average start {report['load_average_start'][0]:.2f} "
        f"end {report['load_average_end'][0]:.2f}"
    )


if __name__ == "__main__":
    main()
