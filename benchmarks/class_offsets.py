"""Would a multiclass decision fitted on validation beat argmax on the medical abstracts?

For each run of long_notes.py whose workspace is still on disk, the run's model scores its
validation split again (the split is re-derived from the workspace's cleaned table and params,
as the split stage does), one additive offset per class on the log-probabilities is fitted to
maximise validation macro-F1 (coordinate ascent on a grid, offsets of the last class fixed at 0),
and the offsets are applied to the run's calibrated test scores (eval/predictions.csv). A JSON
line per run: test macro-F1 by argmax and with the offsets.

    HF_HUB_OFFLINE=1 python benchmarks/class_offsets.py \
        --runs benchmarks/results/long_notes.jsonl --results benchmarks/results/class_offsets.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from harness import append_result, cpu_name, read_results
from long_notes import SETTINGS, read_test_scores
from sklearn.metrics import f1_score

OFFSET_GRID = np.round(np.arange(-1.5, 1.5001, 0.05), 2)
ROUNDS = 3
VAL_CODE = 1  # bertpipe.split.SPLIT_NAMES.index("val")


def log_scores(scores: np.ndarray) -> np.ndarray:
    """Log-probabilities, kept finite where a score is 0 (the file rounds to 6 decimals)."""
    return np.log(np.clip(scores, 1e-12, None))


def fit_offsets(log_scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
    """Offsets (k,) and the validation macro-F1 of argmax(log_scores + offsets). A move is kept
    only when it raises the F1, or keeps it with a smaller offset, so no signal means no offset."""

    def score(offsets: np.ndarray) -> float:
        return float(f1_score(targets, (log_scores + offsets).argmax(1), average="macro"))

    offsets = np.zeros(log_scores.shape[1])
    best = score(offsets)
    for _ in range(ROUNDS):
        for label in range(log_scores.shape[1] - 1):
            for value in OFFSET_GRID:
                trial = offsets.copy()
                trial[label] = value
                trial_score = score(trial)
                smaller = abs(value) < abs(offsets[label])
                if trial_score > best + 1e-12 or (abs(trial_score - best) <= 1e-12 and smaller):
                    best, offsets = trial_score, trial
    return offsets, best


def validation_log_scores(workspace: Path) -> tuple[np.ndarray, np.ndarray]:
    """(log calibrated probabilities, gold class indices) of the run's model on its validation
    split, scored by the evaluate stage's own function under the model's saved decision."""
    import pandas as pd

    from bertpipe.decision import read_decision
    from bertpipe.evaluation import evaluate_model
    from bertpipe.model import load_trained
    from bertpipe.params import load_params
    from bertpipe.split import assign_splits
    from bertpipe.tokens import sequence_layout, tokenize_split

    params = load_params(workspace / "params.yaml")
    notes = pd.read_parquet(workspace / "data" / "clean" / "notes.parquet")
    codes = assign_splits(notes["label"], None, params.split, params.task, params.seed).codes
    rows = np.flatnonzero(codes == VAL_CODE)
    model_dir = workspace / "models" / "model"
    model, tokenizer = load_trained(model_dir)
    num_labels = int(model.config.num_labels)
    names = [model.config.id2label[i] for i in range(num_labels)]
    split = tokenize_split(
        notes["text"].iloc[rows].tolist(),
        notes["label"].iloc[rows].astype(str).tolist(),
        rows,
        tokenizer,
        sequence_layout(params, "val"),
        names,
        params.task,
    )
    trained = json.loads((model_dir / "training_params.json").read_text())
    evaluation = evaluate_model(
        model,
        split,
        params.task,
        tokenizer.pad_token_id,
        params.evaluate.batch_size,
        read_decision(model_dir, params.task, trained, num_labels),
        params.train.precision,
        pooling=params.windows.pooling,
    )
    return log_scores(evaluation.scores), evaluation.targets


def run_offsets(result: dict[str, Any]) -> dict[str, Any]:
    workspace = Path(result["workspace"])
    val_scores, val_targets = validation_log_scores(workspace)
    offsets, val_fitted = fit_offsets(val_scores, val_targets)
    _, test_targets, test_scores = read_test_scores(workspace)
    test_log = log_scores(test_scores)

    def macro_f1(targets: np.ndarray, log_scores: np.ndarray) -> float:
        return round(float(f1_score(targets, log_scores.argmax(1), average="macro")), 6)

    argmax_f1 = macro_f1(test_targets, test_log)
    if abs(argmax_f1 - result["metrics"]["f1_macro"]) > 1e-4:
        raise SystemExit(f"{workspace}: test macro-F1 {argmax_f1:.6f} is not the run's metric")
    return {
        "setting": result["setting"],
        "seed": result["seed"],
        "n_val": len(val_targets),
        "val_f1_argmax": macro_f1(val_targets, val_scores),
        "val_f1_offsets": round(val_fitted, 6),
        "test_f1_argmax": argmax_f1,
        "test_f1_offsets": macro_f1(test_targets, test_log + offsets),
        "offsets": [float(value) for value in offsets],
        "cpu": cpu_name(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="long_notes.py's results")
    parser.add_argument("--results", type=Path, required=True, help="JSON lines, appended")
    args = parser.parse_args()
    done = []
    for result in read_results(args.runs):
        if result["setting"] not in SETTINGS:  # a prototype run, with a head this cannot load
            print(f"skipped {result['setting']} seed {result['seed']}: not a long_notes setting")
            continue
        if not (Path(result["workspace"]) / "models" / "model").is_dir():
            print(f"skipped {result['setting']} seed {result['seed']}: workspace gone")
            continue
        line = run_offsets(result)
        append_result(args.results, line)
        done.append(line["test_f1_offsets"] - line["test_f1_argmax"])
    if done:
        print(
            f"{len(done)} runs: test macro-F1 change with offsets, mean {np.mean(done):+.4f}, "
            f"{sum(d > 0 for d in done)} up, {sum(d < 0 for d in done)} down"
        )


if __name__ == "__main__":
    main()
