"""The folder that takes the GPU comparison to a bare GPU machine, and its unpacking there.

The device machine (BENCHMARKS.md, "GPU: the one-command comparison") has torch, transformers,
accelerate, pandas and scikit-learn, but not what else bertpipe imports (pydantic), nor the
packaged MiniLM, nor ../shared's data; nothing can be downloaded there, and one call carries at
most 64 MiB of the working tree and carried folders together. So, here:

    .venv/bin/python benchmarks/device_bundle.py pack            # fills .device/ (git-ignored)

writes into .device/:
  wheels/   pydantic and the packages it needs that the machine lacks, at the versions this
            checkout's venv has, for CPython 3.12 on x86-64 Linux (the machine's python3);
  minilm/   the packaged all-MiniLM-L6-v2: its config and tokenizer files, and its weights in
            fp16 (the fp32 file is 88 MB, over the limit on its own);
  data/     a copy of ../shared/data/medical_abstracts (the abstracts, their labels, the
            licence): never committed, only carried;
and says how many MiB the call will carry. There, benchmarks/gpu_compare.sh runs

    python3 benchmarks/device_bundle.py restore .device/minilm /tmp/minilm

which writes the weights back as fp32 (each weight within fp16's rounding of the original:
`pack` prints the largest relative difference) next to the copied files, for --model.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / ".device"  # the one folder carried; /.device/ is in .gitignore
WEIGHTS = "model.safetensors"
HALF_WEIGHTS = "model.fp16.safetensors"
# bertpipe's imports at module level that the device machine's image lacks (KINDS.md lists what
# it has), with what pydantic needs in turn; typing-extensions too, since pydantic-core wants a
# recent one and a newer copy first on the path harms nothing there
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")
# what the device tool accepts at most per call: working tree plus carried folders
LIMIT_MIB = 64
# the machine's python3 (KINDS.md); pydantic-core is compiled, so its wheel must match
DEVICE_PYTHON = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
# the files beside the weights that config and tokenizer loading read
MODEL_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
DATA_FILES = ("medical_abstracts.csv", "labels.csv", "LICENSE", "README.md")


def download_wheels(target: Path, python_version: str) -> list[Path]:
    """pip download --no-deps of WHEELS at this venv's versions, built for `python_version`."""
    target.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in WHEELS]
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            *platforms,
            "--dest",
            str(target),
            *pins,
        ],
        check=True,
    )
    return sorted(target.glob("*.whl"))


def pack_model(source: Path, target: Path) -> float:
    """The model's files and its weights in fp16; returns the largest relative difference
    between a restored fp32 weight and the original (over the tensors with any non-zero)."""
    import torch
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    tensors = load_file(source / WEIGHTS)
    half = {
        name: tensor.half() if tensor.is_floating_point() else tensor
        for name, tensor in tensors.items()
    }
    worst = 0.0
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            continue
        back = half[name].float()
        if not torch.isfinite(back).all():
            raise SystemExit(f"{name}: a weight is out of fp16's range; cannot pack it in fp16")
        scale = tensor.abs().max()
        if scale > 0:
            worst = max(worst, float((back - tensor).abs().max() / scale))
    save_file(half, target / HALF_WEIGHTS, metadata={"format": "pt", "packed_from": "float32"})
    return worst


def restore_model(packed: Path, target: Path) -> Path:
    """`packed` (pack_model's folder) as a model folder with fp32 weights in `target`."""
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    for path in packed.iterdir():
        if path.name != HALF_WEIGHTS:
            shutil.copy2(path, target / path.name)
    tensors = load_file(packed / HALF_WEIGHTS)
    full = {
        name: tensor.float() if tensor.is_floating_point() else tensor
        for name, tensor in tensors.items()
    }
    save_file(full, target / WEIGHTS, metadata={"format": "pt"})
    return target


def _tree_bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for path in paths for p in [path, *path.rglob("*")] if p.is_file())


def travelling_bytes(bundle: Path) -> int:
    """What one device call sends: the files git would send (tracked, and untracked ones it
    does not ignore) plus the carried bundle."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    files = [REPO / name.decode() for name in listed if name]
    return sum(f.stat().st_size for f in files if f.is_file()) + _tree_bytes([bundle])


def pack(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "src"))
    from abstracts import DATA_DIR

    from bertpipe.model import resolve_model

    bundle: Path = args.out
    if bundle.exists():
        shutil.rmtree(bundle)  # a fresh bundle: no wheel of an older version left behind
    wheels = download_wheels(bundle / "wheels", args.python_version)
    print(f"wheels for CPython {args.python_version}: {', '.join(w.name for w in wheels)}")
    worst = pack_model(Path(resolve_model(args.model)), bundle / "minilm")
    print(
        f"model {args.model}: fp16 weights, largest relative difference after restore {worst:.2e}"
    )
    (bundle / "data").mkdir()
    for name in DATA_FILES:
        shutil.copy2(DATA_DIR / name, bundle / "data" / name)
    inside = bundle.resolve().is_relative_to(REPO)
    if inside and subprocess.run(["git", "check-ignore", "-q", str(bundle)], cwd=REPO).returncode:
        raise SystemExit(f"{bundle} is not ignored by git: it must never be committed")
    carried = _tree_bytes([bundle]) / 2**20
    total = travelling_bytes(bundle) / 2**20 if inside else carried
    print(f"{bundle}: {carried:.1f} MiB; one call carries {total:.1f} MiB of {LIMIT_MIB}")
    if total > LIMIT_MIB:
        raise SystemExit(f"over the device call's {LIMIT_MIB} MiB: carry less")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    packing = verbs.add_parser("pack", help="here: fill .device/")
    packing.add_argument("--out", type=Path, default=BUNDLE)
    packing.add_argument("--model", default="minilm")
    packing.add_argument(
        "--python-version",
        default=DEVICE_PYTHON,
        help="the wheels' CPython (default: the GPU machine's, 3.12)",
    )
    restoring = verbs.add_parser("restore", help="there: fp32 weights back into a model folder")
    restoring.add_argument("packed", type=Path)
    restoring.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    if args.verb == "pack":
        pack(args)
    else:
        print(f"restored fp32 weights into {restore_model(args.packed, args.target)}")


if __name__ == "__main__":
    main()
