"""Live logging with dvclive, one step per epoch, for `dvc exp show` and `dvc plots`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# a logged value whose name is also a param gets a column named after its file in `dvc exp show`
# (`dvclive/metrics.json:lr`), and so does the param (`params.yaml:lr`): renamed, both stay short
RENAMED = {"lr": "learning_rate"}


class LiveLogger:
    """Logs each epoch's record (train loss, learning rate, validation metrics) as dvclive
    step = epoch."""

    def __init__(self, directory: str | Path) -> None:
        from dvclive import Live

        # dvc.yaml declares the outputs, so dvclive must not write its own dvc.yaml or experiment
        self.live = Live(dir=str(directory), save_dvc_exp=False, dvcyaml=False, report=None)

    def __call__(self, record: dict[str, Any]) -> None:
        self.live.step = int(record["epoch"])
        for name, value in record.items():
            if name != "epoch":
                self.live.log_metric(RENAMED.get(name, name), value)
        self.live.make_summary()

    def close(self) -> None:
        self.live.end()
