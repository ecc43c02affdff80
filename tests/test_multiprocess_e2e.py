"""`train.num_processes: 2` on CPU: two processes (torchrun + Accelerate over gloo) train one
model, close to a single process with the same global batch."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import dvc, read_json, set_params, tiny_project

from bertpipe.launch import relaunch_command


def test_relaunch_command_picks_the_launcher(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert relaunch_command("stages.train", [], 1, None, cuda=False) is None
    cpu = relaunch_command("stages.train", ["--x"], 2, None, cuda=False)
    assert cpu is not None and "torch.distributed.run" in cpu
    # each process runs the stage as a module, never stages/train.py as a script
    assert cpu[-3:] == ["--module", "stages.train", "--x"]
    gpu = relaunch_command("stages.train", [], 4, None, cuda=True)
    assert gpu is not None and "--multi_gpu" in gpu and "4" in gpu
    assert gpu[-2:] == ["--module", "stages.train"]
    accelerate_config = tmp_path / "ds.yaml"  # the file must exist: it is checked first
    accelerate_config.write_text("distributed_type: DEEPSPEED\n")
    config = relaunch_command("stages.train", [], 8, str(accelerate_config), cuda=True)
    assert config is not None and str(accelerate_config) in config
    assert config[-2:] == ["--module", "stages.train"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert relaunch_command("stages.train", [], 2, None, cuda=False) is None  # already launched


def run_with(project: Path, processes: int, batch_size: int | str) -> tuple[dict, dict, dict]:
    set_params(project, batch_size=batch_size, **{"train.num_processes": processes})
    dvc(project, "repro")
    return (
        read_json(project / "metrics.json"),
        read_json(project / "models/training_stats.json"),
        read_json(project / "models/model/training_params.json"),
    )


@pytest.mark.slow  # two `dvc repro` runs
def test_two_processes_match_one_with_the_same_global_batch(
    project_copy: Path, keyword_csv: Path, tiny_bert: Path
) -> None:
    project = tiny_project(project_copy, keyword_csv, tiny_bert, epochs=8, lr=1e-3)
    # batch_size auto: 16 on the CPU, resolved where the stage knows its device, and recorded
    single, single_stats, single_params = run_with(project, processes=1, batch_size="auto")
    double, double_stats, double_params = run_with(project, processes=2, batch_size=8)

    assert single_params["batch_size"] == single_stats["batch_size"] == 16
    assert single_stats["device"] == "cpu" and single_stats["device_name"]
    assert single_stats["world_size"] == 1 and double_stats["world_size"] == 2
    assert double_params["world_size"] == 2 and double_params["batch_size"] == 8
    # every example once per epoch, whatever the number of processes
    assert double_stats["train_samples"] >= single_stats["train_samples"]
    assert not list((project / "models").glob(".model.tmp-*"))
    assert double["accuracy"] > 0.7
    assert abs(double["accuracy"] - single["accuracy"]) <= 0.08, (single, double)
