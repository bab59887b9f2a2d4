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


def with_filename(exc: OSError, path: object) -> OSError:
    """`exc` naming `path` when it names no file: a failed write (a full disk) says which file it was."""
    if exc.filename is not None:
        return exc
    named = OSError(exc.errno, exc.strerror or str(exc), str(path))
    named.__cause__ = exc
    return named
