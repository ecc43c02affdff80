"""tests/prewarmed.py: a command run in a fork of the prewarmed server ends as it ends in a new
`python -m` process: the same exit code, stdout, stderr and files left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import env
from prewarmed import Prewarmed

MODULES = {
    "raises": "raise ValueError('boom')\n",
    "exits_with_words": "import sys\nsys.exit('bad thing')\n",
    "exits_3": "import sys\nprint('out')\nsys.exit(3)\n",
    "interrupted": "raise KeyboardInterrupt\n",
    # a thread that writes after the module returns, and a temporary folder freed at exit
    "thread_and_tempdir": (
        "import tempfile, threading, time\n"
        "def later():\n    time.sleep(0.2)\n    open('thread_wrote.txt', 'w').write('x')\n"
        "threading.Thread(target=later).start()\n"
        "scratch = tempfile.TemporaryDirectory(dir='.')\n"
        "print('argv', __import__('sys').argv[1:])\n"
    ),
    "imported": "import bertpipe.cli, sys\nprint(sys.path[0] == __import__('os').getcwd())\n",
}


def _outcome(result: subprocess.CompletedProcess[str], cwd: Path) -> tuple[object, ...]:
    # a traceback's frames differ (runpy and this server's own): compare its last line
    stderr = result.stderr.strip().splitlines()[-1:] if result.stderr else []
    left = sorted(path.name for path in cwd.iterdir() if path.name != "mods")
    for path in cwd.iterdir():
        if path.name != "mods":
            path.unlink()
    return result.returncode, result.stdout, stderr, left


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_forked_command_ends_as_a_new_process_ends(
    name: str, prewarmed: Prewarmed, tmp_path: Path
) -> None:
    package = tmp_path / "mods"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / f"{name}.py").write_text(MODULES[name])
    module, args = f"mods.{name}", ["--flag", "value"]
    new = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
    )
    expected = _outcome(new, tmp_path)
    forked = _outcome(prewarmed.run(module, args, tmp_path, env()), tmp_path)
    assert forked == expected


def test_a_variable_read_at_import_cannot_be_set_per_command(
    prewarmed: Prewarmed, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE"):
        prewarmed.run("json.tool", [], tmp_path, {**env(), "HF_HUB_OFFLINE": "0"})


def test_a_module_the_server_imported_runs_as_in_a_new_process(
    prewarmed: Prewarmed, tmp_path: Path
) -> None:
    args = ["predict", "--model", "no-such-folder", "a note"]
    command = [sys.executable, "-m", "bertpipe.cli", *args]
    new = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True)
    forked = prewarmed.run("bertpipe.cli", args, tmp_path, env())
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        new.returncode,
        new.stdout,
        new.stderr,
    )
    assert new.returncode == 1 and new.stderr.startswith("error: no-such-folder")
