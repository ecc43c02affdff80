"""Live logging with dvclive, one step per epoch, for `dvc exp show` and `dvc plots`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class LiveLogger:
    """Logs each epoch's record (train loss, lr, validation metrics) as dvclive step = epoch."""

    def __init__(self, directory: str | Path) -> None:
        from dvclive import Live

        # dvc.yaml declares the outputs, so dvclive must not write its own dvc.yaml or experiment
        self.live = Live(dir=str(directory), save_dvc_exp=False, dvcyaml=False, report=None)

    def __call__(self, record: dict[str, Any]) -> None:
        self.live.step = int(record["epoch"])
        for name, value in record.items():
            if name != "epoch":
                self.live.log_metric(name, value)
        self.live.make_summary()

    def close(self) -> None:
        self.live.end()
