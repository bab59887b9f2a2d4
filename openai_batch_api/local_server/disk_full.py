"""A full disk under the local backend's state: told once, by the file, and not worth retrying.

The backend writes every upload, result and its database into its state folder; when that disk
is full, every later request fails the same way. Its answer says so (507 Insufficient Storage,
which the commands do not retry) and names the file, instead of a traceback per request.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from .api_error import ApiError

# ENOSPC: the disk is full; EDQUOT: the user's quota is; EFBIG: a file passed the size limit (RLIMIT_FSIZE).
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
INSUFFICIENT_STORAGE = 507


def disk_full_file(exc: BaseException, *, database: Path) -> str | None:
    """The file a write failed on because the disk is full, or None for any other failure."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return str(exc.filename) if exc.filename else str(database.parent)
    if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
        return str(database)
    return None


def disk_full_error(where: str) -> ApiError:
    return ApiError(
        INSUFFICIENT_STORAGE,
        f"{where}: no space left on the device for the local backend's state; free some space there and run "
        "the command again",
        type="server_error",
        code="insufficient_storage",
    )
