"""What train_speed.py reports: the FLOPs estimates against the measured matmul peak, the
ratios between contestants, the F1 over seeds, the JSON report and its printed summary."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from abstracts import Data
from contestants import Result
from harness import MatmulPeak, Timing, print_table

from bertpipe.params import Params


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


# Issue 23's targets, on one H200 (MiniLM, medical abstracts, 128 tokens, the same settings)
TARGET_VS_TRAINER = 1.5  # bertpipe / Trainer train samples/s, at batch 16 and at batch 64
TARGET_BATCHES = (16, 64)
TARGET_BEST_SAMPLES_PER_S = 4000.0  # bertpipe train samples/s at its fastest batch size
TARGET_VS_PIPELINE_BF16 = 2.0  # bertpipe predict examples/s / pipeline() bf16's
TARGET_MAX_LENGTH = 128


def inference_flops(result: dict[str, Any], params: int, peak: MatmulPeak) -> dict[str, float]:
    """2 x non-embedding params x real tokens, against the bf16 peak (the fp32 pipeline: fp32)."""
    tflops = 2.0 * params * result["real_tokens"] / result["timing"]["wall_s"] / 1e12
    reference = peak.fp32_tflops if result["path"] == "pipeline" else peak.bf16_tflops
    return {"tflops_real": tflops, "fraction_of_peak_real": tflops / reference}


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
    bertpipe_params: Params,
) -> dict[str, Any]:
    by_key = {(r.contestant, r.max_length, r.batch_size): r for r in results}
    ratios: dict[str, dict[str, float]] = {}  # "max_length/batch", e.g. "128/16"
    for _, max_length, batch_size in by_key:
        ours = by_key.get(("bertpipe", max_length, batch_size))
        if ours is None:
            continue
        entry: dict[str, float] = {}
        for other in ("trainer", "seed-loop"):
            if (other, max_length, batch_size) in by_key:
                theirs = by_key[(other, max_length, batch_size)]
                entry[f"samples_per_s_vs_{other}"] = ours.samples_per_s / theirs.samples_per_s
                entry[f"f1_macro_minus_{other}"] = ours.test_f1_macro - theirs.test_f1_macro
        if entry:
            ratios[f"{max_length}/{batch_size}"] = entry
    inference_ratios: dict[str, float] = {}
    for max_length in args.max_lengths:
        rates = {r.path: r.examples_per_s for r in inference if r.max_length == max_length}
        others = [rates[p] for p in ("trainer.predict", "pipeline", "pipeline-bf16") if p in rates]
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
            "sweep_batch_sizes": args.sweep_batch_sizes,
            "device": peak.device,
            "model": args.model,
            "lr": args.lr,
            "seed": args.seed,
            "data_seed": args.data_seed,
            "warmup_ratio": bertpipe_params.train.warmup_ratio,
            "weight_decay": bertpipe_params.train.weight_decay,
            "bertpipe_attention_dropout": args.bertpipe_attention_dropout,
            "others_attention_dropout": args.others_attention_dropout,
            "bertpipe_group_size": args.bertpipe_group_size,
            "bertpipe_compile": args.bertpipe_compile,
            "warmup_rows": args.warmup_rows,
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
    machine = report["machine"]
    print(f"device: {machine['device']} ({machine['device_name']})")
    print(
        f"measured matmul peak {peak['size']}^3 on {peak.get('device', 'cpu')}: "
        f"fp32 {peak['fp32_tflops']:.3f} TFLOP/s, "
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
                str(r["batch_size"]),
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
            "batch",
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
        "(the seed loop, the fp32 pipeline); real = non-pad tokens x 6N (train) or 2N (inference)\n"
    )
    for key, entry in report["ratios"].items():
        max_length, batch_size = key.split("/")
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
        print(f"max_length {max_length}, batch {batch_size}: " + ", ".join(parts))
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
                f"inference bertpipe / fastest of (Trainer.predict, pipeline, pipeline-bf16), "
                f"{key}: {value:.2f}x"
            )
    print(
        f"\ntotal {report['total_wall_s']:.0f}s (of which {report['waited_for_quiet_s']:.0f}s "
        f"waiting for a quiet machine), peak RSS {report['peak_rss_mib']:.0f} MiB, "
        f"load average start {report['load_average_start'][0]:.2f} "
        f"end {report['load_average_end'][0]:.2f}"
    )


def target_rows(
    report: dict[str, Any], max_length: int = TARGET_MAX_LENGTH
) -> list[dict[str, Any]]:
    """The run's figures at `max_length` against issue 23's targets; a figure the run did not
    take (a batch size or a path it skipped) is None, and so is its verdict."""
    train = {
        (r["contestant"], r["batch_size"]): r["samples_per_s"]
        for r in report["results"]
        if r["max_length"] == max_length
    }
    rows: list[dict[str, Any]] = []

    def add(what: str, ours: float | None, theirs: float | None, target: str, met: Any) -> None:
        ratio = ours / theirs if ours is not None and theirs else None
        rows.append(
            {
                "what": what,
                "bertpipe": ours,
                "other": theirs,
                "ratio": ratio,
                "target": target,
                "met": met,  # None: not measured in this run, or no target
            }
        )

    for batch in TARGET_BATCHES:
        ours, theirs = train.get(("bertpipe", batch)), train.get(("trainer", batch))
        met = None if ours is None or not theirs else ours / theirs >= TARGET_VS_TRAINER
        add(f"train, batch {batch}, vs Trainer", ours, theirs, f">= {TARGET_VS_TRAINER}x", met)
    best = report.get("best_batch_size", {}).get(str(max_length))
    if best is None:  # no sweep: the fastest batch size this run tried
        sizes = [b for (c, b) in train if c == "bertpipe"]
        best = max(sizes, key=lambda b: train[("bertpipe", b)]) if sizes else None
    ours = None if best is None else train.get(("bertpipe", best))
    add(
        f"train, best batch ({best}), vs Trainer",
        ours,
        None if best is None else train.get(("trainer", best)),
        f">= {TARGET_BEST_SAMPLES_PER_S:,.0f} samples/s",
        None if ours is None else ours >= TARGET_BEST_SAMPLES_PER_S,
    )
    predict = {
        r["path"]: r["examples_per_s"] for r in report["inference"] if r["max_length"] == max_length
    }
    ours = predict.get("bertpipe")
    theirs = predict.get("pipeline-bf16")
    met = None if ours is None or not theirs else ours / theirs >= TARGET_VS_PIPELINE_BF16
    add("predict vs pipeline() bf16", ours, theirs, f">= {TARGET_VS_PIPELINE_BF16}x", met)
    add("predict vs Trainer.predict", ours, predict.get("trainer.predict"), "-", None)
    return rows


def print_targets(report: dict[str, Any]) -> None:
    """One table, printed last: samples/s of bertpipe and its peer, the ratio, the target."""
    rows = report["targets"]
    machine = report["machine"]

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    print(
        f"\n==== issue 23 targets (set for one H200), max_length {TARGET_MAX_LENGTH}, "
        f"on {machine['device']}: {machine['device_name']} ===="
    )
    print_table(
        ["comparison", "bertpipe /s", "other /s", "ratio", "target", "met"],
        [
            [
                row["what"],
                rate(row["bertpipe"]),
                rate(row["other"]),
                "-" if row["ratio"] is None else f"{row['ratio']:.2f}x",
                row["target"],
                {True: "yes", False: "NO", None: "-"}[row["met"]],
            ]
            for row in rows
        ],
    )
