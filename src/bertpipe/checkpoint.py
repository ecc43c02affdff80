"""Epoch checkpoints a killed run resumes from: written to a temporary folder, then renamed.

Layout of the checkpoint folder (a persisted DVC output):
    last/         the newest complete checkpoint (model, best weights, optimizer, RNG, state.json)
    status.json   {"status": "running" | "complete", "fingerprint": ...}

A checkpoint is used only when its fingerprint (params and data) matches the run and the run it
came from did not complete, so a forced rerun trains from scratch.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from bertpipe.files import atomic_path, read_json, write_json

LAST = "last"
STATUS = "status.json"


@dataclass
class Checkpoint:
    fingerprint: str
    epoch: int = 0
    global_step: int = 0
    best_metric: float | None = None
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    best_weights: dict[str, torch.Tensor] | None = None

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("best_weights")
        return data


@dataclass
class SavedCheckpoint:
    folder: Path
    state: Checkpoint

    def restore(self, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> Checkpoint:
        load_model(model, self.folder / "model.safetensors")
        # weights_only: a checkpoint file can never run code when loaded
        extra = torch.load(self.folder / "optimizer.pt", weights_only=True)
        optimizer.load_state_dict(extra["optimizer"])
        scheduler.load_state_dict(extra["scheduler"])
        torch.set_rng_state(extra["torch_rng"])
        if torch.cuda.is_available() and "cuda_rng" in extra:
            torch.cuda.set_rng_state_all(extra["cuda_rng"])
        best = self.folder / "best.safetensors"
        if best.exists():
            self.state.best_weights = load_file(best)
        return self.state


def save_checkpoint(
    folder: Path, state: Checkpoint, model: torch.nn.Module, optimizer: Any, scheduler: Any
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / STATUS, {"status": "running", "fingerprint": state.fingerprint})
    with atomic_path(folder / LAST, replace_folder=True) as tmp:
        tmp.mkdir()
        save_model(model, str(tmp / "model.safetensors"))
        if state.best_weights is not None:
            save_file(state.best_weights, str(tmp / "best.safetensors"))
        extra: dict[str, Any] = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            extra["cuda_rng"] = torch.cuda.get_rng_state_all()
        torch.save(extra, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state.summary(), indent=2), encoding="utf-8")


def load_checkpoint(folder: Path, fingerprint: str) -> SavedCheckpoint | None:
    status_path, last = folder / STATUS, folder / LAST
    if not status_path.is_file() or not (last / "state.json").is_file():
        return None
    status = read_json(status_path)
    if status.get("status") != "running" or status.get("fingerprint") != fingerprint:
        return None
    summary = read_json(last / "state.json")
    if summary.get("fingerprint") != fingerprint:
        return None
    return SavedCheckpoint(last, Checkpoint(**summary))


def mark_complete(folder: Path, fingerprint: str) -> None:
    """The run finished: drop the heavy files, keep a small marker (the DVC output stays)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / STATUS, {"status": "complete", "fingerprint": fingerprint})
    shutil.rmtree(folder / LAST, ignore_errors=True)
