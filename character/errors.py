"""The one exception type the launchers turn into a short message instead of a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class CharacterError(Exception):
    """A problem the user can fix (bad config, missing weights, gated persona, ...).

    The message is a single paragraph naming the file/key/value at fault and what was expected;
    launchers print it and exit non-zero, so users never have to read a stack trace to learn that
    they misspelled a persona name.
    """


def exit_on_user_error(action: Callable[[], T]) -> T:
    """Run a launcher's work; a ``CharacterError`` becomes ``error: ...`` on stderr and exit 2.

    Inside a submitit job (SLURM or submitit_local) the error is raised instead: submitit records
    an exception as the job's result, whereas a bare exit leaves no result and the launcher that
    waits for it would wait forever.
    """
    try:
        return action()
    except CharacterError as error:
        print(f"error: {error}", file=sys.stderr)
        if os.environ.get("SUBMITIT_EXECUTOR"):
            raise
        sys.exit(2)
