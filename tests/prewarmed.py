"""`python -m MODULE ARGS...` in a child forked from a Python that has already imported bertpipe.

A stage script or a `bertpipe` command spends one to four seconds of CPU importing torch,
transformers, pandas and pyarrow before it reads its first argument. tests/test_bad_input.py runs
over a hundred of them to see each one fail on its first line, so most of its time went to
imports. Here one server process per pytest worker imports them once, and each command runs in a
fork of it, set up as a new process would be:
- its own working directory and environment, `sys.argv`, and the working directory first on
  `sys.path` (as `python -m` puts it);
- stdin from /dev/null, stdout and stderr to files;
- Python's and numpy's global generators seeded anew;
- the module run as `__main__` by runpy; the exit code of `sys.exit`, or 1 and the traceback for
  an uncaught exception; the atexit handlers (temporary files' finalizers among them) at the end.
Each fork starts from the server's state, so no command sees what another one did.

Run as a script, this file is the server: one JSON request per line on stdin, one JSON reply per
line on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

# imported by the server before it forks: the heavy libraries and every bertpipe module
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "torch",
    "transformers",
    "transformers.models.bert.modeling_bert",
    "accelerate",
    "dvclive",
)


def _preload() -> None:
    import importlib
    import pkgutil

    for name in PRELOAD:
        importlib.import_module(name)
    import bertpipe

    for module in pkgutil.iter_modules(bertpipe.__path__):
        importlib.import_module(f"bertpipe.{module.name}")


def _exit_code(code: object) -> int:
    """What the interpreter makes of `sys.exit(code)`: None is 0, an int is itself, any other
    object is printed to stderr and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _reseed() -> None:
    """A new process seeds Python's and numpy's global generators from the OS; a fork would
    share the server's state with every other fork."""
    import random

    import numpy as np

    random.seed()
    np.random.seed()


def _run_in_child(request: dict[str, Any]) -> None:
    """In the forked child: become the requested process, run the module, exit. Never returns."""
    import atexit
    import runpy
    import traceback

    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        sys.path.insert(0, os.getcwd())
        sys.argv = [request["module"], *request["args"]]
        _reseed()
        # a new process has not imported the module it runs (runpy warns when it is there)
        sys.modules.pop(request["module"], None)
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_request:
            code = _exit_code(exit_request.code)
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve(requests: IO[str], replies: IO[str]) -> None:
    _preload()
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_in_child(request)
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


class Prewarmed:
    """A client of one server process: `run` is `subprocess.run([python, "-m", module, *args],
    cwd=cwd, env=env, capture_output=True, text=True)` without the imports."""

    def __init__(self, env: dict[str, str]) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="prewarmed-")
        self._server = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self._server.stdin is not None and self._server.stdout is not None
        self._requests, self._replies = self._server.stdin, self._server.stdout
        ready = self._replies.readline()
        if not ready:
            raise RuntimeError(f"the prewarmed server exited with {self._server.wait()}")

    def run(
        self, module: str, args: list[str], cwd: Path, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        stdout = Path(self._scratch.name) / "stdout"
        stderr = Path(self._scratch.name) / "stderr"
        request = {
            "module": module,
            "args": args,
            "cwd": str(cwd),
            "env": env,
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        self._requests.write(json.dumps(request) + "\n")
        self._requests.flush()
        reply = self._replies.readline()
        if not reply:
            raise RuntimeError(f"the prewarmed server exited with {self._server.wait()}")
        returncode = json.loads(reply)["returncode"]
        return subprocess.CompletedProcess(
            [sys.executable, "-m", module, *args],
            returncode,
            stdout.read_text(encoding="utf-8"),
            stderr.read_text(encoding="utf-8"),
        )

    def close(self) -> None:
        self._requests.close()
        self._server.wait(timeout=60)
        self._replies.close()
        self._scratch.cleanup()


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder: the commands import nothing from tests/
    serve(sys.stdin, sys.stdout)
