"""Progress of a loop over batches: a tqdm bar on a terminal; in a log (CI, `dvc repro > log`,
a file), at most one line per interval plus one line when the loop ends, instead of one update
per batch."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TextIO, TypeVar

Item = TypeVar("Item")

# in a log, the most often a progress line is written
LOG_INTERVAL_SECONDS = 30.0


class ProgressBar(Protocol[Item]):
    """What training, evaluation and predict use of a progress bar (tqdm has both)."""

    def __iter__(self) -> Iterator[Item]: ...

    def set_postfix(self, **values: Any) -> None: ...


class LogProgress(Iterable[Item]):
    """Progress lines for a stream that is not a terminal, `<desc>: <unit> <done>/<total>,
    <elapsed> s[, <postfix>]`, when `interval_seconds` have passed since the last line, and a
    last line when the loop ends."""

    def __init__(
        self,
        iterable: Iterable[Item],
        desc: str,
        total: int | None,
        unit: str,
        stream: TextIO,
        interval_seconds: float,
        initial: int = 0,
    ) -> None:
        self.iterable = iterable
        self.desc = desc
        self.total = total
        self.unit = unit
        self.stream = stream
        self.interval_seconds = interval_seconds
        self.postfix: dict[str, Any] = {}
        self.done = initial

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def _write(self, elapsed: float) -> None:
        of_total = f"/{self.total}" if self.total is not None else ""
        extra = "".join(f", {name} {value}" for name, value in self.postfix.items())
        self.stream.write(
            f"{self.desc}: {self.unit} {self.done}{of_total}, {elapsed:.1f} s{extra}\n"
        )
        self.stream.flush()

    def __iter__(self) -> Iterator[Item]:
        start = last_line = time.monotonic()
        written = -1  # the count the last line showed
        for item in self.iterable:
            yield item
            self.done += 1
            now = time.monotonic()
            if now - last_line >= self.interval_seconds:
                self._write(now - start)
                last_line, written = now, self.done
        # an interval line after the last item already said what the closing line would
        if written != self.done:
            self._write(time.monotonic() - start)


def progress_bar(
    iterable: Iterable[Item],
    desc: str,
    total: int | None = None,
    unit: str = "batch",
    leave: bool = True,
    stream: TextIO | None = None,
    interval_seconds: float = LOG_INTERVAL_SECONDS,
    initial: int = 0,
) -> ProgressBar[Item]:
    """A tqdm bar over `iterable` when `stream` (stderr by default) is a terminal, else
    `LogProgress`: at most one line per `interval_seconds`, plus one at the end. `initial`: the
    items done before `iterable` starts (a resumed epoch's), counted towards `total`."""
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        from tqdm.auto import tqdm

        return tqdm(
            iterable,
            desc=desc,
            total=total,
            unit=unit,
            leave=leave,
            file=stream,
            initial=initial,
        )
    return LogProgress(iterable, desc, total, unit, stream, interval_seconds, initial)
