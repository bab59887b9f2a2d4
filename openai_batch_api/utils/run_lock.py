"""One command at a time on a run: an OS lock on `data_path/.lock`.

The operating system drops the lock when its process dies, however it dies, so a
lock left by a crashed or killed command never blocks anyone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import RunLockedError

LOCK_NAME = ".lock"

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

else:
    import fcntl

    def try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False


@contextmanager
def run_lock(data_path: Path, *, command: str) -> Iterator[None]:
    """Hold the run's lock for the block; refuse at once, naming the holder, if it is taken."""
    data_path.mkdir(parents=True, exist_ok=True)
    path = data_path / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not try_lock(fd):
            os.lseek(fd, 0, os.SEEK_SET)
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            raise RunLockedError(
                f"{data_path}: {holder} is working on this run; wait for it to finish "
                "(or stop it) and run the command again"
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{command} (pid {os.getpid()})".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
