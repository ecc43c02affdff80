"""The speed benchmark runs every contestant on one device and says which (issue 23).

benchmarks/train_speed.py on the tiny BERT and a few synthetic abstracts, on the CPU: every
contestant, the inference paths and the matmul peak on the device asked for, the JSON naming it;
--device cuda without a GPU is one line; the bundle that carries the model to a GPU machine
gives back the same model. Nothing here times anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from contestants import (  # noqa: E402
    Settings,
    resolve_device,
    trainer_args,
    trainer_device_options,
)
from device_bundle import pack_model, restore_model  # noqa: E402
from harness import cpu_name, machine_info, measure_peak  # noqa: E402
from speed_report import target_rows  # noqa: E402

from bertpipe.errors import UserError  # noqa: E402
from bertpipe.params import Params  # noqa: E402

NO_GPU = not torch.cuda.is_available()
LABELS = ["neoplasms", "digestive", "nervous", "cardiovascular", "general"]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}


@pytest.fixture(scope="module")
def abstracts(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """100 abstracts of 5 classes in the shared data's format, in the tiny BERT's words."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("abstracts")
    vocab = AutoTokenizer.from_pretrained(tiny_bert).get_vocab()
    words = sorted(w for w in vocab if w.isalpha() and len(w) > 2)
    rows = []
    for i in range(100):
        label = i % 5 + 1
        text = " ".join(words[(label * 7 + i + k) % len(words)] for k in range(12))
        rows.append({"condition_label": label, "medical_abstract": text})
    pd.DataFrame(rows).to_csv(folder / "medical_abstracts.csv", index=False)
    pd.DataFrame({"condition_label": range(1, 6), "condition_name": LABELS}).to_csv(
        folder / "labels.csv", index=False
    )
    return folder


def run_train_speed(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / "train_speed.py"), *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )


def small_run(tiny_bert: Path, abstracts: Path, device: str, out: Path) -> dict:
    """Every contestant at two batch sizes and a one-size sweep, then the inference paths."""
    done = run_train_speed(
        [
            "--device",
            device,
            "--model",
            str(tiny_bert),
            "--data",
            str(abstracts),
            "--max-lengths",
            "32",
            "--train-size",
            "24",
            "--test-size",
            "10",
            "--val-size",
            "8",
            "--batch-size",
            "8",
            "4",
            "--sweep-batch-sizes",
            "12",
            "--matmul-size",
            "64",
            "--repeats",
            "1",
            "--warmup-rows",
            "6",
            "--no-progress",
            "--json",
            str(out),
        ]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # an untimed warm-up before each timed run, and none of them among the results
    warm_ups = [line for line in done.stdout.splitlines() if "warm-up (untimed)" in line]
    report = json.loads(out.read_text())
    # 3 contestants at 8 and 4, bertpipe at 12, the other two again at 12 if it is the fastest
    assert (
        len(warm_ups)
        == len(report["results"])
        == (9 if report["best_batch_size"]["32"] == 12 else 7)
    )
    assert report["failures"] == []
    return report


def check_one_device(report: dict, device: str, name: str) -> None:
    assert report["machine"]["device"] == device
    assert report["machine"]["device_name"] == name
    assert report["matmul_peak"]["device"] == device
    assert report["settings"]["device"] == device
    ran = {(r["contestant"], r["batch_size"]) for r in report["results"]}
    # batch 8 and 4 for all; the sweep's 12 for bertpipe, and the others again at the fastest
    assert {("bertpipe", b) for b in (8, 4, 12)} <= ran
    best = report["best_batch_size"]["32"]
    assert best in (8, 4, 12)
    assert {(c, b) for c in ("trainer", "seed-loop") for b in {8, 4, best}} == {
        (c, b) for c, b in ran if c != "bertpipe"
    }
    assert {r["notes"]["device"] for r in report["results"]} == {device}
    paths = {r["path"] for r in report["inference"]}
    assert paths == {
        "bertpipe",
        "bertpipe+tokenize",
        "trainer.predict",
        "pipeline",
        "pipeline-bf16",
    }
    assert [row["what"] for row in report["targets"]][:2] == [
        "train, batch 16, vs Trainer",
        "train, batch 64, vs Trainer",
    ]


@pytest.mark.slow
def test_every_contestant_runs_on_the_cpu(tiny_bert: Path, abstracts: Path, tmp_path: Path) -> None:
    report = small_run(tiny_bert, abstracts, "cpu", tmp_path / "speed.json")
    check_one_device(report, "cpu", cpu_name())


@pytest.mark.slow
@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_every_contestant_runs_on_the_gpu(tiny_bert: Path, abstracts: Path, tmp_path: Path) -> None:
    report = small_run(tiny_bert, abstracts, "cuda", tmp_path / "speed.json")
    check_one_device(report, "cuda", torch.cuda.get_device_name())


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize(
    "script", ["train_speed.py", pytest.param("profile_step.py", marks=pytest.mark.slow)]
)
def test_device_cuda_without_a_gpu_is_one_line(script: str, tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    args = ["--device", "cuda", *(["--json", str(out)] if script == "train_speed.py" else [])]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: --device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False); "
        "run with --device cpu, or on a GPU machine with a CUDA build of torch"
    ]
    assert not out.exists()


def test_the_default_device_is_what_torch_sees() -> None:
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="choose cpu or cuda"):
        resolve_device("mps")


