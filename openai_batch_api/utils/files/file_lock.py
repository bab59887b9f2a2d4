"""An OS lock on a file, recording who holds it: the run's lock and the local backend's.

The operating system drops the lock when its process dies, however it dies, so a lock left by a
crashed or killed process never blocks anyone. The holder writes who it is into the file, so a
process refused can say who is in the way.
"""

from __future__ import annotations

import os
from pathlib import Path

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


class LockHeld(Exception):
    """The lock is held by another process; `holder` is what it wrote, e.g. "create-batch (pid 123)"."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def take_lock(path: Path, *, holder: str) -> int:
    """Take the lock on `path` (created if missing) at once and write `holder` into it.

    Returns the descriptor: closing it releases the lock. Raises LockHeld when another process holds it.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not try_lock(fd):
            os.lseek(fd, 0, os.SEEK_SET)
            current = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockHeld(current)
        try:
            current_file = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            current_file = False
        if current_file:
            break
        # The holder removed the file as it let go (a deleted run): a lock on it guards nothing.
        os.close(fd)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, holder.encode())
    return fd
