"""The three training contestants of train_speed.py, on the same data and the same seeded model:
bertpipe's `fit`, transformers.Trainer, and the project's first loop (the "seed loop")."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from abstracts import Data
from harness import Harness, Timing

from bertpipe.batching import LengthGroupedBatchSampler, padded_length
from bertpipe.errors import UserError
from bertpipe.evaluation import evaluate_model
from bertpipe.metrics import compute_metrics
from bertpipe.model import load_classifier
from bertpipe.params import Params
from bertpipe.tokens import TokenizedSplit, tokenize_split
from bertpipe.training import fit, make_accelerator

TASK = "multiclass"


PROBLEM_TYPE = "single_label_classification"


CONTESTANTS = ("bertpipe", "trainer", "seed-loop")

DEVICES = ("cpu", "cuda")


def resolve_device(name: str | None) -> torch.device:
    """--device: cpu or cuda; None picks a CUDA GPU where torch sees one, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in DEVICES:
        raise UserError(f"--device {name}: choose cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False); "
            "run with --device cpu, or on a GPU machine with a CUDA build of torch"
        )
    return torch.device(name)


def model_device(model: torch.nn.Module) -> str:
    """Where the model's weights are: "cpu" or "cuda"."""
    return next(model.parameters()).device.type


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


def fresh_model(
    seed: int,
    label_names: list[str],
    attention_dropout: float | None = None,
    model: str = "minilm",
) -> torch.nn.Module:
    """`model` (the packaged MiniLM by default, or a folder) with a classifier head drawn from
    the same seed for every contestant, on the CPU: each contestant moves it to the device.

    `attention_dropout` None keeps the model's published 0.1 (Trainer and the seed loop);
    bertpipe passes its own `train.attention_dropout` default.
    """
    torch.manual_seed(seed)
    return load_classifier(
        model, len(label_names), PROBLEM_TYPE, label_names, attention_dropout=attention_dropout
    )


def head_checksum(model: torch.nn.Module) -> float:
    """A fingerprint of the classifier head: equal for every contestant of one seed."""
    return round(float(model.classifier.weight.detach().double().sum()), 9)


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


@dataclass
class Settings:
    # bertpipe's params (the schema's defaults but for the options given); Trainer and the seed
    # loop take the same lr, epochs, batch size, seed, warmup, weight decay and clipping
    params: Params
    progress: bool
    others_attention_dropout: float | None  # None: the model's own
    # every contestant trains and predicts here, and the matmul peak is measured here
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    model: str = "minilm"  # the packaged MiniLM, or a folder holding the same model


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
    batch_size: int = 0  # the contestant's train batch
    notes: dict[str, Any] = field(default_factory=dict)


def warmup_steps(params: Params, train_size: int) -> int:
    """bertpipe's rule, round(ratio * total steps), handed to Trainer as a step count."""
    steps = -(-train_size // params.batch_size) * params.epochs
    return round(params.train.warmup_ratio * steps)


def bertpipe_tokens(split: TokenizedSplit, params: Params) -> TokenCount:
    """The batches fit runs: its sampler, re-seeded per epoch exactly as fit does."""
    count = TokenCount()
    sampler = LengthGroupedBatchSampler(
        split.lengths, params.batch_size, params.seed, group_size=params.train.group_size
    )
    for epoch in range(1, params.epochs + 1):
        sampler.set_epoch(epoch)
        for batch in sampler:
            lengths = split.lengths[batch]
            seq_len = padded_length(int(lengths.max()))
            count.real += int(lengths.sum())
            count.padded += len(batch) * seq_len
            count.attention_pairs += len(batch) * seq_len * seq_len
    return count


def run_bertpipe(
    splits: Splits,
    settings: Settings,
    label_names: list[str],
    pad_id: int,
    max_length: int,
    harness: Harness,
) -> tuple[Result, torch.nn.Module]:
    params = settings.params
    model = fresh_model(params.seed, label_names, params.train.attention_dropout, settings.model)
    checksum = head_checksum(model)
    accelerator = bertpipe_accelerator(params.train.precision, settings.device)
    with harness.timed() as call:
        fitted = fit(
            model,
            splits.train,
            splits.val,
            params,
            pad_id,
            progress=settings.progress,
            accelerator=accelerator,
        )
    trained_on = model_device(model)
    with harness.timed() as predict:
        evaluation = evaluate_model(
            model, splits.test, TASK, pad_id, batch_size=params.evaluate.batch_size
        )
    stats = fitted.stats
    # evaluate_model takes the default device (a GPU where torch sees one): train_speed hides
    # the GPU for a --device cpu run, and this says so if a run ever mixed devices again
    predicted_on = model_device(model)
    if {trained_on, predicted_on} != {settings.device.type}:
        raise RuntimeError(
            f"bertpipe trained on {trained_on} and predicted on {predicted_on}, "
            f"not on {settings.device.type}"
        )
    return Result(
        contestant="bertpipe",
        max_length=max_length,
        train_samples=int(stats["train_samples"]),
        train_loop_s=float(stats["train_seconds"]),
        train_call=call,
        samples_per_s=stats["train_samples"] / stats["train_seconds"],
        tokens=bertpipe_tokens(splits.train, params),
        test_accuracy=evaluation.metrics["accuracy"],
        test_f1_macro=evaluation.metrics["f1_macro"],
        test_predict=predict,
        batch_size=params.batch_size,
        notes={
            "device": trained_on,
            "mixed_precision": fitted.mixed_precision,
            "padding_fraction": stats["padding_fraction"],
            "head_checksum": checksum,
        },
    ), model


def reset_accelerate() -> None:
    """Forget the Accelerate state the last contestant left in this process.

    fit's Accelerator and Trainer's TrainingArguments leave process-wide state behind
    (AcceleratorState: the precision; PartialState: the device). train_speed.py is one process,
    never launched by torchrun or accelerate, so nothing in that state is worth keeping."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def bertpipe_accelerator(precision: str, device: torch.device) -> Any:
    """The Accelerator bertpipe's fit builds for itself (training.make_accelerator), on `device`."""
    reset_accelerate()
    accelerator = make_accelerator(precision, device=device)
    if accelerator.device.type != device.type:
        raise RuntimeError(f"bertpipe's Accelerator is on {accelerator.device}, not on {device}")
    return accelerator


def trainer_collator(tokenizer: Any, count: TokenCount | None) -> Any:
    from transformers import DataCollatorWithPadding

    class CountingCollator(DataCollatorWithPadding):
        def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
            batch = super().__call__(features)
            if count is not None:
                count.add_batch(batch["attention_mask"])
            return batch

    # padded to a multiple of 8, as bertpipe pads, so that only the loops differ
    return CountingCollator(tokenizer, pad_to_multiple_of=8)


def trainer_device_options(device: torch.device) -> dict[str, bool]:
    """TrainingArguments that put Trainer on `device`, as every other contestant: bf16 where
    bertpipe's precision auto picks it (a GPU that has it; the CPU, where the earlier runs of this
    benchmark gave Trainer bf16 too), and pinned memory only where a GPU copies from it."""
    on_cpu = device.type == "cpu"
    return {
        "use_cpu": on_cpu,
        "bf16": on_cpu or torch.cuda.is_bf16_supported(),
        "dataloader_pin_memory": not on_cpu,
    }


def trainer_args(settings: Settings, output_dir: str, train_size: int) -> Any:
    from transformers import TrainingArguments

    params = settings.params
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.evaluate.batch_size,
        learning_rate=params.lr,
        num_train_epochs=params.epochs,
        lr_scheduler_type="linear",
        warmup_steps=warmup_steps(params, train_size),
        weight_decay=params.train.weight_decay,
        max_grad_norm=params.train.max_grad_norm,
        train_sampling_strategy="group_by_length",
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        seed=params.seed,
        dataloader_num_workers=0,
        disable_tqdm=not settings.progress,
        **trainer_device_options(settings.device),
    )


