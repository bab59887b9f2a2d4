"""One command at a time on a run: an OS lock on `data_path/.lock` (see file_lock)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError, RunLockedError
from ..files.file_lock import LockHeld, take_lock
from ..layout import lock_path

# A read-only file system, or a folder this user may not write in (EPERM: an immutable one).
NOT_WRITABLE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


def not_writable_message(data_path: Path, exc: OSError) -> str:
    """Every command writes in data_path (the run's lock and state): one line naming the folder."""
    return (
        f"{data_path}: cannot write in data_path ({os.strerror(exc.errno or 0).lower()}); every command keeps the "
        "run's lock and state there: make the folder writable, then run the command again"
    )


@contextmanager
def run_lock(data_path: Path, *, command: str) -> Iterator[None]:
    """Hold the run's lock for the block; refuse at once, naming the holder, if it is taken."""
    try:
        data_path.mkdir(parents=True, exist_ok=True)
        fd = take_lock(lock_path(data_path), holder=f"{command} (pid {os.getpid()})")
    except LockHeld as held:
        raise RunLockedError(
            f"{data_path}: {held.holder} is working on this run; wait for it to finish "
            "(or stop it) and run the command again"
        ) from None
    except OSError as exc:
        if exc.errno not in NOT_WRITABLE_ERRNOS:
            raise
        raise ConfigError(not_writable_message(data_path, exc)) from None
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
