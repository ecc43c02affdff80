"""Measuring for the benchmarks: wall and CPU time, what the rest of the machine did meanwhile,
waiting for a quiet machine, the matmul peak, machine info and peak memory.

No module state: the quiet-waiting budget and the seconds waited live in a `Harness` object.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
QUIET_CORES = 0.15  # other processes below this many cores' worth: the machine counts as quiet


def _machine_busy_seconds() -> float:
    """CPU seconds all processes spent busy since boot (/proc/stat, every core)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def other_cores_now(seconds: float = 2.0) -> float:
    """Cores' worth of CPU the machine spent busy over `seconds` while this process slept."""
    machine0, own0 = _machine_busy_seconds(), _own_cpu_seconds()
    time.sleep(seconds)
    other = _machine_busy_seconds() - machine0 - (_own_cpu_seconds() - own0)
    return max(0.0, other) / seconds


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Timing:
    wall_s: float = 0.0
    own_cpu_s: float = 0.0  # this process, all threads
    other_cpu_s: float = 0.0  # every other process on the machine: contention
    load_before: float = 0.0
    load_after: float = 0.0
    waited_s: float = 0.0  # waiting for a quiet machine before the clock started

    @property
    def other_cores(self) -> float:
        """Cores' worth of CPU that other processes used during the phase (0 = quiet machine)."""
        return self.other_cpu_s / self.wall_s if self.wall_s else 0.0


@dataclass
class Harness:
    """Times phases; before each, waits up to `max_wait_s` for other processes to go idle.

    On a machine whose cores are shared, one busy core can slow a multi-threaded PyTorch step
    several-fold (its OpenMP threads wait on each other), so a timed phase should start quiet.
    """

    max_wait_s: float = 0.0
    waited_s: float = 0.0  # over every phase so far

    def wait_quiet(self) -> float:
        """Wait until other processes use < QUIET_CORES for 1 s (at most max_wait_s); seconds."""
        start = time.perf_counter()
        announced = False
        while self.max_wait_s > 0:
            busy = other_cores_now(1.0)
            if busy < QUIET_CORES:
                break
            waited = time.perf_counter() - start
            if waited >= self.max_wait_s:
                print(f"  still {busy:.2f} other cores busy after {waited:.0f}s: going on anyway")
                break
            if not announced:
                limit = self.max_wait_s
                print(f"  other processes busy ({busy:.2f} cores): waiting up to {limit:.0f}s")
                announced = True
        waited = time.perf_counter() - start
        self.waited_s += waited
        return waited

    @contextmanager
    def timed(self) -> Iterator[Timing]:
        waited = self.wait_quiet()
        timing = Timing(load_before=os.getloadavg()[0], waited_s=waited)
        machine0, own0, wall0 = _machine_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        try:
            yield timing
        finally:
            timing.wall_s = time.perf_counter() - wall0
            timing.own_cpu_s = _own_cpu_seconds() - own0
            timing.other_cpu_s = max(0.0, _machine_busy_seconds() - machine0 - timing.own_cpu_s)
            timing.load_after = os.getloadavg()[0]

    def fastest(self, run: Callable[[], Any], repeats: int) -> tuple[Timing, list[float], Any]:
        """Run `repeats` timed times: the fastest run's timing, every wall time, the last output."""
        best: Timing | None = None
        walls: list[float] = []
        output = None
        for _ in range(repeats):
            with self.timed() as timing:
                output = run()
            walls.append(round(timing.wall_s, 3))
            if best is None or timing.wall_s < best.wall_s:
                best = timing
        assert best is not None
        return best, walls, output


@dataclass
class MatmulPeak:
    size: int
    fp32_tflops: float
    bf16_tflops: float  # bf16 tensors
    autocast_bf16_tflops: float  # fp32 tensors under torch.autocast(device, bfloat16)
    device: str = "cpu"  # where the products ran: the device the contestants train on


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_tflops(
    step: Callable[[], Any], flops: float, repeats: int, device: torch.device
) -> float:
    """The fastest of `repeats` timed calls of `step`, as TFLOP/s.

    On CUDA a call only queues kernels: each timed call is bracketed by synchronisations, and
    runs `inner` products so that the launch and the synchronisation are a small part of it.
    """
    inner = 10 if device.type == "cuda" else 1
    step()  # warm-up: oneDNN / cuBLAS pick and build their kernels on the first call
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            step()
        _sync(device)
        best = min(best, (time.perf_counter() - start) / inner)
    return flops / best / 1e12


