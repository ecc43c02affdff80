"""Data larger than memory: clean, split and tokenize on 1,000,000 synthetic notes.

Writes a seeded CSV of short synthetic clinical notes (5 classes, 3 notes per patient), then runs
the real stage scripts (stages/clean.py, split.py, tokenize.py) on it, each in its own process,
and records per stage the wall time, texts per second and peak resident memory (the process's
ru_maxrss, from os.wait4). The baseline is what the issue names: the packaged model's fast
tokenizer called once on the whole list of texts, in a process of its own too.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/data_scale.py --json /tmp/data_scale.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/data_scale.py --rows 20000   # a smoke test
    # long-note settings on the same notes: windows of 16 tokens, 8 apart (2-3 windows a note)
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/data_scale.py --max-length 16 --windows-stride 8
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bertpipe.tokens import read_split

ROOT = Path(__file__).resolve().parents[1]

CLASSES = {
    "cardiology": ["chest pain", "palpitations", "an abnormal ecg", "troponin rise", "syncope"],
    "neurology": ["headache", "a seizure", "numbness of the arm", "vertigo", "slurred speech"],
    "gastroenterology": ["nausea", "vomiting", "diarrhea", "epigastric pain", "melena"],
    "pulmonology": ["cough", "wheezing", "dyspnea", "hemoptysis", "pleuritic pain"],
    "endocrinology": ["polyuria", "weight loss", "heat intolerance", "fatigue", "thirst"],
}
OPENINGS = ["Patient reports", "Presents with", "Seen today for", "Complains of", "History of"]
DETAILS = [
    "for two days",
    "since last week",
    "worse at night",
    "after exertion",
    "no fever",
    "vitals stable",
    "denies trauma",
    "on current medication",
    "follow up in clinic",
    "labs ordered",
]


def write_notes(path: Path, rows: int, seed: int) -> None:
    """Short notes (about 15 words): an opening, two findings (one of another class in 10% of
    notes), and two details, with the row number so that texts are mostly distinct."""
    rng = random.Random(seed)
    names = sorted(CLASSES)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)  # quotes the texts: they hold commas
        writer.writerow(["note_id", "patient_id", "text", "label"])
        for row in range(rows):
            label = rng.choice(names)
            other = rng.choice(names) if rng.random() < 0.1 else label
            text = (
                f"{rng.choice(OPENINGS)} {rng.choice(CLASSES[label])} and "
                f"{rng.choice(CLASSES[other])}, {rng.choice(DETAILS)}, {rng.choice(DETAILS)}. "
                f"Visit {row}."
            )
            writer.writerow([row, f"P{row // 3:07d}", text, label])


def run_measured(command: list[str], cwd: Path) -> dict[str, float]:
    """Run a process; its wall seconds and peak resident memory (MiB), from wait4's rusage."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}")
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }


BASELINE = """
import json, sys, time
import pandas as pd
from bertpipe.model import load_tokenizer
texts = pd.read_parquet(sys.argv[1], columns=["text"])["text"].tolist()
tokenizer = load_tokenizer("minilm")
started = time.perf_counter()
encoded = tokenizer(texts, truncation=True, max_length=int(sys.argv[2]))
seconds = time.perf_counter() - started
with open(sys.argv[3], "w") as handle:
    json.dump({"texts": len(encoded["input_ids"]), "call_s": seconds}, handle)
"""


def stage_command(project: Path, stage: str) -> list[str]:
    import shlex

    cmd = yaml.safe_load((project / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    program, flag, module, *args = shlex.split(cmd)
    assert (program, flag, module) == ("python", "-m", f"stages.{stage}"), cmd
    return [sys.executable, "-m", module, *args]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", choices=["right", "head_tail"], default="right")
    parser.add_argument(
        "--windows-stride", type=int, default=None, help="windows.stride (default: no windows)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    results: dict[str, Any] = {
        "command": " ".join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": args.rows,
        "chunk_rows": args.chunk_rows,
        "max_length": args.max_length,
        "truncation": args.truncation,
        "windows_stride": args.windows_stride,
        "stages": {},
    }
    with tempfile.TemporaryDirectory(prefix="data_scale_") as scratch:
        project = Path(scratch)
        for name in ("dvc.yaml", "params.yaml"):
            (project / name).write_text((ROOT / name).read_text())
        (project / "stages").symlink_to(ROOT / "stages")
        csv = project / "notes.csv"
        started = time.perf_counter()
        write_notes(csv, args.rows, args.seed)
        size_mib = csv.stat().st_size / 2**20
        print(
            f"wrote {args.rows:,} notes ({size_mib:.0f} MiB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        results["csv_mib"] = round(size_mib, 1)

        params = yaml.safe_load((project / "params.yaml").read_text())
        params["max_length"] = args.max_length
        params["data"]["path"] = str(csv)
        params["data"]["chunk_rows"] = args.chunk_rows
        params["truncation"] = args.truncation
        # windows in every split, the train split included: the most rows the stage can write
        params["windows"] = {**params["windows"], "stride": args.windows_stride, "train": True}
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

        for stage in ("clean", "split", "tokenize"):
            measured = run_measured(stage_command(project, stage), project)
            measured["texts_per_s"] = round(args.rows / measured["wall_s"], 1)
            results["stages"][stage] = measured
            print(f"{stage}: {measured}")

        tokens = project / "data/tokens"
        results["tokens_mib"] = round(
            sum(p.stat().st_size for p in tokens.rglob("*") if p.is_file()) / 2**20, 1
        )
        rows_tokenized = windows = 0
        for name in ("train", "val", "test"):
            split = read_split(tokens / name)
            rows_tokenized += split.num_texts
            windows += len(split)
        results["rows_tokenized"] = rows_tokenized
        results["sequences_written"] = windows
        # the baseline: the whole cleaned text column, one tokenizer call
        baseline = run_measured(
            [
                sys.executable,
                "-c",
                BASELINE,
                str(project / "data/clean/notes.parquet"),
                str(args.max_length),
                str(project / "baseline.json"),
            ],
            project,
        )
        call = json.loads((project / "baseline.json").read_text())
        assert call["texts"] == rows_tokenized, (call, rows_tokenized)
        baseline["call_s"] = round(call["call_s"], 2)
        # the strict figure: the tokenizer call alone, without reading the texts or loading it
        baseline["texts_per_s"] = round(rows_tokenized / call["call_s"], 1)
        baseline["texts_per_s_process"] = round(rows_tokenized / baseline["wall_s"], 1)
        results["baseline_whole_list"] = baseline
        print(f"baseline (one tokenizer call on the whole list): {baseline}")

    tokenize = results["stages"]["tokenize"]
    tokenize_rate = rows_tokenized / tokenize["wall_s"]
    results["tokenize_vs_baseline"] = round(tokenize_rate / baseline["texts_per_s"], 3)
    results["peak_rss_mib_max"] = max(s["peak_rss_mib"] for s in results["stages"].values())
    total = sum(s["wall_s"] for s in results["stages"].values())
    results["pipeline_texts_per_s"] = round(args.rows / total, 1)
    print(
        f"\npeak memory of any stage: {results['peak_rss_mib_max']} MiB; "
        f"tokenize stage {tokenize_rate:,.0f} texts/s vs whole-list tokenizer "
        f"{baseline['texts_per_s']:,.0f} texts/s, call alone ({results['tokenize_vs_baseline']}x); "
        f"clean+split+tokenize {results['pipeline_texts_per_s']:,.0f} texts/s"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
