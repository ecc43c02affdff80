"""Writing files atomically (a temporary path, then a rename), and file helpers: JSON, SHA-256.

Nothing here imports pandas or pyarrow, so that modules which only write files stay light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bertpipe.errors import UserError

# A leftover of a writer on another machine (a shared or network folder, another container) can
# not be asked whether its process still runs: it is swept only once nothing in it has changed
# for this long, which no live writer reaches (predict writes its rows as it goes).
OTHER_HOST_IDLE_SECONDS = 24 * 3600


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(target: str | Path, *, replace_folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds.

    Works for files and folders. A crash leaves at most a `.tmp-*` sibling, never a half-written
    target, so nothing that looks complete is ever wrong. An existing folder at `target` is
    refused (a UserError, before the block runs) unless `replace_folder` is set: only a stage
    replacing the output folder it owns sets it, so a user's folder is never deleted.
    """
    target = Path(target)
    _refuse_folder(target, replace_folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid and host in the name: remove_leftovers leaves a live writer's folder alone
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{_writer()}-", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        replace_path(staged, target, replace_folder=replace_folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_path(source: Path, target: Path, *, replace_folder: bool = False) -> None:
    """Move `source` onto `target`; a folder at `target` is replaced only with `replace_folder`."""
    # checked again here: the folder may have appeared while the block wrote `source`
    _refuse_folder(target, replace_folder)
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old-{_writer()}")
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if target.is_file() and source.is_file():
            # the user's permissions stay (a file restricted to its owner must not come back
            # readable by all with the umask's mode)
            shutil.copymode(target, source)
        os.replace(source, target)


def _refuse_folder(target: Path, replace_folder: bool) -> None:
    if target.is_dir() and not replace_folder:
        raise UserError(
            f"{target}: is a folder; name a file to write (the folder was left as it is)"
        )


def remove_leftovers(*targets: str | Path) -> None:
    """Remove what a killed writer of each target left beside it: atomic_path's `.<name>.tmp-*`
    folders and replace_path's `.<name>.old-*`. A stage calls it when it starts, so that a run
    killed mid-write leaves nothing behind once the next run has begun. A leftover named by a
    process still running on this machine is another writer's, at work: it is left alone (two
    `bertpipe predict --output` of one file at once must not delete each other's work). One
    named by another machine is left alone until it has been idle for OTHER_HOST_IDLE_SECONDS."""
    host = _host()
    for target in map(Path, targets):
        for kind in ("tmp", "old"):
            prefix = f".{target.name}.{kind}-"
            for leftover in target.parent.glob(f"{prefix}*"):
                # <pid>@<host>, then mkdtemp's suffix; older versions wrote <pid> alone
                pid, _, writer_host = leftover.name[len(prefix) :].split("-")[0].partition("@")
                if writer_host and writer_host != host:
                    if _idle_seconds(leftover) < OTHER_HOST_IDLE_SECONDS:
                        continue
                elif pid.isdigit() and _another_live_process(int(pid)):
                    continue
                remove_path(leftover)


def _another_live_process(pid: int) -> bool:
    if pid == os.getpid():  # this process writes nothing before it sweeps: a reused pid
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to another user
        return True
    except OSError:
        return False
    return True


def _writer() -> str:
    """`<pid>@<host>`: who writes a temporary path, as remove_leftovers reads it back."""
    return f"{os.getpid()}@{_host()}"


def _host() -> str:
    # the machine's name with '-' (the name's separator) and anything unsafe in a file name as '_'
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "unknown"


def _idle_seconds(path: Path) -> float:
    """Seconds since anything in `path` (itself, or any file or folder below it) last changed;
    0 when it has just gone (its writer finished)."""
    try:
        newest = path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0
    if path.is_dir() and not path.is_symlink():
        for folder, subfolders, files in os.walk(path):
            for name in (*subfolders, *files):
                with contextlib.suppress(OSError):  # removed meanwhile
                    newest = max(newest, (Path(folder) / name).lstat().st_mtime)
    return time.time() - newest


def remove_scratch(folder: str | Path, prefix: str) -> None:
    """Remove the scratch folders `<prefix>*` a killed run left in `folder`."""
    for leftover in Path(folder).glob(f"{prefix}*"):
        remove_path(leftover)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_json(path: str | Path, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
