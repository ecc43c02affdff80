"""Checkpoints inside an epoch: a crash resumes to the same bits, damaged ones are discarded."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from test_training import config, make_splits, new_model, weights

from bertpipe import checkpoint, training
from bertpipe.checkpoint import step_folders
from bertpipe.errors import UserError
from bertpipe.params import parse_params
from bertpipe.tokens import TokenizedSplit
from bertpipe.training import FitResult, fit


@pytest.fixture(scope="module")
def splits(tiny_bert: Path, sample_frame: pd.DataFrame) -> tuple[TokenizedSplit, TokenizedSplit]:
    return make_splits(tiny_bert, sample_frame)


class Crash(Exception):
    pass


def crash_after_saves(monkeypatch: pytest.MonkeyPatch, saves: int) -> list[Path]:
    """Make fit raise right after its `saves`-th checkpoint is written; returns their folders."""
    written: list[Path] = []
    save = checkpoint.save_checkpoint

    def save_then_crash(*args: Any, **kwargs: Any) -> Path:
        written.append(save(*args, **kwargs))
        if len(written) == saves:
            raise Crash
        return written[-1]

    monkeypatch.setattr(training, "save_checkpoint", save_then_crash)
    return written


def run(tiny_bert: Path, splits: tuple, settings: Any, folder: Path | None) -> tuple:
    model = new_model(tiny_bert, dropout=0.1)  # dropout: the RNG state must be restored too
    train, val = splits
    result = fit(
        model, train, val, settings, 0, checkpoint_dir=folder, fingerprint="f", progress=False
    )
    return model, result


def assert_same_run(expected: tuple, resumed: tuple) -> None:
    (expected_model, expected_result), (model, result) = expected, resumed
    assert result.history == expected_result.history  # train_loss and val_loss included
    for (name, a), b in zip(weights(expected_model).items(), weights(model).values(), strict=True):
        assert torch.equal(a, b), name


# 64 examples in batches of 8: 8 batches an epoch
MID_EPOCH = dict(epochs=2, batch_size=8, class_weights="balanced", checkpoint_every_steps=1)


def crashed_run(
    tiny_bert: Path, splits: tuple, folder: Path, monkeypatch: pytest.MonkeyPatch, saves: int
) -> tuple[Any, tuple, list[Path]]:
    """One epoch's settings, its uninterrupted run, and the checkpoints that a run crashed
    right after its `saves`-th one left in `folder`."""
    settings = config(**{**MID_EPOCH, "epochs": 1})
    expected = run(tiny_bert, splits, settings, None)
    written = crash_after_saves(monkeypatch, saves=saves)
    with pytest.raises(Crash):
        run(tiny_bert, splits, settings, folder)
    monkeypatch.undo()
    return settings, expected, written


def test_a_crash_inside_an_epoch_resumes_to_the_same_weights(
    tiny_bert: Path, splits: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = config(**MID_EPOCH)
    expected = run(tiny_bert, splits, settings, None)

    written = crash_after_saves(monkeypatch, saves=10)  # epoch 1's 7 and end, then 2 of epoch 2
    with pytest.raises(Crash):
        run(tiny_bert, splits, settings, tmp_path)
    monkeypatch.undo()
    state = json.loads((written[-1] / "state.json").read_text())
    assert (state["epoch"], state["batches_done"], state["global_step"]) == (1, 2, 10)
    assert state["loss_counts"] == [2] and len(state["loss_sums"]) == 1
    # only the two newest checkpoints are kept
    assert step_folders(tmp_path) == written[-2:]

    resumed = run(tiny_bert, splits, settings, tmp_path)
    result: FitResult = resumed[1]
    assert (result.resumed_from_epoch, result.resumed_from_step) == (1, 10)
    assert result.stats["train_samples"] == 6 * 8  # the 6 batches left of epoch 2
    assert_same_run(expected, resumed)
    assert step_folders(tmp_path) == []  # a finished run keeps only its status marker


def test_with_gradient_accumulation_checkpoints_fall_on_optimizer_steps(
    tiny_bert: Path, splits: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = config(**{**MID_EPOCH, "grad_accum_steps": 3, "epochs": 1})
    expected = run(tiny_bert, splits, settings, None)

    written = crash_after_saves(monkeypatch, saves=2)
    with pytest.raises(Crash):
        run(tiny_bert, splits, settings, tmp_path)
    monkeypatch.undo()
    positions = [json.loads((path / "state.json").read_text()) for path in written]
    assert [(p["global_step"], p["batches_done"]) for p in positions] == [(1, 3), (2, 6)]

    assert_same_run(expected, run(tiny_bert, splits, settings, tmp_path))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damaged", ["optimizer.pt", "model.safetensors", "state.json"])
def test_a_truncated_checkpoint_is_discarded_and_the_one_before_is_used(
    tiny_bert: Path,
    splits: tuple,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damaged: str,
) -> None:
    settings, expected, written = crashed_run(tiny_bert, splits, tmp_path, monkeypatch, 4)
    truncate(written[-1] / damaged)
    capsys.readouterr()

    resumed = run(tiny_bert, splits, settings, tmp_path)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert lines == [
        f"warning: checkpoint {written[-1]}: {damaged} is truncated or corrupt; discarded it"
    ]
    assert "weights_only" not in err
    assert resumed[1].resumed_from_step == 3
    assert_same_run(expected, resumed)


def test_when_every_checkpoint_is_damaged_training_starts_from_scratch(
    tiny_bert: Path,
    splits: tuple,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, expected, written = crashed_run(tiny_bert, splits, tmp_path, monkeypatch, 3)
    for folder in written[-2:]:
        (folder / "optimizer.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()

    resumed = run(tiny_bert, splits, settings, tmp_path)
    assert capsys.readouterr().err.count("is truncated or corrupt; discarded it") == 2
    assert resumed[1].resumed_from_step is None
    assert_same_run(expected, resumed)


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(
    tiny_bert: Path,
    splits: tuple,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, expected, written = crashed_run(tiny_bert, splits, tmp_path, monkeypatch, 3)
    # the optimizer's state as a CUDA run saves it: its tensors tagged for the GPU
    optimizer_file = written[-1] / "optimizer.pt"
    state = torch.load(optimizer_file, weights_only=True)
    with monkeypatch.context() as patched:
        patched.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, optimizer_file)
    with pytest.raises(RuntimeError, match="CUDA"):  # it is tagged for the GPU
        torch.load(optimizer_file, weights_only=True)
    capsys.readouterr()

    resumed = run(tiny_bert, splits, settings, tmp_path)
    assert "discarded" not in capsys.readouterr().err
    assert resumed[1].resumed_from_step == 3
    assert_same_run(expected, resumed)


def test_temporary_folders_a_kill_left_are_cleared_on_a_fresh_start(
    tiny_bert: Path, splits: tuple, tmp_path: Path
) -> None:
    leftover = tmp_path / ".step-000000007.tmp-abc" / "step-000000007"
    leftover.mkdir(parents=True)
    run(tiny_bert, splits, config(epochs=1, batch_size=32), tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["status.json"]


@pytest.mark.parametrize("every", [0, -5])
def test_checkpoint_every_steps_below_one_is_refused(every: int) -> None:
    with pytest.raises(UserError, match=r"train\.checkpoint_every_steps"):
        parse_params({"train": {"checkpoint_every_steps": every}})


def test_checkpoint_every_steps_null_means_epoch_ends_only(
    tiny_bert: Path, splits: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = crash_after_saves(monkeypatch, saves=1)
    with pytest.raises(Crash):
        run(tiny_bert, splits, config(**{**MID_EPOCH, "checkpoint_every_steps": None}), tmp_path)
    state = json.loads((written[0] / "state.json").read_text())
    assert (state["epoch"], state["batches_done"], state["global_step"]) == (1, 0, 8)


def test_a_reader_sees_the_old_model_or_the_new_never_a_mix(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from bertpipe.artifacts import save_model_folder
    from bertpipe.predict import Predictor

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = new_model(tiny_bert)
    folder = tmp_path / "models" / "model"

    def write(generation: int) -> None:
        # generation k: classifier bias k in the weights, and labels "k-i" in a second file
        with torch.no_grad():
            model.classifier.bias.fill_(generation)
        names = [f"{generation}-{i}" for i in range(5)]
        trained = {"task": "multiclass", "label_names": names}
        save_model_folder(folder, model, tokenizer, trained, "# card\n")

    write(0)
    stop = threading.Event()
    generations = [0]

    def swap_repeatedly() -> None:
        while not stop.is_set():
            generations.append(generations[-1] + 1)
            write(generations[-1])

    writer = threading.Thread(target=swap_repeatedly)
    writer.start()
    seen = set()
    try:
        for _ in range(25):
            predictor = Predictor.load(folder)  # never a missing folder, never a mix
            generation = int(predictor.model.classifier.bias[0])
            assert predictor.label_names[0] == f"{generation}-0"
            seen.add(generation)
    finally:
        stop.set()
        writer.join()
    assert len(seen) > 1, "the writer never swapped while the reader loaded"
    assert folder.is_dir() and not folder.is_symlink()  # a real folder: a DVC output
    assert [path.name for path in folder.parent.iterdir()] == ["model"]  # nothing left over


def test_a_model_with_fused_weight_views_checkpoints_and_restores(tmp_path: Path) -> None:
    # GTE, loaded from a saved base model, holds up_proj as a view of part of a fused weight:
    # safetensors' save_model refused it, and training stopped at its first checkpoint
    import transformers

    from bertpipe.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

    small = {"vocab_size": 50, "max_position_embeddings": 64, "hidden_size": 32}
    layers = {"num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    config = transformers.AutoConfig.for_model("gte", **small, **layers)
    transformers.AutoModel.from_config(config).save_pretrained(tmp_path / "base")
    load = transformers.AutoModelForSequenceClassification.from_pretrained
    model = load(tmp_path / "base", num_labels=3)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    state = Checkpoint(fingerprint="run", epoch=0, global_step=7)
    save_checkpoint(tmp_path / "checkpoints", state, model, optimizer, scheduler)

    other = load(tmp_path / "base", num_labels=3)  # another random head
    assert not torch.equal(model.classifier.weight, other.classifier.weight)
    saved = load_checkpoint(tmp_path / "checkpoints", "run")
    assert saved is not None
    saved.restore(other, optimizer, scheduler)
    restored = other.state_dict()
    assert restored.keys() == model.state_dict().keys()
    for name, mine in model.state_dict().items():
        assert torch.equal(mine, restored[name]), name
