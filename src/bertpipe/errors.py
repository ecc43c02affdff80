"""User-facing errors: one clear line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_USER_ERROR = 1


class UserError(Exception):
    """A problem with the user's input that the user can fix; its message says how."""


def _fail(message: str, code: int) -> NoReturn:
    # One line, whatever the message holds, so that CI logs and `2>err` stay readable.
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.stderr)
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
