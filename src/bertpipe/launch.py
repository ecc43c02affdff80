"""Running the train stage in several processes: the stage re-launches its module under a launcher.

- with `train.accelerate_config`: `accelerate launch --config_file ...` (multi-GPU, multi-node,
  DeepSpeed, FSDP: whatever the file says);
- on CUDA: `accelerate launch --multi_gpu`;
- on CPU: `torch.distributed.run` (torchrun, the launcher `accelerate launch --multi_gpu` wraps),
  because Accelerate's own CPU launcher needs an MPI installation. Inside, `Accelerator(cpu=True)`
  sees the torchrun environment and runs MULTI_CPU over gloo.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bertpipe.errors import UserError


def inside_launcher() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def relaunch_command(
    module: str,
    args: Sequence[str],
    num_processes: int,
    accelerate_config: str | None,
    cuda: bool,
) -> list[str] | None:
    """The command that re-runs `python -m module *args` in `num_processes` processes, or None
    to run here. Both launchers run each process as `python -m module` (their --module flag), so
    the stage's folder never goes first on the import path."""
    if accelerate_config is not None and not Path(accelerate_config).is_file():
        raise UserError(
            f"train.accelerate_config: no such file '{accelerate_config}'; write one with "
            "`accelerate config --config_file <path>`, or set it to null"
        )
    if inside_launcher() or (num_processes == 1 and accelerate_config is None):
        return None
    count = ["--num_processes", str(num_processes)]
    if accelerate_config is not None:
        launcher = ["-m", "accelerate.commands.launch", "--config_file", accelerate_config, *count]
    elif cuda:
        launcher = ["-m", "accelerate.commands.launch", "--multi_gpu", *count]
    else:
        launcher = [
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={num_processes}",
        ]
    return [sys.executable, *launcher, "--module", module, *args]
