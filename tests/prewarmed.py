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
- the module run as `__main__` by runpy; the exit code of `sys.exit`, or 1 and the traceback of
  an uncaught exception; then the end of a process (_exit): threads joined, atexit handlers
  (temporary files' finalizers among them), a last garbage collection, streams flushed.
Each fork starts from the server's state, so no command sees what another one did. What differs:
the libraries were imported under the server's environment, so a request may not change the
variables read at import (READ_AT_IMPORT), and anything they print on import makes
the server refuse to start (a new process would print it before each command's words); all forks
share one hash seed.

Run as a script, this file is the server: one JSON request per line on stdin, one JSON reply per
line on stdout.
"""

from __future__ import annotations

import json
import locale
import os
import signal
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


READY = json.dumps({"ready": True})
# Variables that the libraries read when they are imported (huggingface_hub's and transformers'
# settings, thread counts, Python's own): the server read them once, so a request may not set
# them apart from its environment. Others (BERTPIPE_DEBUG, or TORCHINDUCTOR_CACHE_DIR that
# torch sets in the worker after the server started) are read when a command runs.
READ_AT_IMPORT = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TOKENIZERS_", "OMP_", "MKL_", "PYTHON")


def _preload() -> None:
    import importlib
    import pkgutil

    for name in PRELOAD:
        importlib.import_module(name)
    import bertpipe

    for module in pkgutil.iter_modules(bertpipe.__path__):
        importlib.import_module(f"bertpipe.{module.name}")


def _reseed() -> None:
    """A new process seeds Python's and numpy's global generators from the OS; a fork would
    share the server's state with every other fork."""
    import random

    import numpy as np

    random.seed()
    np.random.seed()


def _become(request: dict[str, Any]) -> None:
    """In the forked child: set up as a new process of the request would be. A failure here
    prints its traceback and ends the child with 1 at once (the test then shows it)."""
    import traceback

    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        sys.path.insert(0, os.getcwd())
        sys.argv = [request["module"], *request["args"]]
        _reseed()
        # a new process has not imported the module it runs (runpy warns when it is there)
        sys.modules.pop(request["module"], None)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def _run(module: str) -> int:
    """Run the module as `__main__`, as `python -m` does; the exit code a new process would have
    (its `sys.exit` code, or 1 after the traceback of an uncaught exception)."""
    import runpy

    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_request:
        code = exit_request.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        return -signal.SIGINT  # a new process ends by SIGINT: see _exit
    except BaseException:
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


def _exit(code: int) -> None:
    """End the child as the interpreter ends a process: non-daemon threads joined, atexit handlers
    (temporary files' finalizers among them) run, a last garbage collection, the streams flushed.
    What it skips is the teardown of every imported module, which with torch loaded costs about
    a second of CPU a command and has no effect a command can see."""
    import atexit
    import gc
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
        gc.collect()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    finally:
        if code == -signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code & 0xFF)


def serve(requests: IO[str], replies: IO[str]) -> None:
    import gc

    _preload()
    # What the imports made is never garbage: frozen, a collection in a child (the last one of
    # _exit, or any automatic one) walks only the command's own objects, and does not write to
    # the pages it shares with the server (0.34 s a command for the last one, unfrozen).
    gc.freeze()
    replies.write(READY + "\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become(request)
            _exit(_run(request["module"]))
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


class Prewarmed:
    """A client of one server process: `run` is `subprocess.run([python, "-m", module, *args],
    cwd=cwd, env=env, capture_output=True, text=True)` without the imports."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = dict(env)
        self._scratch = tempfile.TemporaryDirectory(prefix="prewarmed-")
        self._server_stderr = Path(self._scratch.name) / "server-stderr"
        with self._server_stderr.open("w") as stderr:
            self._server = subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                text=True,
            )
        assert self._server.stdin is not None and self._server.stdout is not None
        self._requests, self._replies = self._server.stdin, self._server.stdout
        ready = self._replies.readline().rstrip("\n")
        # what the imports print, a new process prints before every command's own words
        printed = self._server_stderr.read_text()
        if ready != READY or printed:
            self._server.kill()
            raise RuntimeError(
                f"the prewarmed server printed {ready!r} on stdout and {printed!r} on stderr"
            )

    def run(
        self, module: str, args: list[str], cwd: Path, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        keys = env.keys() | self._env.keys()
        fixed = [key for key in sorted(keys) if key.startswith(READ_AT_IMPORT)]
        if differ := [key for key in fixed if env.get(key) != self._env.get(key)]:
            raise ValueError(f"prewarmed: cannot set {differ} per command")
        if self._server.poll() is not None:
            raise RuntimeError(self._ended())
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
        try:
            self._requests.write(json.dumps(request) + "\n")
            self._requests.flush()
            reply = self._replies.readline()
        except BaseException:
            # interrupted mid-call, its reply would be read as the next call's: end the server
            self._server.kill()
            raise
        if not reply:
            raise RuntimeError(self._ended())
        encoding = locale.getpreferredencoding(False)  # as subprocess's text=True decodes
        return subprocess.CompletedProcess(
            [sys.executable, "-m", module, *args],
            json.loads(reply)["returncode"],
            stdout.read_text(encoding=encoding),
            stderr.read_text(encoding=encoding),
        )

    def _ended(self) -> str:
        code = self._server.wait()
        return f"the prewarmed server ended with {code}: {self._server_stderr.read_text()[-2000:]}"

    def close(self) -> None:
        self._requests.close()
        try:
            self._server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()
        self._replies.close()
        self._scratch.cleanup()


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder: the commands import nothing from tests/
    serve(sys.stdin, sys.stdout)
