"""Stage train: fine-tune the pre-trained model on the train split, early-stopping on val."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

if not __package__:  # run by path (python stages/x.py): why, in stages/__init__.py
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    import stages  # noqa: F401

import torch

from bertpipe.artifacts import check_base_is_not_output, model_card, save_model_folder
from bertpipe.checkpoint import STATUS, remove_partial_checkpoints
from bertpipe.decision import check_decision_params, fit_decision, fold_temperature, warn_notes
from bertpipe.errors import run_main
from bertpipe.files import read_json, remove_leftovers, write_json
from bertpipe.inference import predict_logits
from bertpipe.labels import num_model_outputs, problem_type
from bertpipe.launch import inside_launcher, relaunch_command
from bertpipe.model import (
    base_model_id,
    base_model_origin,
    family_of,
    load_classifier,
    load_tokenizer,
    pad_token_id,
)
from bertpipe.params import ignored_settings, load_params, resolve_batch_size
from bertpipe.tokens import read_split
from bertpipe.tracking import LiveLogger
from bertpipe.training import (
    fit,
    make_accelerator,
    run_fingerprint,
    seed_everything,
    training_class_weight,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokens-dir", required=True, help="output of the tokenize stage")
    parser.add_argument("--clean-report", required=True, help="output of the clean stage")
    parser.add_argument("--output-dir", required=True, help="the trained model folder")
    parser.add_argument("--checkpoint-dir", required=True, help="checkpoints, for resuming")
    parser.add_argument("--live-dir", required=True, help="dvclive logs")
    parser.add_argument(
        "--stats",
        required=True,
        help="throughput and timings (.json), kept out of the model "
        "folder so that the folder is byte-identical on a rerun",
    )
    args = parser.parse_args()
    if not inside_launcher():  # once, before any process of this run writes
        # what a run killed mid-write left (a checkpoint being saved included)
        remove_leftovers(args.output_dir, args.stats, Path(args.checkpoint_dir) / STATUS)
        remove_partial_checkpoints(Path(args.checkpoint_dir))

    params = load_params(args.params)
    check_base_is_not_output(params.model, args.output_dir)
    relaunch = relaunch_command(
        __spec__.name,  # "stages.train": this module, as `python -m` named it
        sys.argv[1:],
        params.train.num_processes,
        params.train.accelerate_config,
        torch.cuda.is_available(),
    )
    if relaunch is not None:
        raise SystemExit(subprocess.call(relaunch))

    tokens = Path(args.tokens_dir)
    label_names: list[str] = read_json(tokens / "labels.json")["label_names"]
    train, val = read_split(tokens / "train"), read_split(tokens / "val")
    check_decision_params(params, len(val))
    accelerator = make_accelerator(params.train.precision)
    # `batch_size: auto` is the device's: resolved here, so that training_params.json and the
    # checkpoints' fingerprint hold the number used
    params = resolve_batch_size(params, accelerator.device.type)

    tokenizer = load_tokenizer(params.model)
    seed_everything(params.seed)  # the new classifier head is initialised from torch's RNG
    model = load_classifier(
        params.model,
        num_model_outputs(label_names, params.task),
        problem_type(params.task),
        label_names,
        attention_dropout=params.train.attention_dropout,
    )
    if accelerator.is_main_process:
        # after every check that can refuse the run, so that bad input still gets one line
        for line in ignored_settings(params):
            print(f"warning: {line}", file=sys.stderr)
    logger = LiveLogger(args.live_dir) if accelerator.is_main_process else None
    result = fit(
        model,
        train,
        val,
        params,
        pad_token_id=pad_token_id(tokenizer),
        progress=True,
        accelerator=accelerator,
        checkpoint_dir=Path(args.checkpoint_dir),
        fingerprint=run_fingerprint(params, tokens),
        on_epoch_end=logger,
    )
    if logger is not None:
        logger.close()
    if not accelerator.is_main_process:
        return

    # the best model's decision: fitted on the validation split (undoing pos_weight's shift of
    # the logits), folded into the output layer so that the saved model's logits are calibrated
    trained_model = accelerator.unwrap_model(model)
    val_logits = predict_logits(
        trained_model,
        val,
        params.train.eval_batch_size,
        pad_token_id(tokenizer),
        result.mixed_precision,
        pooling=params.windows.pooling,
    )
    decision = fit_decision(
        val_logits,
        val.text_labels,
        params.task,
        params.train.threshold,
        params.train.target_recall,
        label_names,
        training_class_weight(train, params, num_model_outputs(label_names, params.task)),
    )
    warn_notes(decision)
    decision = fold_temperature(trained_model, decision)

    resolved = params.model_dump(mode="json")
    best = result.history[result.best_epoch - 1] if result.best_epoch else {}
    validation = {k.removeprefix("val_"): v for k, v in best.items() if k.startswith("val_")}
    stats = {
        **result.stats,
        "best_epoch": result.best_epoch,
        "best_metric": result.best_metric,
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from_epoch,
        "resumed_from_step": result.resumed_from_step,
        "world_size": result.world_size,
        "mixed_precision": result.mixed_precision,
    }
    data_sha256 = read_json(args.clean_report).get("source_sha256")
    card = model_card(
        params.task,
        label_names,
        resolved,
        data_sha256,
        result.best_epoch,
        validation,
        base_model_id(params.model),
        decision,
        base_family=family_of(trained_model.config.model_type).name,
        base_origin=base_model_origin(params.model),
    )
    save_model_folder(
        args.output_dir,
        trained_model,
        tokenizer,
        {**resolved, "label_names": label_names, "world_size": result.world_size},
        card,
        decision,
    )
    write_json(args.stats, stats)
    print(
        f"train: best epoch {result.best_epoch}, temperature {list(decision.temperatures)}, "
        f"thresholds {list(decision.thresholds)}, "
        f"{result.stats['train_samples_per_second']} samples/s -> {args.output_dir}"
    )


if __name__ == "__main__":
    run_main(main)
