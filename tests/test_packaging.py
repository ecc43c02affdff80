"""The package as installed: its version on the command line, and requirements.lock in step with
pyproject.toml and with the installed packages (no network: only files and package metadata)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from typer.testing import CliRunner

from bertpipe.cli import app

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# torch is installed apart from the lock (its CPU or CUDA build), pinned in the Makefile
TORCH_PIN = re.search(r"^TORCH := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)


def locked() -> dict[str, tuple[Requirement, int]]:
    """Each requirement of requirements.lock that applies here, with its number of hashes."""
    entries: dict[str, tuple[Requirement, int]] = {}
    text = (REPO / "requirements.lock").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement_text, *options = line.split(" --hash=")
        requirement = Requirement(requirement_text)
        if requirement.marker is None or requirement.marker.evaluate():
            entries[canonicalize_name(requirement.name)] = (requirement, len(options))
    return entries


def exact_version(requirement: Requirement) -> str:
    (specifier,) = requirement.specifier
    assert specifier.operator == "==", f"{requirement} is not pinned exactly"
    return specifier.version


def test_version_comes_from_the_installed_metadata() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"bertpipe {metadata.version('bertpipe')}\n"
    assert metadata.version("bertpipe") == PYPROJECT["version"]


def test_lock_pins_every_dependency_exactly_with_hashes() -> None:
    lock = locked()
    dependencies = [*PYPROJECT["dependencies"], *PYPROJECT["optional-dependencies"]["dev"]]
    for dependency in map(Requirement, dependencies):
        name = canonicalize_name(dependency.name)
        if name == "torch":
            assert name not in lock
            assert TORCH_PIN is not None, "the Makefile pins torch (TORCH := ...)"
            assert dependency.specifier.contains(TORCH_PIN.group(1)), (dependency, TORCH_PIN)
            continue
        assert name in lock, f"{dependency} is not in requirements.lock: run `make lock`"
        pinned, hashes = lock[name]
        assert dependency.specifier.contains(exact_version(pinned)), (dependency, pinned)
        assert hashes > 0, f"{pinned} has no hash"


def test_installed_packages_are_the_locked_ones() -> None:
    """A lock that drifted from the environment the tests ran in fails here."""
    drifted = {}
    for name, (pinned, hashes) in locked().items():
        assert hashes > 0, f"{pinned} has no hash"
        installed = metadata.version(name)
        if installed != exact_version(pinned):
            drifted[name] = (exact_version(pinned), installed)
    assert not drifted, f"locked vs installed: {drifted}; rerun `make install` or `make lock`"
    assert TORCH_PIN is not None
    assert Version(metadata.version("torch")).base_version == TORCH_PIN.group(1)