def test_a_contestant_that_fails_is_recorded_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import train_speed

    ran = []

    def run_contestant(contestant: str, data, splits, settings: Settings, *rest, **kw):
        ran.append((contestant, settings.params.batch_size))
        if (contestant, settings.params.batch_size) == ("trainer", 64):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\n(details)")
        return types.SimpleNamespace(contestant=contestant), None

    monkeypatch.setattr(train_speed, "run_contestant", run_contestant)
    failures: list[dict] = []
    settings = Settings(Params(), progress=False, others_attention_dropout=None)
    contestants = ["bertpipe", "trainer", "seed-loop"]
    results, _ = train_speed.run_batch_sizes(
        contestants, [16, 64], None, None, settings, None, 128, "", 0, None, failures=failures
    )
    assert ran == [(c, b) for b in (16, 64) for c in contestants]
    assert [r.contestant for r in results] == [*contestants, "bertpipe", "seed-loop"]
    assert failures == [
        {
            "contestant": "trainer",
            "max_length": 128,
            "batch_size": 64,
            "error": "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
        }
    ]
    with pytest.raises(RuntimeError, match="out of memory"):  # no list: the failure is raised
        train_speed.run_batch_sizes(contestants, [64], None, None, settings, None, 128, "", 0, None)


@pytest.mark.slow
def test_the_gpu_checks_run_on_the_cpu(tiny_bert: Path, abstracts: Path, tmp_path: Path) -> None:
    out = tmp_path / "checks.json"
    args = ["--device", "cpu", "--model", str(tiny_bert), "--data", str(abstracts)]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_checks.py"), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    checks = json.loads(out.read_text())
    assert checks["device"] == "cpu" and not checks["takes_boolean_mask_here"]
    assert checks["mask"]["padded_tokens"] > 0  # the batch pads, so the mask matters
    assert checks["mask"]["max_abs_difference_no"] < 1e-5
    assert checks["syncs"] is None  # counted by CUDA only
    assert checks["rerun"] == {"bitwise_equal": True, "max_abs_weight_difference": 0.0}


def test_trainer_follows_the_device(tmp_path: Path) -> None:
    settings = Settings(Params(), progress=False, others_attention_dropout=None)
    assert settings.device == torch.device("cpu")
    args = trainer_args(settings, str(tmp_path), train_size=32)
    assert args.use_cpu
    assert args.device.type == "cpu"
    assert not args.dataloader_pin_memory


def test_trainer_is_asked_for_the_gpu_in_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    # TrainingArguments itself refuses bf16 on a GPU it cannot see: check what it is given
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert trainer_device_options(torch.device("cuda")) == {
        "use_cpu": False,
        "bf16": True,
        "dataloader_pin_memory": True,
    }
    assert trainer_device_options(torch.device("cpu"))["use_cpu"]


@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_trainer_on_the_gpu_in_bf16(tmp_path: Path) -> None:
    settings = Settings(
        Params(), progress=False, others_attention_dropout=None, device=torch.device("cuda")
    )
    args = trainer_args(settings, str(tmp_path), train_size=32)
    assert not args.use_cpu
    assert args.device.type == "cuda"
    assert args.bf16 == torch.cuda.is_bf16_supported()


def test_the_peak_and_the_machine_name_the_device() -> None:
    peak = measure_peak(64, repeats=1, device="cpu")
    assert peak.device == "cpu"
    assert min(peak.fp32_tflops, peak.bf16_tflops, peak.autocast_bf16_tflops) > 0
    info = machine_info("cpu")
    assert (info["device"], info["device_name"]) == ("cpu", cpu_name())


def _report(train: dict[tuple[str, int], float], predict: dict[str, float]) -> dict:
    return {
        "results": [
            {"contestant": c, "batch_size": b, "max_length": 128, "samples_per_s": v}
            for (c, b), v in train.items()
        ],
        "inference": [
            {"path": p, "max_length": 128, "examples_per_s": v} for p, v in predict.items()
        ],
        "best_batch_size": {"128": 256},
    }


def test_targets_are_met_or_not_or_not_measured() -> None:
    train = {
        ("bertpipe", 16): 300.0,
        ("trainer", 16): 150.0,  # 2x: met
        ("bertpipe", 64): 1000.0,
        ("trainer", 64): 1000.0,  # 1x: not met
        ("bertpipe", 256): 3999.0,  # under 4,000: not met; Trainer not run there
    }
    rows = target_rows(_report(train, {"bertpipe": 500.0, "trainer.predict": 100.0}))
    met = {row["what"]: row["met"] for row in rows}
    assert met == {
        "train, batch 16, vs Trainer": True,
        "train, batch 64, vs Trainer": False,
        "train, best batch (256), vs Trainer": False,
        "predict vs pipeline() bf16": None,  # no pipeline-bf16 in this run
        "predict vs Trainer.predict": None,  # no target
    }
    assert rows[0]["ratio"] == pytest.approx(2.0)
    assert rows[2]["other"] is None


def test_the_bundle_gives_back_the_model(tiny_bert: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from bertpipe.model import load_classifier

    worst = pack_model(tiny_bert, tmp_path / "packed")
    packed = load_file(tmp_path / "packed" / "model.fp16.safetensors")
    assert {t.dtype for t in packed.values() if t.is_floating_point()} == {torch.float16}
    restored = restore_model(tmp_path / "packed", tmp_path / "restored")
    original = load_file(tiny_bert / "model.safetensors")
    back = load_file(restored / "model.safetensors")
    assert back.keys() == original.keys()
    for name, tensor in original.items():
        assert back[name].dtype == tensor.dtype
        torch.testing.assert_close(back[name], tensor, rtol=1e-3, atol=1e-3 * tensor.abs().max())
    assert 0 < worst < 1e-3
    model = load_classifier(str(restored), 5, "single_label_classification", LABELS)
    assert model.config.num_labels == 5
