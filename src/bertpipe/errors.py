"""User-facing errors: one clear line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_USER_ERROR = 1
# A message is read in a terminal or a CI log: one line, short enough to take in at a glance.
MAX_MESSAGE_CHARS = 300
# A quoted value (a cell, a column name, a params value) longer than this is cut in the middle.
MAX_QUOTED_CHARS = 60
ELLIPSIS = "…"
# a quote that opens or closes a value, not an apostrophe inside a word ("the file's")
_QUOTED = re.compile(r"(?<!\w)('|\")(.*?)\1(?!\w)")


def _cut_middle(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its head and tail around an ellipsis."""
    if len(text) <= limit:
        return text
    tail = (limit - len(ELLIPSIS)) // 3
    return text[: limit - len(ELLIPSIS) - tail] + ELLIPSIS + text[len(text) - tail :]


def one_line(message: str) -> str:
    """The message as the user sees it: one line, quoted values cut, at most 300 characters.

    The tail is kept, since that is where a message says what to do.
    """
    line = " ".join(message.split())
    line = _QUOTED.sub(
        lambda quoted: quoted[1] + _cut_middle(quoted[2], MAX_QUOTED_CHARS - 2) + quoted[1], line
    )
    return _cut_middle(line, MAX_MESSAGE_CHARS)


class UserError(Exception):
    """A problem with the user's input that the user can fix; its message says how.

    The message is made one short line here, once, whatever built it (see one_line).
    """

    def __init__(self, message: str) -> None:
        super().__init__(one_line(str(message)))


def _fail(message: str, code: int) -> NoReturn:
    # `error: ` first, so that the line stands out above what DVC prints after a failed stage
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def run_main(main: Callable[[], object]) -> None:
    """Run main(); a UserError becomes one line on stderr (BERTPIPE_DEBUG=1 re-raises it)."""
    debug = os.environ.get("BERTPIPE_DEBUG") == "1"
    try:
        main()
    except UserError as exc:
        if debug:
            raise
        _fail(str(exc), EXIT_USER_ERROR)
    except KeyboardInterrupt:
        if debug:
            raise
        _fail("interrupted", 130)
