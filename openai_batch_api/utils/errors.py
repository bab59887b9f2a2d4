"""The package's one user-error class, and its exit codes."""

from __future__ import annotations

from enum import IntEnum

INTERRUPTED_MESSAGE = "interrupted; nothing is lost: run the command again to continue"


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130


class BatchToolError(Exception):
    """A predictable failure the user can fix: printed as one `error: ...` line, exit 1.

    The message names the file, key or row at fault and says how to fix it.
    """

    exit_code: int = ExitStatus.ERROR