def run_trainer(
    splits: Splits,
    settings: Settings,
    label_names: list[str],
    tokenizer: Any,
    max_length: int,
    scratch: str,
    harness: Harness,
) -> Result:
    from transformers import Trainer

    reset_accelerate()
    model = fresh_model(
        settings.params.seed, label_names, settings.others_attention_dropout, settings.model
    )
    checksum = head_checksum(model)
    count = TokenCount()
    trainer = Trainer(
        model=model,
        args=trainer_args(settings, scratch, len(splits.train)),
        train_dataset=EncodedDataset(splits.train),
        data_collator=trainer_collator(tokenizer, count),
        processing_class=tokenizer,
    )
    with harness.timed() as call:
        output = trainer.train()
    tokens = copy.copy(count)
    runtime = float(output.metrics["train_runtime"])
    samples = len(splits.train) * settings.params.epochs
    with harness.timed() as predict:
        prediction = trainer.predict(EncodedDataset(splits.test))
    trained_on = model_device(trainer.model)
    if {trained_on, trainer.args.device.type} != {settings.device.type}:
        raise RuntimeError(
            f"Trainer ran on {trainer.args.device} with its model on {trained_on}, "
            f"not on {settings.device.type}"
        )
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
        batch_size=settings.params.batch_size,
        notes={
            "device": trained_on,
            "bf16": trainer.args.bf16,
            "optim": str(trainer.args.optim),
            "warmup_steps": trainer.args.warmup_steps,
            "head_checksum": checksum,
        },
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
    harness: Harness,
) -> Result:
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    params = settings.params
    device = settings.device
    model = fresh_model(
        params.seed, data.label_names, settings.others_attention_dropout, settings.model
    ).to(device)
    checksum = head_checksum(model)
    train_set = _padded_tensors(data.train_texts, splits.train.labels, tokenizer, max_length)
    test_set = _padded_tensors(data.test_texts, splits.test.labels, tokenizer, max_length)
    loader = DataLoader(
        train_set,
        batch_size=params.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(params.seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr)
    count = TokenCount()
    with harness.timed() as call:
        model.train()
        for epoch in range(params.epochs):
            batches = tqdm(loader, desc=f"epoch {epoch + 1}", disable=not settings.progress)
            for input_ids, attention_mask, labels in batches:
                input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
                labels = labels.to(device)
                loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                count.add_batch(attention_mask)
                batches.set_postfix(loss=f"{loss.item():.4f}")
    with harness.timed() as predict:
        model.eval()
        logits = []
        with torch.no_grad():
            for input_ids, attention_mask, _labels in DataLoader(test_set, batch_size=16):
                output = model(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)
                )
                logits.append(output.logits)
        scores = torch.softmax(torch.cat(logits).float(), dim=-1).cpu().numpy()
    metrics = compute_metrics(splits.test.labels, scores, TASK)
    samples = len(train_set) * params.epochs
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
        batch_size=params.batch_size,
        notes={"device": model_device(model), "head_checksum": checksum},
    )