def measure_peak(size: int, repeats: int, device: str | torch.device = "cpu") -> MatmulPeak:
    """The device's achieved rate on one square matmul, fp32, bf16 and under bf16 autocast.

    Random data on purpose: a product of zeros runs faster than real data on some GPUs. fp32
    is torch's default matmul precision (full fp32, no TF32) on every device.
    """
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    a16, b16 = a.bfloat16(), b.bfloat16()
    flops = 2.0 * size**3

    def autocast_step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return a @ b

    return MatmulPeak(
        size=size,
        fp32_tflops=_best_tflops(lambda: a @ b, flops, repeats, device),
        bf16_tflops=_best_tflops(lambda: a16 @ b16, flops, repeats, device),
        autocast_bf16_tflops=_best_tflops(autocast_step, flops, repeats, device),
        device=device.type,
    )


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), for results that say which CPU they came from."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def device_name(device: str | torch.device) -> str:
    """What the contestants ran on, by model name: the GPU's, or the CPU's."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def machine_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    device = torch.device(device)
    flags = Path("/proc/cpuinfo").read_text()
    info: dict[str, Any] = {
        "device": device.type,
        "device_name": device_name(device),
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "avx512_bf16": " avx512_bf16" in flags,
        "amx_bf16": " amx_bf16" in flags,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "accelerate": __import__("accelerate").__version__,
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info["gpu_memory_gib"] = round(properties.total_memory / 2**30, 1)
        info["gpu_multiprocessors"] = properties.multi_processor_count
        info["cuda"] = torch.version.cuda
    return info


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()


def append_result(results: Path, result: dict[str, Any]) -> None:
    """One run's result as a JSON line at the end of the results file, and on stdout."""
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a") as out:
        out.write(json.dumps(result) + "\n")
    print(json.dumps(result), flush=True)


def read_results(results: Path) -> list[dict[str, Any]]:
    """Every result in a JSON-lines results file, in order."""
    return [json.loads(line) for line in results.read_text().splitlines()]


def set_dotted(params: dict[str, Any], dotted: str, value: Any) -> None:
    """params["train"]["lr"] = value for dotted "train.lr", as `dvc exp run -S` sets it."""
    *parents, last = dotted.split(".")
    section = params
    for part in parents:
        section = section.setdefault(part, {})
    section[last] = value


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class StageTimes:
    seconds: dict[str, float]
    cpu_seconds: dict[str, float]  # what the stage itself used: moves less than wall time when
    # other work shares the machine; the 1-minute load average at its end says how busy it was
    load_average_1min: dict[str, float]
    peak_rss_mib: dict[str, float] = field(default_factory=dict)  # the stage's own process


def run_stages(workspace: Path, stages: tuple[str, ...] | None = None) -> StageTimes:
    """Run dvc.yaml's stage commands (all of them, in the file's order, unless `stages` names
    some) in `workspace`, which holds a params.yaml: what `dvc repro` runs there, without DVC's
    cache, using this checkout's code and this Python."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    times = StageTimes({}, {}, {})
    for stage in stages or tuple(pipeline):
        command = shlex.split(pipeline[stage]["cmd"])
        command[0] = sys.executable
        start, cpu_start = time.perf_counter(), _children_cpu_seconds()
        process = subprocess.Popen(command, cwd=workspace, env=env)
        # wait4 gives this child's own resource use: its peak resident memory (KiB on Linux)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise subprocess.CalledProcessError(process.returncode, command)
        times.peak_rss_mib[stage] = round(usage.ru_maxrss / 1024, 1)
        times.seconds[stage] = round(time.perf_counter() - start, 1)
        times.cpu_seconds[stage] = round(_children_cpu_seconds() - cpu_start, 1)
        times.load_average_1min[stage] = round(os.getloadavg()[0], 2)
    return times


def calibration_before_after(workspace: Path, task: str = "multilabel") -> dict[str, float]:
    """Test ECE and Brier of the calibrated scores in a run's eval/predictions.csv, and of the
    scores its model gave before the decision's shifts and temperatures were folded in:
    sigmoid(T * logit(p) + shift) per label, or softmax(T * log p), which is softmax(logits)
    again. Works for any classification
    run of this pipeline (the medical abstracts' multiclass runs too), with windows as well:
    pooling commutes with dividing every window's logits by T."""
    from scipy import special

    from bertpipe.metrics import calibration_metrics
    from bertpipe.predictions import read_predictions

    text = (workspace / "eval" / "predictions.csv").read_text()
    targets, scores = read_predictions(text, task, "predictions", 0.5).targets_and_scores(task)
    decision = json.loads((workspace / "models" / "model" / "decision.json").read_text())
    temperatures = np.asarray(decision["temperatures"])
    # the file rounds scores to 6 decimals: keep them off 0 and 1 to invert them
    clipped = np.clip(scores, 1e-6, 1 - 1e-6)
    if task == "multilabel":
        # a decision saved before shifts existed (or without pos_weight) has none
        shifts = np.asarray(decision.get("shifts") or np.zeros(len(temperatures)))
        raw = special.expit(special.logit(clipped) * temperatures + shifts)
    else:
        raw = special.softmax(np.log(clipped) * temperatures, axis=1)
    before = calibration_metrics(targets, raw, task)
    after = calibration_metrics(targets, scores, task)
    return {
        "ece_before": before["ece"],
        "ece_after": after["ece"],
        "brier_before": before["brier"],
        "brier_after": after["brier"],
    }
