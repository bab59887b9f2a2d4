"""One command at a time on a run: an OS lock on `data_path/.lock` (see file_lock)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import RunLockedError
from ..files.file_lock import LockHeld, take_lock

LOCK_NAME = ".lock"


@contextmanager
def run_lock(data_path: Path, *, command: str) -> Iterator[None]:
    """Hold the run's lock for the block; refuse at once, naming the holder, if it is taken."""
    data_path.mkdir(parents=True, exist_ok=True)
    try:
        fd = take_lock(data_path / LOCK_NAME, holder=f"{command} (pid {os.getpid()})")
    except LockHeld as held:
        raise RunLockedError(
            f"{data_path}: {held.holder} is working on this run; wait for it to finish "
            "(or stop it) and run the command again"
        ) from None
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
