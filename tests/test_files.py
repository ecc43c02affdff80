"""files.atomic_path and replace_path: a user's folder is never deleted or replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bertpipe.errors import UserError
from bertpipe.files import atomic_path, replace_path


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("the user's file")
    return folder


def test_a_folder_target_is_refused_and_left_intact(tmp_path: Path) -> None:
    folder = user_folder(tmp_path)
    block_ran = False
    with pytest.raises(UserError, match="is a folder"), atomic_path(folder) as staged:
        block_ran = True
        staged.write_text("new")
    assert not block_ran  # refused before any work is done
    assert names(folder) == ["keep.txt"]
    assert (folder / "keep.txt").read_text() == "the user's file"
    assert names(tmp_path) == ["results"]  # no temporary sibling left


def test_a_symlink_to_a_folder_is_refused(tmp_path: Path) -> None:
    folder = user_folder(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(UserError, match="is a folder"), atomic_path(link) as staged:
        staged.write_text("new")
    assert link.is_symlink() and names(folder) == ["keep.txt"]


def test_a_folder_that_appears_during_the_write_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with pytest.raises(UserError, match="is a folder"), atomic_path(target) as staged:
        staged.write_text("new")
        target.mkdir()
        (target / "keep.txt").write_text("x")
    assert names(target) == ["keep.txt"]
    assert names(tmp_path) == ["out.csv"]


def test_replace_path_refuses_a_folder_without_the_opt_in(tmp_path: Path) -> None:
    folder = user_folder(tmp_path)
    source = tmp_path / "new.txt"
    source.write_text("new")
    with pytest.raises(UserError, match="is a folder"):
        replace_path(source, folder)
    assert names(folder) == ["keep.txt"] and source.read_text() == "new"


def test_a_stage_replaces_its_own_folder_when_it_opts_in(tmp_path: Path) -> None:
    folder = user_folder(tmp_path)
    with atomic_path(folder, replace_folder=True) as staged:
        staged.mkdir()
        (staged / "fresh.txt").write_text("new")
    assert names(folder) == ["fresh.txt"]
    assert names(tmp_path) == ["results"]


def test_an_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with atomic_path(target) as staged:
        staged.write_text("new")
        assert target.read_text() == "old"  # the old file stays until the block succeeds
    assert target.read_text() == "new"
    assert names(tmp_path) == ["out.csv"]


def test_the_sweep_removes_a_dead_writers_leftovers_and_leaves_a_live_ones(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from bertpipe.files import remove_leftovers

    target = tmp_path / "out.csv"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom bertpipe.files import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_text('half')\n    print('writing', flush=True)\n    time.sleep(600)\n",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        live = list(tmp_path.glob(".out.csv.tmp-*"))
        assert [path.name.split("-")[1].split("@")[0] for path in live] == [str(writer.pid)]
        older = tmp_path / ".out.csv.tmp-killed"  # a leftover named without a pid
        older.mkdir()
        remove_leftovers(target)
        assert list(tmp_path.glob(".out.csv.tmp-*")) == live  # the live writer's work is kept
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    remove_leftovers(target)  # the writer is dead: its folder is a leftover now
    assert names(tmp_path) == []


def test_another_machines_leftover_is_kept_until_it_has_been_idle_a_day(tmp_path: Path) -> None:
    # a shared folder: a pid from another machine says nothing of the processes here
    import os
    import time

    from bertpipe.files import OTHER_HOST_IDLE_SECONDS, remove_leftovers

    target = tmp_path / "out.csv"
    at_work = tmp_path / ".out.csv.tmp-1@other-host.example-abc123"
    at_work.mkdir()
    (at_work / "out.csv").write_text("rows so far")
    stopped = tmp_path / ".out.csv.old-1@other-host.example"
    stopped.write_text("an old output")
    old_dir = tmp_path / ".out.csv.tmp-2@other-host.example-def456"
    old_dir.mkdir()
    # the folder idle a day and more, but a file in it written a minute ago: a writer at work
    busy = tmp_path / ".out.csv.tmp-3@other-host.example-ghi789"
    (busy / "sub").mkdir(parents=True)
    (busy / "sub" / "out.csv").write_text("rows")
    day_ago = time.time() - OTHER_HOST_IDLE_SECONDS - 60
    for path in (stopped, old_dir, busy, busy / "sub"):
        os.utime(path, (day_ago, day_ago))
    os.utime(busy / "sub" / "out.csv", (time.time() - 60, time.time() - 60))
    remove_leftovers(target)
    assert names(tmp_path) == sorted([at_work.name, busy.name])


def test_this_machines_leftovers_are_named_by_pid_and_host(tmp_path: Path) -> None:
    import os
    import socket

    from bertpipe.files import remove_leftovers

    target = tmp_path / "out.csv"
    seen: list[str] = []
    with atomic_path(target) as tmp:
        tmp.write_text("x")
        seen = [path.name for path in tmp_path.glob(".out.csv.tmp-*")]
    assert len(seen) == 1
    writer = seen[0].removeprefix(".out.csv.tmp-").split("-")[0]
    pid, _, host = writer.partition("@")
    assert pid == str(os.getpid()) and host and "-" not in host
    assert host.replace("_", "") in socket.gethostname().replace("-", "").replace("_", "")
    # a dead writer of this machine, named as atomic_path names it, is swept at once
    # (Linux pids stop at 2**22: no process has this one)
    (tmp_path / f".out.csv.tmp-{2**22 + 1}@{host}-xyz").mkdir()
    remove_leftovers(target)
    assert names(tmp_path) == ["out.csv"]


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "predictions.csv"
    target.write_text("old")
    target.chmod(0o600)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "fresh.csv"  # a new file gets the umask's mode, as open() gives it
    with atomic_path(fresh) as tmp:
        tmp.write_text("new")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask


def test_the_train_stages_own_output_is_refused_as_its_base_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bertpipe.artifacts import check_base_is_not_output

    output = tmp_path / "models" / "model"
    output.mkdir(parents=True)
    (tmp_path / "models" / "base").mkdir()
    (tmp_path / "link").symlink_to(output)
    monkeypatch.chdir(tmp_path)
    for same in ("models/model", "models/model/", str(output), "link", "./models/../models/model"):
        with pytest.raises(UserError, match=r"^model: .* is the folder this stage writes"):
            check_base_is_not_output(same, "models/model")
    for other in ("minilm", "models/base", "sentence-transformers/all-MiniLM-L6-v2"):
        check_base_is_not_output(other, "models/model")
    check_base_is_not_output("models/model", "models/new")  # a first run: nothing written yet
