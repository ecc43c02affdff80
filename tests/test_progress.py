"""Progress in a log: at most one line per interval plus one at the end of a loop; a bar on a
terminal."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# the module's tiny-BERT data, its fixture and helpers
from test_training import config, new_model, splits  # noqa: F401 (the fixture, by name)

from bertpipe.evaluation import evaluate_model
from bertpipe.progress import LogProgress, progress_bar
from bertpipe.training import fit


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def slow_items(count: int, seconds_each: float) -> Iterator[int]:
    for item in range(count):
        time.sleep(seconds_each)
        yield item


def test_a_log_gets_one_line_per_interval_plus_one_at_the_end() -> None:
    log = io.StringIO()
    # 40 items of 5 ms: 0.2 s, so about 4 lines at one per 50 ms, where a bar would write 40
    bar = progress_bar(
        slow_items(40, 0.005), "epoch 1/2", total=40, stream=log, interval_seconds=0.05
    )
    assert isinstance(bar, LogProgress)
    start = time.monotonic()
    for _ in bar:
        bar.set_postfix(loss="0.1234")
    elapsed = time.monotonic() - start
    lines = log.getvalue().splitlines()
    # lines during the loop are at least an interval apart (a busy machine sleeps longer)
    assert 2 <= len(lines) <= elapsed / 0.05 + 1
    done = [int(line.split("batch ")[1].split("/")[0]) for line in lines]
    assert done == sorted(done) and done[0] < 40
    assert lines[-1].startswith("epoch 1/2: batch 40/40, ")
    assert lines[-1].endswith(", loss 0.1234")
    assert "\r" not in log.getvalue()


def test_a_fast_loop_writes_only_its_last_line() -> None:
    log = io.StringIO()
    items = list(progress_bar(range(1000), "predict", stream=log))
    assert items == list(range(1000))
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("predict: batch 1000, "), lines


def test_a_resumed_epoch_counts_the_batches_done_before() -> None:
    # resumed at batch 80 of 135: the log ends at 135/135, not 55/55; a bar starts at 80
    log = io.StringIO()
    assert list(progress_bar(range(55), "epoch 1/2", total=135, stream=log, initial=80)) == list(
        range(55)
    )
    assert log.getvalue().startswith("epoch 1/2: batch 135/135, ")
    terminal = Terminal()
    bar = progress_bar(range(55), "epoch 1/2", total=135, stream=terminal, initial=80)
    assert bar.n == 80  # type: ignore[attr-defined]
    list(bar)
    assert "135/135" in terminal.getvalue()


def test_a_line_due_at_the_last_item_is_not_written_twice() -> None:
    # each item takes longer than the interval, so every item, the last included, is due a line:
    # the loop's end adds none
    log = io.StringIO()
    bar = progress_bar(slow_items(3, 0.02), "epoch 1/1", total=3, stream=log, interval_seconds=0.01)
    assert list(bar) == [0, 1, 2]
    done = [line.split(",")[0] for line in log.getvalue().splitlines()]
    assert done == ["epoch 1/1: batch 1/3", "epoch 1/1: batch 2/3", "epoch 1/1: batch 3/3"]


def test_an_empty_loop_still_writes_its_line() -> None:
    log = io.StringIO()
    assert list(progress_bar([], "predict", total=0, stream=log)) == []
    assert log.getvalue().startswith("predict: batch 0/0, ")


def test_a_terminal_gets_a_tqdm_bar() -> None:
    from tqdm.auto import tqdm

    terminal = Terminal()
    bar = progress_bar(range(3), "epoch 1/1", total=3, stream=terminal)
    assert isinstance(bar, tqdm)
    assert list(bar) == [0, 1, 2]
    assert "3/3" in terminal.getvalue()


def test_training_in_a_log_writes_one_line_per_epoch(
    tiny_bert: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    # captured stderr is not a terminal: with the 30 s interval a short epoch writes exactly its
    # closing line, where the bar wrote an update per batch
    train, val = request.getfixturevalue("splits")
    fit(new_model(tiny_bert), train, val, config(epochs=2), 0, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert [line.partition(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"], lines
    assert lines[-1].startswith("epoch 2/2: batch 4/4, ")


def test_evaluation_in_a_log_writes_one_line(
    tiny_bert: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    _, val = request.getfixturevalue("splits")
    evaluate_model(new_model(tiny_bert), val, "multiclass", 0, batch_size=8, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("predict: batch 4/4, "), lines
