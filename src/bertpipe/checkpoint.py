"""Checkpoints a killed run resumes from: at the end of every epoch and, with
`train.checkpoint_every_steps`, every N optimizer steps inside an epoch.

Layout of the checkpoint folder (a persisted DVC output):
    step-000001500/  one complete checkpoint, named by its optimizer step: model, best weights,
                     optimizer, scheduler, RNG states, state.json (epoch, position in the
                     epoch, running loss)
    status.json      {"status": "running" | "complete", "fingerprint": ...}

Each checkpoint is written to a temporary folder and renamed, so a kill leaves only complete
ones; the two newest are kept. A checkpoint that cannot be read (truncated, corrupt) is
discarded with one warning line, and the next newest is tried.

A checkpoint is used only when its fingerprint (params and data) matches the run and the run it
came from did not complete, so a forced rerun trains from scratch.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bertpipe.files import atomic_path, read_json, write_json

STATUS = "status.json"
KEEP = 2  # checkpoints kept: the newest, and one before it in case the newest is unreadable
STEP_FOLDER = re.compile(r"step-(\d+)")


@dataclass
class Checkpoint:
    fingerprint: str
    epoch: int = 0  # the last completed epoch
    global_step: int = 0
    best_metric: float | None = None
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    # inside epoch `epoch + 1`: the batches trained (per process), and each process's
    # running loss sum and count, so the epoch's train_loss comes out as without a kill
    batches_done: int = 0
    loss_sums: list[float] = field(default_factory=list)
    loss_counts: list[int] = field(default_factory=list)
    best_weights: dict[str, torch.Tensor] | None = None

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("best_weights")
        return data


def rng_states() -> dict[str, Any]:
    """Every RNG a training step may draw from: torch (and CUDA), NumPy and Python's."""
    numpy_kind, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        # as plain values and a tensor, which torch.load(weights_only=True) reads
        "numpy_rng": (
            numpy_kind,
            torch.from_numpy(numpy_keys.astype(np.int64)),
            numpy_pos,
            numpy_has_gauss,
            numpy_gauss,
        ),
    }
    if torch.cuda.is_available():
        states["cuda_rng"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch_rng"])
    if torch.cuda.is_available() and "cuda_rng" in states:
        torch.cuda.set_rng_state_all(states["cuda_rng"])
    if "python_rng" in states:
        version, internal, gauss = states["python_rng"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy_rng" in states:
        kind, keys, pos, has_gauss, gauss = states["numpy_rng"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


@dataclass
class SavedCheckpoint:
    """A checkpoint read whole into memory: nothing is applied until every file has been read."""

    folder: Path
    state: Checkpoint
    extra: dict[str, Any]

    def restore(self, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> Checkpoint:
        """Weights, optimizer and scheduler; the RNG states are `restore_rng`'s, called when
        the next training batch starts."""
        model.load_state_dict(load_file(self.folder / "model.safetensors"))
        optimizer.load_state_dict(self.extra["optimizer"])
        scheduler.load_state_dict(self.extra["scheduler"])
        return self.state

    def restore_rng(self) -> None:
        set_rng_states(self.extra)


def step_folders(folder: Path) -> list[Path]:
    """The checkpoints in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_FOLDER.fullmatch(p.name))]
    return [path for _step, path in sorted(found)]


def state_on_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of `model`'s weights on the CPU, each tensor in storage of its own. safetensors'
    save_model refuses a weight that is a view of part of a larger one (GTE's and Nomic-BERT's
    fused projections), and a tied weight is written under each of its names."""
    return {
        name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()
    }


def save_checkpoint(
    folder: Path, state: Checkpoint, model: torch.nn.Module, optimizer: Any, scheduler: Any
) -> Path:
    """Write checkpoint `step-<global_step>` atomically, then delete all but the newest two."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / STATUS, {"status": "running", "fingerprint": state.fingerprint})
    target = folder / f"step-{state.global_step:09d}"
    with atomic_path(target, replace_folder=True) as tmp:
        tmp.mkdir()
        save_file(state_on_cpu(model), str(tmp / "model.safetensors"))
        if state.best_weights is not None:
            save_file(state.best_weights, str(tmp / "best.safetensors"))
        extra = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            **rng_states(),
        }
        torch.save(extra, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state.summary(), indent=2), encoding="utf-8")
    for old in step_folders(folder)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    remove_partial_checkpoints(folder)
    return target


def remove_partial_checkpoints(folder: Path) -> None:
    """Delete the temporary folders of checkpoints whose writing a kill interrupted."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name.startswith(".") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _read(path: Path, fingerprint: str) -> SavedCheckpoint:
    """Every file of one checkpoint; raises ValueError naming the file that cannot be read."""
    reading = "state.json"
    try:
        summary = json.loads((path / reading).read_text(encoding="utf-8"))
        state = Checkpoint(**summary)
        reading = "model.safetensors"
        load_file(path / reading)  # read through once: a truncated file fails here
        reading = "optimizer.pt"
        # weights_only: a checkpoint file can never run code when loaded. map_location: one
        # written on a GPU resumes on a machine without one (load_state_dict moves the
        # optimizer's state to its parameters' device)
        extra = torch.load(path / reading, map_location="cpu", weights_only=True)
        reading = "best.safetensors"
        if (path / reading).exists():
            state.best_weights = load_file(path / reading)
    except Exception as exc:
        # torch, safetensors and json each raise their own types for a damaged file; whatever
        # the type, the checkpoint is unusable (the message is not shown: torch's suggests
        # loading unsafely)
        raise ValueError(f"{reading} is truncated or corrupt") from exc
    if state.fingerprint != fingerprint:
        raise ValueError("state.json names another run (params or data)")
    return SavedCheckpoint(path, state, extra)


def load_checkpoint(
    folder: Path, fingerprint: str, warn: Callable[[str], None] = print
) -> SavedCheckpoint | None:
    """The newest readable checkpoint of an unfinished run with this fingerprint, or None.

    An unreadable checkpoint is deleted, with one `warn` line, and the one before it is tried.
    """
    status_path = folder / STATUS
    if not status_path.is_file():
        return None
    try:
        status = read_json(status_path)
    except ValueError:
        warn(f"warning: {status_path}: unreadable; training from scratch")
        return None
    if status.get("status") != "running" or status.get("fingerprint") != fingerprint:
        return None
    for path in reversed(step_folders(folder)):
        try:
            return _read(path, fingerprint)
        except ValueError as exc:
            warn(f"warning: checkpoint {path}: {exc}; discarded it")
            shutil.rmtree(path, ignore_errors=True)
    return None


def clear_checkpoints(folder: Path) -> None:
    """Delete every checkpoint (and temporary folders a kill left behind), keep status.json."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def mark_complete(folder: Path, fingerprint: str) -> None:
    """The run finished: drop the heavy files, keep a small marker (the DVC output stays)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / STATUS, {"status": "complete", "fingerprint": fingerprint})
    clear_checkpoints(folder)
