"""Files written atomically: a reader, or a crash at any instant, finds the old file or the whole new one.

The new content goes to a temporary file in the same folder (a rename is atomic only within one
file system), is flushed and fsynced (so a power cut after the rename cannot leave an empty or
half-written file under the final name), then renamed over the target. On any failure the
temporary file is removed. Temporary names are `.<name>.<16 hex digits>.part`: hidden, unique per
writer (two processes may write the same target at once), and recognisable as a leftover of `<name>`.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import with_filename

TEMP_SUFFIX = ".part"
# A temporary file of target `name` (in group "name"), as `temp_path_for` names it.
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{16}\.part")


def temp_path_for(path: Path) -> Path:
    """A new, unused temporary path beside `path`."""
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")


def move_into_place(tmp: Path, path: Path) -> None:
    """Put the finished file `tmp` on disk for good, then rename it to `path` (replacing any file there)."""
    fd = os.open(tmp, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: Path, *, mode: int = 0o666) -> Iterator[Path]:
    """A new temporary path beside `path` for the block to write; renamed to `path` if the block succeeds.

    For writers that take a file name (pandas' `to_parquet`, `to_pickle`). The file is created
    empty with `mode` (less the umask) before the block, so the writer keeps that mode.
    """
    tmp = temp_path_for(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode))
    try:
        yield tmp
        move_into_place(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_writer(path: Path, *, text: bool = False, mode: int = 0o666) -> Iterator[IO[Any]]:
    """An open file (binary, or UTF-8 text) whose content replaces `path` if the block succeeds.

    A write that fails naming no file (a full disk met as the file is flushed) names `path`.
    """
    with atomic_path(path, mode=mode) as tmp:
        try:
            with open(tmp, "w" if text else "wb", encoding="utf-8" if text else None) as fh:
                yield fh
        except OSError as exc:
            raise with_filename(exc, path) from None


def write_atomically(path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o666) -> int:
    """Replace `path` with `data` (bytes, or chunks of bytes); returns the number of bytes written."""
    size = 0
    with atomic_writer(path, mode=mode) as fh:
        for chunk in [data] if isinstance(data, bytes) else data:
            fh.write(chunk)
            size += len(chunk)
    return size
