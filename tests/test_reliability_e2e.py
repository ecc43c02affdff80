"""Reliability of real `dvc repro` runs: identical reruns, no network, resume after a SIGKILL
inside an epoch, and a second `dvc repro` in the same workspace refused."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import keyword_notes
from pipeline_helpers import commit, dvc, env, run, tiny_project

pytestmark = pytest.mark.slow


@pytest.fixture
def project(project_copy: Path, keyword_csv: Path, tiny_bert: Path) -> Path:
    return tiny_project(
        project_copy, keyword_csv, tiny_bert, epochs=3, lr=3e-3, **{"gate.n_bootstrap": 500}
    )


def fingerprint(project: Path) -> dict[str, str]:
    files = [
        "metrics.json",
        "eval/predictions.csv",
        "models/model/model.safetensors",
        "models/model/config.json",
        "models/model/training_params.json",
    ]
    return {name: hashlib.sha256((project / name).read_bytes()).hexdigest() for name in files}


BLOCKER = """
import os, socket
_log = os.environ["BERTPIPE_NET_LOG"]
_connect = socket.socket.connect
def _refuse(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        with open(_log, "a") as handle:
            handle.write(f"{os.getpid()} {address!r}\\n")
        raise OSError("network blocked by the test")
    return _connect(self, address)
socket.socket.connect = _refuse
socket.socket.connect_ex = lambda self, address: _refuse(self, address) or 0
"""


def test_runs_offline_and_a_forced_rerun_is_byte_identical(project: Path, tmp_path: Path) -> None:
    # First run: every Python process (dvc and each stage) has sockets blocked and logged.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "network.log"
    # the blocker first, then the existing path (which may point the stages at a source tree)
    base = env()
    python_path = os.pathsep.join(filter(None, [str(blocker), base.get("PYTHONPATH")]))
    offline = {**base, "PYTHONPATH": python_path, "BERTPIPE_NET_LOG": str(log)}
    dvc_bin = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc_bin, "config", "core.check_update", "false"], cwd=project, env=offline)
    result = subprocess.run(
        [dvc_bin, "repro"], cwd=project, env=offline, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    attempts = log.read_text() if log.exists() else ""
    assert attempts == "", f"something tried the network:\n{attempts}"

    # Second run, forced: the same bytes.
    first = fingerprint(project)
    lock = (project / "dvc.lock").read_text()
    commit(project, "first run")
    dvc(project, "repro", "-f")
    assert fingerprint(project) == first
    # in dvc.lock only the timings file's entry may differ
    assert lock_entries(project, lock) == lock_entries(project)
    # and CI's gate, the rerun against the committed run, passes
    bertpipe = str(Path(sys.executable).parent / "bertpipe")
    gate = run(project, bertpipe, "check-metrics", "--baseline", "HEAD", check=False)
    assert gate.returncode == 0 and "PASS" in gate.stdout + gate.stderr, gate.stdout + gate.stderr


def lock_entries(project: Path, text: str | None = None) -> dict[str, object]:
    """Every path's hash in dvc.lock, except models/training_stats.json (wall-clock timings)."""
    import yaml

    lock = yaml.safe_load(text if text is not None else (project / "dvc.lock").read_text())
    return {
        f"{stage}:{entry['path']}": entry.get("md5")
        for stage, body in lock["stages"].items()
        for kind in ("deps", "outs")
        for entry in body.get(kind, [])
        if entry["path"] != "models/training_stats.json"
    }


def newest_checkpoint(project: Path) -> dict[str, int]:
    """state.json of the newest checkpoint, or {} (none yet, or pruned while being read)."""
    try:
        folders = sorted((project / "models/checkpoints").glob("step-*"))
        return json.loads((folders[-1] / "state.json").read_text()) if folders else {}
    except (OSError, ValueError):
        return {}


def test_sigkill_inside_the_only_epoch_is_resumed_by_the_next_repro(
    project_copy: Path, tmp_path: Path, tiny_bert: Path
) -> None:
    # one long epoch: 1200 notes, batches of 2 (about 420 steps), a checkpoint every 5 steps
    data = tmp_path / "notes.csv"
    keyword_notes(rows=1200).to_csv(data, index=False)
    project = tiny_project(
        project_copy,
        data,
        tiny_bert,
        epochs=1,
        lr=3e-3,
        batch_size=2,
        **{"train.checkpoint_every_steps": 5},
    )
    dvc_bin = str(Path(sys.executable).parent / "dvc")
    process = subprocess.Popen(
        [dvc_bin, "repro"],
        cwd=project,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    refused = None
    killed_at = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        state = newest_checkpoint(project)
        if refused is None and state:
            # the first repro is training: a second one in the same workspace must be refused
            refused = subprocess.run(
                [dvc_bin, "repro"], cwd=project, env=env(), capture_output=True, text=True
            )
        elif refused is not None and state.get("batches_done", 0) >= 10:
            os.killpg(process.pid, signal.SIGKILL)  # dvc and the train stage, mid-epoch
            killed_at = state["global_step"]
            break
        time.sleep(0.02)
    process.wait()
    assert refused is not None and refused.returncode != 0
    # DVC's own message: the running repro holds its outputs (.dvc/tmp/rwlock)
    assert "is busy, it is being blocked by" in refused.stderr, refused.stderr[-2000:]
    assert killed_at is not None, "training finished before it could be killed"
    assert not (project / "models/model").exists()

    resumed = dvc(project, "repro")
    assert "resuming from the checkpoint at step" in resumed.stdout + resumed.stderr
    stats = json.loads((project / "models/training_stats.json").read_text())
    assert stats["resumed_from_epoch"] == 0  # inside the first epoch
    assert stats["resumed_from_step"] >= killed_at
    after_resume = fingerprint(project)
    assert [path.name for path in (project / "models/checkpoints").iterdir()] == ["status.json"]

    dvc(project, "repro", "-f")  # the checkpoint is complete: this trains from scratch
    stats = json.loads((project / "models/training_stats.json").read_text())
    assert stats["resumed_from_epoch"] is None
    assert fingerprint(project) == after_resume  # the resumed run ended with the same bytes
