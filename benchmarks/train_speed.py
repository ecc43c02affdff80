"""Training and inference speed: bertpipe vs transformers.Trainer vs the seed loop, same work.

One seeded, stratified 80/20 split of the medical abstracts (abstracts.py, random_state=42), then a
seeded, stratified subset of train and test, fine-tuned with the packaged all-MiniLM-L6-v2 by:

  bertpipe   bertpipe.training.fit (precision auto = bf16 autocast here, length-grouped batches,
             linear warmup/decay) and bertpipe.evaluation.evaluate_model for the test metrics;
  trainer    transformers.Trainer, bf16=True, DataCollatorWithPadding, group_by_length, no eval
             or checkpoints during training, and Trainer.predict for the test metrics;
  seed-loop  the project's first loop: every batch padded to max_length, fp32, AdamW at a
             constant lr, plain PyTorch with tqdm, evaluation in input order, batch 16.

Then the inference paths alone on bertpipe's trained weights: evaluate_model vs Trainer.predict
vs transformers.pipeline (fp32 and bf16); a measured matmul peak; and a training FLOPs estimate
against it.

Every contestant, the inference paths and the matmul peak run on one device, --device cpu or
cuda (default: a CUDA GPU where torch sees one, else the CPU). --batch-size takes several sizes
(each contestant runs at each); --sweep-batch-sizes trains bertpipe alone at more sizes, and the
other contestants again at the fastest one. The last table holds the figures against issue 23's
targets for one H200.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_speed.py --json /tmp/train_speed.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_speed.py --quick
    benchmarks/gpu_compare.sh    # on a GPU machine: the whole comparison (BENCHMARKS.md, "GPU")
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --device cpu on a machine with a GPU: hide the GPU before torch first looks for one, so that
# every default that takes "cuda if there is one" (bertpipe's evaluate_model, Accelerate,
# Trainer, pipeline) lands on the CPU with the contestants. After CUDA starts it is too late.
if __name__ == "__main__" and " --device cpu " in f" {' '.join(sys.argv).replace('=', ' ')} ":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np
import torch
from abstracts import DATA_DIR, Data, load_data
from contestants import (
    CONTESTANTS,
    DEVICES,
    TASK,
    EncodedDataset,
    Result,
    Settings,
    Splits,
    fresh_model,
    non_embedding_params,
    reset_accelerate,
    resolve_device,
    run_bertpipe,
    run_seed_loop,
    run_trainer,
    tokenize,
    trainer_args,
    trainer_collator,
)
from harness import Harness, Timing, machine_info, measure_peak, peak_rss_mib
from speed_report import (
    InferenceResult,
    build_report,
    f1_seed_summary,
    print_report,
    print_targets,
    target_rows,
)

from bertpipe.errors import run_main
from bertpipe.evaluation import evaluate_model
from bertpipe.model import load_tokenizer
from bertpipe.params import Params
from bertpipe.tokens import TokenizedSplit, tokenize_split


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
    harness: Harness,
) -> list[InferenceResult]:
    """bertpipe's evaluate_model vs Trainer.predict (bf16) vs pipeline(batch_size=32), fp32
    and bf16, all on settings.device.

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
    batch_size = settings.params.evaluate.batch_size
    evaluate_model(ours, head, TASK, pad_id, batch_size)
    timing, walls, evaluation = harness.fastest(
        lambda: evaluate_model(ours, splits.test, TASK, pad_id, batch_size),
        repeats,
    )
    record("bertpipe", timing, walls, evaluation.metrics["accuracy"])
    tokenize_timing, _, _ = harness.fastest(
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
    reset_accelerate()
    trainer = Trainer(
        model=load(),
        args=trainer_args(settings, scratch, len(splits.train)),
        data_collator=trainer_collator(tokenizer, None),
        processing_class=tokenizer,
    )
    test_set = EncodedDataset(splits.test)
    trainer.predict(EncodedDataset(head))
    timing, walls, prediction = harness.fastest(lambda: trainer.predict(test_set), repeats)
    predicted = np.asarray(prediction.predictions).argmax(axis=1)
    accuracy = float(np.mean(predicted == prediction.label_ids))
    record("trainer.predict", timing, walls, accuracy)

    # transformers.pipeline, as documented: raw texts in, the top label out; fp32 (the model
    # as saved), then bf16 weights (dtype=torch.bfloat16, as its docs suggest for speed)
    index = {name: i for i, name in enumerate(data.label_names)}
    for path, model_kwargs in (
        ("pipeline", {"model": load()}),
        ("pipeline-bf16", {"model": str(saved), "dtype": torch.bfloat16}),
    ):
        classify = pipeline(
            "text-classification",
            tokenizer=tokenizer,
            batch_size=32,
            device=settings.device,
            **model_kwargs,
        )
        classify(data.test_texts[:warmup], truncation=True, max_length=max_length)
        timing, walls, outputs = harness.fastest(
            lambda classify=classify: classify(
                data.test_texts, truncation=True, max_length=max_length
            ),
            repeats,
        )
        predicted = np.asarray([index[output["label"]] for output in outputs])
        record(path, timing, walls, float(np.mean(predicted == gold)))
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
    harness: Harness,
    label: str = "",
) -> tuple[Result, torch.nn.Module | None]:
    """Train and test one contestant; redo it (up to `retries` times) if the machine was busy.

    Keeps the least contended attempt. Every attempt starts from the same seeded model.
    """
    attempts: list[tuple[Result, torch.nn.Module | None]] = []
    cuda = settings.device.type == "cuda"
    for attempt in range(1 + retries):
        model: torch.nn.Module | None = None
        if cuda:  # the high-water mark since this attempt began (the models that earlier
            # runs still hold count in it; the matmul peak's buffers do not)
            torch.cuda.reset_peak_memory_stats(settings.device)
        if contestant == "bertpipe":
            result, model = run_bertpipe(
                splits, settings, data.label_names, tokenizer.pad_token_id, max_length, harness
            )
        elif contestant == "trainer":
            result = run_trainer(
                splits, settings, data.label_names, tokenizer, max_length, scratch, harness
            )
        else:
            result = run_seed_loop(data, splits, settings, tokenizer, max_length, harness)
        if cuda:
            result.notes["peak_gpu_memory_mib"] = (
                torch.cuda.max_memory_allocated(settings.device) / 2**20
            )
        busy = result.train_call.other_cores
        print(
            f"{contestant}{' ' + label if label else ''}: {result.samples_per_s:.2f} samples/s, "
            f"train {result.train_loop_s:.1f}s, acc {result.test_accuracy:.3f}, "
            f"f1_macro {result.test_f1_macro:.3f}, other processes {busy:.2f} cores"
        )
        attempts.append((result, model))
        if busy <= CONTENDED_CORES:
            break
        if attempt < retries:
            print(f"  the machine was busy during training ({busy:.2f} cores): running it again")
    result, model = min(attempts, key=lambda pair: pair[0].train_call.other_cores)
    result.notes["seed"] = settings.params.seed
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
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help="where every contestant runs (default: cuda where torch sees a GPU, else cpu)",
    )
    parser.add_argument(
        "--model",
        default="minilm",
        help="the encoder: minilm (the packaged all-MiniLM-L6-v2) or a folder holding it",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DATA_DIR,
        help="folder with medical_abstracts.csv and labels.csv (default: ../shared's)",
    )
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--train-size", type=int, default=None, help="train subset (default 800)")
    parser.add_argument("--test-size", type=int, default=None, help="test subset (default 320)")
    parser.add_argument("--val-size", type=int, default=None, help="fit's val set (default 32)")
    parser.add_argument("--epochs", type=int, default=1)
    # bertpipe's hyperparameters come from the params schema, the one place defaults live
    defaults = Params()
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[defaults.batch_size],
        help="train batch sizes: every contestant runs at each (default: bertpipe's)",
    )
    parser.add_argument(
        "--sweep-batch-sizes",
        type=int,
        nargs="*",
        default=[],
        help="train bertpipe alone at these sizes too; the other contestants then run again at "
        "bertpipe's fastest size of all",
    )
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="training: head init, batches"
    )
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
    parser.add_argument(
        "--matmul-size", type=int, default=None, help="default 4096, 8192 on CUDA (1024 quick)"
    )
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
        default=defaults.train.attention_dropout,
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
        default=defaults.train.group_size,
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
    parser.add_argument(
        "--warmup-rows",
        type=int,
        default=0,
        help="before each timed run, the same contestant and batch size trains untimed on this "
        "many rows (a GPU loads kernels and picks plans on first use); default 0, none",
    )
    parser.add_argument(
        "--bertpipe-compile",
        action="store_true",
        help="bertpipe with train.compile: true (torch.compile; CUDA graphs on one GPU)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.train_size = args.train_size or (32 if quick else 800)
    args.test_size = args.test_size or (32 if quick else 320)
    args.val_size = args.val_size or (16 if quick else 32)
    if quick and not args.matmul_size:
        args.matmul_size = 1024
    return args


def run_batch_sizes(
    contestants: list[str],
    batch_sizes: list[int],
    data: Data,
    splits: Splits,
    settings: Settings,
    tokenizer: Any,
    max_length: int,
    scratch: str,
    retries: int,
    harness: Harness,
    warmup_rows: int = 0,
    failures: list[dict[str, Any]] | None = None,
) -> tuple[list[Result], torch.nn.Module | None]:
    """Each contestant at each batch size; bertpipe's model trained at the first size.

    `warmup_rows` > 0: each contestant first trains once, untimed, on that many train rows at
    the same batch size, so that none is timed on a cold GPU (kernels load on first use, and
    cuBLAS and cuDNN pick their plans per new shape). A contestant that fails (out of memory,
    say) is recorded in `failures`, and the others still run."""
    results: list[Result] = []
    trained = None
    for batch_size in batch_sizes:
        sized = replace(
            settings, params=settings.params.model_copy(update={"batch_size": batch_size})
        )
        for contestant in contestants:
            print(f"--- {contestant}, max_length {max_length}, batch {batch_size}")
            try:
                if warmup_rows:
                    warm_data, warm_splits = _first_rows(data, splits, warmup_rows)
                    run_contestant(
                        contestant,
                        warm_data,
                        warm_splits,
                        sized,
                        tokenizer,
                        max_length,
                        scratch,
                        0,
                        harness,
                        label="warm-up (untimed)",
                    )
                result, model = run_contestant(
                    contestant,
                    data,
                    splits,
                    sized,
                    tokenizer,
                    max_length,
                    scratch,
                    retries,
                    harness,
                )
            except Exception as exc:  # one contestant's failure is a result too
                if failures is None:
                    raise
                what = f"{contestant} at batch {batch_size}"
                where = {"contestant": contestant, "max_length": max_length}
                record_failure(failures, exc, what, **where, batch_size=batch_size)
                result = None
            if result is None:
                if settings.device.type == "cuda":  # once the failed run's tensors are freed
                    torch.cuda.empty_cache()
                continue
            if contestant == "bertpipe" and trained is None:
                trained = model
            results.append(result)
    return results, trained


def record_failure(failures: list[dict[str, Any]], exc: Exception, what: str, **where: Any) -> None:
    """A run that raised: one line in the log, and an entry of `failures` saying where."""
    error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
    print(f"  {what} failed: {error}")
    failures.append({**where, "error": error})


def _first_rows(data: Data, splits: Splits, rows: int) -> tuple[Data, Splits]:
    """The data and splits cut to their first `rows` train and test rows (a warm-up run)."""
    warm_data = replace(
        data,
        train_texts=data.train_texts[:rows],
        train_labels=data.train_labels[:rows],
        test_texts=data.test_texts[:rows],
        test_labels=data.test_labels[:rows],
    )
    warm_splits = replace(
        splits,
        train=_take(splits.train, min(rows, len(splits.train))),
        test=_take(splits.test, min(rows, len(splits.test))),
    )
    return warm_data, warm_splits


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    args.matmul_size = args.matmul_size or (8192 if device.type == "cuda" else 4096)
    harness = Harness(max_wait_s=args.wait_quiet)
    started = time.perf_counter()
    load_start = os.getloadavg()
    defaults = Params()
    # the schema's defaults but for the options given; no early stopping in a 1-epoch race
    train_params = defaults.train.model_copy(
        update={
            "patience": None,
            "attention_dropout": args.bertpipe_attention_dropout,
            "group_size": args.bertpipe_group_size,
            "compile": args.bertpipe_compile,
        }
    )
    bertpipe_params = defaults.model_copy(
        update={
            "task": TASK,
            "lr": args.lr,
            "epochs": args.epochs,
            "batch_size": args.batch_size[0],
            "seed": args.seed,
            "train": train_params,
        }
    )
    settings = Settings(
        params=bertpipe_params,
        progress=not args.no_progress,
        others_attention_dropout=args.others_attention_dropout,
        device=device,
        model=args.model,
    )
    machine = machine_info(device)
    print(f"machine: {machine}")
    print(f"load average at start: {load_start}")

    with harness.timed() as peak_timing:
        peak = measure_peak(args.matmul_size, repeats=3 if args.quick else 5, device=device)
    print(
        f"measured matmul peak on {device.type} ({peak.size}x{peak.size}): "
        f"fp32 {peak.fp32_tflops:.3f} TFLOP/s, bf16 {peak.bf16_tflops:.3f}, "
        f"autocast bf16 {peak.autocast_bf16_tflops:.3f} "
        f"(other processes used {peak_timing.other_cores:.2f} cores meanwhile)"
    )

    data = load_data(args.train_size, args.test_size, args.val_size, args.data_seed, args.data)
    print(
        f"data: split {data.full_train_size}/{data.full_test_size} (stratified 80/20, rs 42); "
        f"subsets train {len(data.train_texts)}, test {len(data.test_texts)}, "
        f"val (fit only) {len(data.val_texts)}; data seed {args.data_seed}, seed {args.seed}"
    )
    tokenizer = load_tokenizer(args.model)
    probe = fresh_model(args.seed, data.label_names, model=args.model)
    params = non_embedding_params(probe)
    layers, hidden = probe.config.num_hidden_layers, probe.config.hidden_size
    del probe

    results: list[Result] = []
    quality: list[Result] = []  # extra seeds: bertpipe and Trainer trained again, for F1 only
    inference: list[InferenceResult] = []
    length_stats: dict[int, dict[str, float]] = {}
    best_batch: dict[str, int] = {}  # per max_length: bertpipe's fastest batch size
    failures: list[dict[str, Any]] = []  # contestants or inference paths that raised
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

            def race(
                contestants: list[str],
                batch_sizes: list[int],
                max_length: int = max_length,
                splits: Splits = splits,
            ) -> torch.nn.Module | None:
                ran, trained = run_batch_sizes(
                    contestants,
                    batch_sizes,
                    data,
                    splits,
                    settings,
                    tokenizer,
                    max_length,
                    scratch,
                    args.retries,
                    harness,
                    warmup_rows=args.warmup_rows,
                    failures=failures,
                )
                results.extend(ran)
                return trained

            trained = race(args.contestants, args.batch_size)
            if args.sweep_batch_sizes and "bertpipe" in args.contestants:
                race(["bertpipe"], [b for b in args.sweep_batch_sizes if b not in args.batch_size])
                ours = [
                    r for r in results if r.contestant == "bertpipe" and r.max_length == max_length
                ]
                best = max(ours, key=lambda r: r.samples_per_s).batch_size if ours else None
                if best is not None:
                    best_batch[str(max_length)] = best
                    print(f"bertpipe's fastest batch size at max_length {max_length}: {best}")
                if best is not None and best not in args.batch_size:
                    race([c for c in args.contestants if c != "bertpipe"], [best])
            if trained is not None and not args.skip_inference:
                print(f"--- inference paths, max_length {max_length}")
                try:
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
                        harness=harness,
                    )
                except Exception as exc:  # the training figures are kept
                    where = {"contestant": "inference", "max_length": max_length}
                    record_failure(failures, exc, "inference comparison", **where)
            f1_seeds = args.f1_seeds if max_length in (args.f1_max_lengths or [max_length]) else []
            for extra_seed in f1_seeds:
                if extra_seed == args.seed:
                    continue
                seeded = replace(
                    settings, params=bertpipe_params.model_copy(update={"seed": extra_seed})
                )
                for contestant in ("bertpipe", "trainer"):
                    if contestant in args.contestants:
                        print(f"--- {contestant}, max_length {max_length}, seed {extra_seed}")
                        result, _ = run_contestant(
                            contestant,
                            data,
                            splits,
                            seeded,
                            tokenizer,
                            max_length,
                            scratch,
                            0,
                            harness,
                        )
                        quality.append(result)

    report = build_report(
        args, machine, peak, data, results, inference, params, layers, hidden, bertpipe_params
    )
    report["best_batch_size"] = best_batch
    report["failures"] = failures
    report["length_stats"] = length_stats
    report["load_average_start"] = load_start
    report["load_average_end"] = os.getloadavg()
    report["total_wall_s"] = time.perf_counter() - started
    report["waited_for_quiet_s"] = harness.waited_s
    head_checksums: dict[int, set[float]] = {}  # per training seed: one value if all started alike
    for result in [*results, *quality]:
        head_checksums.setdefault(result.notes["seed"], set()).add(result.notes["head_checksum"])
    report["identical_head_init"] = all(len(sums) == 1 for sums in head_checksums.values())
    report["f1_seeds"] = f1_seed_summary(args.max_lengths, [*results, *quality])
    report["peak_rss_mib"] = peak_rss_mib()
    report["targets"] = target_rows(report)
    print_report(report)
    print_targets(report)
    for failure in failures:
        print(f"FAILED: {failure}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    run_main(main)
