"""A multi-label set built from the medical abstracts, run through the real pipeline with each
decision setting: per-label F1 and macro-F1 on the test split, and the calibration figures.

The set is built at run time (never committed): a stratified sample of ROWS abstracts, each
labelled with its condition class plus `surgical` where the abstract says surgery, surgical,
surgeon... (the pattern SURGICAL). Each run is the stage commands of dvc.yaml, run in order in a
fresh workspace whose params.yaml is this repository's with BASE overrides and the setting's.

    python benchmarks/multilabel_abstracts.py --workdir /tmp/multilabel \
        --results benchmarks/results/multilabel_abstracts.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from harness import REPO, append_result, calibration_before_after, cpu_name, run_stages, set_dotted

SOURCE = REPO.parent / "shared" / "data" / "medical_abstracts" / "medical_abstracts.csv"
ROWS = 800
SEED = 42
CLASS_NAMES = {
    1: "neoplasms",
    2: "digestive",
    3: "nervous",
    4: "cardiovascular",
    5: "general_pathological",
}
SURGICAL = r"\bsurg"
# the params every run shares: the built table, a split large enough that most labels have 20+
# validation positives, no id columns
BASE: dict[str, Any] = {
    "task": "multilabel",
    "data.path": "data/multilabel.csv",
    "data.text_column": "text",
    "data.label_column": "labels",
    "data.carry_columns": [],
    "split.group_column": None,
    "split.val_size": 0.2,
    "split.test_size": 0.2,
}
# each setting: train params that differ from the defaults (threshold auto, class_weights auto)
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "fixed_0.5": {"train.threshold": 0.5, "train.class_weights": "none"},
    "auto_unweighted": {"train.class_weights": "none"},
    "fixed_0.5_balanced": {"train.threshold": 0.5, "train.class_weights": "balanced"},
}


def build_table() -> pd.DataFrame:
    abstracts = pd.read_csv(SOURCE)
    sample = abstracts.groupby("condition_label", group_keys=False).sample(
        frac=ROWS / len(abstracts), random_state=SEED
    )
    surgical = sample["medical_abstract"].str.lower().str.contains(SURGICAL)
    labels = [
        CLASS_NAMES[int(label)] + ("|surgical" if is_surgical else "")
        for label, is_surgical in zip(sample["condition_label"], surgical, strict=True)
    ]
    return pd.DataFrame({"text": sample["medical_abstract"].to_numpy(), "labels": labels})


def run(setting: str, workdir: Path, table: pd.DataFrame) -> dict[str, Any]:
    workspace = workdir / setting
    if workspace.exists():
        shutil.rmtree(workspace)
    (workspace / "data").mkdir(parents=True)
    table.to_csv(workspace / "data" / "multilabel.csv", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in {**BASE, **SETTINGS[setting]}.items():
        set_dotted(params, dotted, value)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    times = run_stages(workspace)
    per_label = json.loads((workspace / "eval" / "per_label.json").read_text())
    decision = json.loads((workspace / "models" / "model" / "decision.json").read_text())
    val_positives = _val_positives(workspace)
    calibration = calibration_before_after(workspace)
    return {
        "setting": setting,
        "overrides": SETTINGS[setting],
        "metrics": json.loads((workspace / "metrics.json").read_text()),
        "test_f1": {name: row["f1"] for name, row in per_label.items()},
        "test_support": {name: row["support"] for name, row in per_label.items()},
        "val_positives": val_positives,
        "decision": decision,
        "calibration": calibration,
        "stage_seconds": times.seconds,
        "cpu": cpu_name(),
    }


def _val_positives(workspace: Path) -> dict[str, int]:
    from bertpipe.tokens import read_split

    tokens = workspace / "data" / "tokens"
    names = json.loads((tokens / "labels.json").read_text())["label_names"]
    counts = read_split(tokens / "val").labels.sum(axis=0)
    return {name: int(count) for name, count in zip(names, counts, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), action="append")
    parser.add_argument("--results", type=Path, required=True, help="JSON lines, appended")
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    table = build_table()
    for setting in args.setting or list(SETTINGS):
        result = run(setting, args.workdir, table)
        append_result(args.results, result)


if __name__ == "__main__":
    main()
