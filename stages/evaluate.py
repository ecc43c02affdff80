"""Stage evaluate: score the trained model on the test split; write metrics, predictions, plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run by path (python stages/x.py): why, in stages/__init__.py
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    import stages  # noqa: F401

from bertpipe.artifacts import read_training_params
from bertpipe.decision import read_decision
from bertpipe.errors import run_main
from bertpipe.evaluation import evaluate_model, plot_rows
from bertpipe.files import atomic_path, read_json, remove_leftovers, write_json
from bertpipe.metrics import per_label_report, undefined_as_null
from bertpipe.model import load_trained, pad_token_id
from bertpipe.params import load_params
from bertpipe.predictions import write_predictions
from bertpipe.tokens import read_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--tokens-dir", required=True)
    parser.add_argument("--metrics", required=True, help="metrics file (.json)")
    parser.add_argument("--predictions", required=True, help="per-example predictions (.csv)")
    parser.add_argument("--plots-dir", required=True, help="folder for plot data")
    parser.add_argument("--per-label", required=True, help="per-label report (.json)")
    args = parser.parse_args()
    # what a run killed mid-write left
    remove_leftovers(args.metrics, args.predictions, args.plots_dir, args.per_label)

    params = load_params(args.params)
    model, tokenizer = load_trained(args.model_dir)
    tokens = Path(args.tokens_dir)
    label_names: list[str] = read_json(tokens / "labels.json")["label_names"]
    decision = read_decision(
        args.model_dir, params.task, read_training_params(args.model_dir), len(label_names)
    )
    test = read_split(tokens / "test")
    evaluation = evaluate_model(
        model,
        test,
        params.task,
        pad_token_id(tokenizer),
        params.evaluate.batch_size,
        decision,
        params.train.precision,
        progress=True,
        pooling=params.windows.pooling,
    )

    write_predictions(
        args.predictions,
        evaluation.row_ids,
        evaluation.targets,
        evaluation.predicted,
        evaluation.scores,
        params.task,
        label_names,
        decision.threshold,
        params.data.label_separator,
    )
    with atomic_path(args.plots_dir, replace_folder=True) as tmp:
        tmp.mkdir()
        plots = plot_rows(evaluation.targets, evaluation, params.task, label_names)
        for name, rows in plots.items():
            write_json(tmp / name, rows)
    if params.task != "regression":
        report = per_label_report(
            evaluation.targets, evaluation.predicted, label_names, params.task
        )
    else:
        report = {}
    write_json(args.per_label, report)
    metrics, undefined = undefined_as_null(evaluation.metrics)
    if undefined:
        print(
            f"warning: {', '.join(undefined)} undefined on the test split (its labels are all "
            "one value): written as null in the metrics file",
            file=sys.stderr,
        )
    write_json(args.metrics, {**metrics, "n_test": len(evaluation.targets)})
    print("evaluate: " + ", ".join(f"{k} {v}" for k, v in evaluation.metrics.items()))


if __name__ == "__main__":
    run_main(main)
