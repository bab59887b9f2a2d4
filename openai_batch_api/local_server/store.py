"""Files, batches and per-line progress on disk: one sqlite database plus one blob per file.

Every change is one sqlite transaction, so a process killed at any instant leaves either the
state before a change or the state after it. Blobs are written (temp file + rename) before the row
that names them is committed; a blob without a row is an orphan removed at the next start.

A batch's result lines are appended to partial files whose committed sizes live in its row; bytes
past those sizes belong to a chunk that never committed and are cut off before the next append.
Finishing links the partial files to new file ids, so no result line is ever copied.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..utils.files.atomic_files import move_into_place, write_atomically
from .ids import new_id

ACTIVE_STATUSES = ("validating", "in_progress", "finalizing", "cancelling")
TERMINAL_STATUSES = ("failed", "completed", "expired", "cancelled")
# Files of these purposes expire 30 days after upload, as on the API.
EXPIRING_PURPOSES = ("batch", "batch_output")
FILE_LIFETIME_SECONDS = 30 * 24 * 3600
# The names of the files the store writes: blobs (and their temporary names while being written),
# and partial result files. The file and batch ids are new_id()'s 24 hex digits.
OWN_BLOB_NAME = re.compile(r"file-[0-9a-f]{24}")
OWN_TEMP_NAME = re.compile(r"\.file-[0-9a-f]{24}(\.tmp|\.[0-9a-f]{16}\.part)")
OWN_PARTIAL_NAME = re.compile(r"(?P<id>batch_[0-9a-f]{24})\.(output|error)\.jsonl")
DATABASE_NAME = "state.sqlite3"
DATABASE_NAMES = (DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm")
BLOB_DIR_NAME = "files"
PARTIAL_DIR_NAME = "partial"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status TEXT NOT NULL,
    model TEXT,
    metadata TEXT,
    errors TEXT,
    output_file_id TEXT,
    error_file_id TEXT,
    created_at INTEGER NOT NULL,
    deadline REAL NOT NULL,
    expires_at INTEGER,
    in_progress_at INTEGER,
    finalizing_at INTEGER,
    completed_at INTEGER,
    failed_at INTEGER,
    expired_at INTEGER,
    cancelling_at INTEGER,
    cancelled_at INTEGER,
    total INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    output_bytes INTEGER NOT NULL DEFAULT 0,
    error_bytes INTEGER NOT NULL DEFAULT 0
);
-- The worker's and the enqueued-token check's look at the active batches stays small among thousands.
CREATE INDEX IF NOT EXISTS batches_by_status ON batches (status);
CREATE TABLE IF NOT EXISTS results (
    batch_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    PRIMARY KEY (batch_id, line)
) WITHOUT ROWID;
"""


class Store:
    """Thread-safe access to the backend's state under `state_dir`."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir)
        self.blob_dir = self.root / BLOB_DIR_NAME
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.partial_dir = self.root / PARTIAL_DIR_NAME
        self.partial_dir.mkdir(exist_ok=True)
        # One connection shared under a lock: every statement is short, and one writer at a
        # time is what sqlite allows anyway.
        self._db = sqlite3.connect(
            self.root / DATABASE_NAME, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        try:
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL survives a killed process (not a power cut), at a fraction of FULL's cost.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(SCHEMA)
                self._add_column("batches", "output_lifetime INTEGER")
        except sqlite3.OperationalError as exc:
            self._db.close()
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                # Said as a full disk is said everywhere: by the file, one line (the commands' boundary).
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.root / DATABASE_NAME)) from None
            raise
        self._remove_orphan_blobs()

    def _add_column(self, table: str, column: str) -> None:
        """Add a column that state written by an older version lacks."""
        names = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
        if column.split()[0] not in names:
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- blobs ---------------------------------------------------------------------------------

    def blob_path(self, file_id: str) -> Path:
        return self.blob_dir / file_id

    def new_upload_path(self) -> Path:
        """A temporary path to write an upload's bytes to, then hand to `create_file` as its data.

        Named like a blob being written, so one a crash leaves behind is removed at the next start.
        """
        return self.blob_dir / f".{new_id('file-')}.tmp"

    def _write_blob(self, file_id: str, data: bytes | Iterable[bytes] | Path) -> int:
        path = self.blob_path(file_id)
        if isinstance(data, Path):  # an upload already on disk: moved in place, not copied
            move_into_place(data, path)
            return path.stat().st_size
        return write_atomically(path, data)

    def _remove_orphan_blobs(self) -> None:
        known = {row["id"] for row in self._query("SELECT id FROM files WHERE deleted = 0")}
        known |= {
            row["input_file_id"]
            for row in self._query(
                f"SELECT input_file_id FROM batches WHERE status IN ({_marks(ACTIVE_STATUSES)})",
                ACTIVE_STATUSES,
            )
        }
        # Only names the backend gives its own files are ever removed: anything else in these
        # folders (a user's file, a subfolder) is left alone.
        for path in self.blob_dir.iterdir():
            orphan = OWN_BLOB_NAME.fullmatch(path.name) and path.name not in known
            if (orphan or OWN_TEMP_NAME.fullmatch(path.name)) and path.is_file():
                path.unlink(missing_ok=True)
        active = set(self.active_batch_ids())
        for path in self.partial_dir.iterdir():
            match = OWN_PARTIAL_NAME.fullmatch(path.name)
            if match and match["id"] not in active and path.is_file():
                path.unlink(missing_ok=True)

    # -- files ---------------------------------------------------------------------------------

    def create_file(
        self, *, data: bytes | Iterable[bytes] | Path, filename: str, purpose: str, lifetime: int | None = None
    ) -> sqlite3.Row:
        """Store a file's bytes (or move them in from a path) and its row; returns the row.

        `lifetime`: seconds until it expires.
        """
        file_id = new_id("file-")
        size = self._write_blob(file_id, data)
        now = int(time.time())
        if lifetime is None and purpose in EXPIRING_PURPOSES:
            lifetime = FILE_LIFETIME_SECONDS
        expires_at = now + lifetime if lifetime is not None else None
        with self.transaction() as db:
            db.execute(
                "INSERT INTO files (id, bytes, created_at, expires_at, filename, purpose) VALUES (?,?,?,?,?,?)",
                (file_id, size, now, expires_at, filename, purpose),
            )
        return self.get_file(file_id)  # type: ignore[return-value]

    def get_file(self, file_id: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM files WHERE id = ? AND deleted = 0", (file_id,))
        return rows[0] if rows else None

    def list_files(
        self, *, purpose: str | None, after: str | None, limit: int, ascending: bool
    ) -> tuple[list[sqlite3.Row], bool]:
        """A page of files and whether more follow; `after` is the id ending the previous page."""
        where, params = ["deleted = 0"], []
        if purpose:
            where.append("purpose = ?")
            params.append(purpose)
        if after:
            # Deleted rows stay as cursors, so paging survives a deletion meanwhile.
            where.append(f"seq {'>' if ascending else '<'} (SELECT seq FROM files WHERE id = ?)")
            params.append(after)
        order = "ASC" if ascending else "DESC"
        rows = self._query(
            f"SELECT * FROM files WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?",
            [*params, limit + 1],
        )
        return rows[:limit], len(rows) > limit

    def delete_file(self, file_id: str) -> bool:
        """Mark a file deleted; its bytes stay while an unfinished batch still reads them."""
        with self.transaction() as db:
            changed = db.execute("UPDATE files SET deleted = 1 WHERE id = ? AND deleted = 0", (file_id,)).rowcount
            in_use = db.execute(
                f"SELECT 1 FROM batches WHERE input_file_id = ? AND status IN ({_marks(ACTIVE_STATUSES)})",
                (file_id, *ACTIVE_STATUSES),
            ).fetchone()
        if changed and not in_use:
            self.blob_path(file_id).unlink(missing_ok=True)
        return bool(changed)

    def expire_files(self, *, now: float) -> list[str]:
        """Delete the files whose expires_at has come, as the API does; returns their ids."""
        with self.transaction() as db:
            expired = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM files WHERE deleted = 0 AND expires_at IS NOT NULL AND expires_at <= ?", (now,)
                )
            ]
            db.executemany("UPDATE files SET deleted = 1 WHERE id = ?", [(file_id,) for file_id in expired])
            in_use = {
                row[0]
                for row in db.execute(
                    f"SELECT input_file_id FROM batches WHERE status IN ({_marks(ACTIVE_STATUSES)})", ACTIVE_STATUSES
                )
            }
        for file_id in expired:
            if file_id not in in_use:  # an unfinished batch's input stays until it finishes
                self.blob_path(file_id).unlink(missing_ok=True)
        return expired

    # -- batches -------------------------------------------------------------------------------

    def create_batch(
        self,
        *,
        endpoint: str,
        input_file_id: str,
        completion_window: str,
        metadata: str | None,
        window_seconds: float,
        output_lifetime: int | None = None,
    ) -> sqlite3.Row:
        batch_id = new_id("batch_")
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO batches (id, endpoint, input_file_id, completion_window, status, metadata,"
                " created_at, deadline, expires_at, output_lifetime) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    batch_id,
                    endpoint,
                    input_file_id,
                    completion_window,
                    "validating",
                    metadata,
                    int(now),
                    now + window_seconds,
                    int(now + window_seconds),
                    output_lifetime,
                ),
            )
        return self.get_batch(batch_id)  # type: ignore[return-value]

    def get_batch(self, batch_id: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM batches WHERE id = ?", (batch_id,))
        return rows[0] if rows else None

    def list_batches(self, *, after: str | None, limit: int) -> tuple[list[sqlite3.Row], bool]:
        """A page of batches, newest first, and whether more follow."""
        if after:
            rows = self._query(
                "SELECT * FROM batches WHERE seq < (SELECT seq FROM batches WHERE id = ?) ORDER BY seq DESC LIMIT ?",
                (after, limit + 1),
            )
        else:
            rows = self._query("SELECT * FROM batches ORDER BY seq DESC LIMIT ?", (limit + 1,))
        return rows[:limit], len(rows) > limit

    def active_batch_ids(self) -> list[str]:
        rows = self._query(
            f"SELECT id FROM batches WHERE status IN ({_marks(ACTIVE_STATUSES)}) ORDER BY seq",
            ACTIVE_STATUSES,
        )
        return [row["id"] for row in rows]

    def update_batch(self, batch_id: str, *, only_if: tuple[str, ...] = (), **fields: Any) -> bool:
        """Set fields of a batch; with `only_if`, only while its status is one of those. True if set."""
        with self.transaction() as db:
            return self._update_batch(db, batch_id, only_if=only_if, **fields)

    @staticmethod
    def _update_batch(db: sqlite3.Connection, batch_id: str, *, only_if: tuple[str, ...], **fields: Any) -> bool:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        sql = f"UPDATE batches SET {assignments} WHERE id = ?"
        params = [*fields.values(), batch_id]
        if only_if:
            sql += f" AND status IN ({_marks(only_if)})"
            params.extend(only_if)
        return db.execute(sql, params).rowcount > 0

    def admit_batch(
        self, batch_id: str, *, limit: int | None, model: str | None, prompt_tokens: int, **fields: Any
    ) -> bool:
        """Move a validated batch to in_progress unless its tokens overflow the enqueued-token limit.

        Checked and set in one transaction, so two batches validated at once cannot both slip in.
        """
        with self.transaction() as db:
            if limit is not None:
                row = db.execute(
                    "SELECT COALESCE(SUM(prompt_tokens), 0) FROM batches WHERE id != ? AND model IS ?"
                    " AND status IN ('in_progress', 'finalizing', 'cancelling')",
                    (batch_id, model),
                ).fetchone()
                if row[0] + prompt_tokens > limit:
                    return False
            self._update_batch(
                db, batch_id, only_if=("validating",), model=model, prompt_tokens=prompt_tokens, **fields
            )
            return True

    # -- per-line results ----------------------------------------------------------------------

    def partial_path(self, batch_id: str, kind: str) -> Path:
        """The growing output ("output") or error ("error") file of a batch not yet finished."""
        return self.partial_dir / f"{batch_id}.{kind}.jsonl"

    def _append(self, batch_id: str, kind: str, committed: int, lines: list[bytes]) -> int:
        """Append lines after the committed prefix of a partial file; returns its new size.

        Whatever lies beyond the committed size was written by a chunk whose transaction never
        committed (a crash, a failed commit): it is cut off first, and those lines get answered again.
        """
        path = self.partial_path(batch_id, kind)
        with open(path, "ab") as f:
            if f.tell() < committed:
                raise RuntimeError(f"{path} is shorter than its recorded {committed} bytes; was it edited by hand?")
            if f.tell() != committed:
                f.truncate(committed)
                f.seek(committed)
            for line in lines:
                f.write(line)
                f.write(b"\n")
            return f.tell()

    def record_results(
        self, batch_id: str, results: list[tuple[int, bool, bytes]], *, input_tokens: int, output_tokens: int
    ) -> None:
        """Save answered lines (line, ok, result line) and bump the batch's counters, atomically.

        Result lines are appended to the batch's partial files, and their new sizes committed with
        the counters; the unique (batch, line) key makes answering a line twice an error rather
        than a silent duplicate in the output file.
        """
        if not results:
            return
        batch = self.get_batch(batch_id)
        outputs = [data for _, ok, data in results if ok]
        errors = [data for _, ok, data in results if not ok]
        output_bytes = self._append(batch_id, "output", batch["output_bytes"], outputs)
        error_bytes = self._append(batch_id, "error", batch["error_bytes"], errors)
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO results (batch_id, line) VALUES (?,?)", [(batch_id, line) for line, _, _ in results]
            )
            db.execute(
                "UPDATE batches SET completed = completed + ?, failed = failed + ?, input_tokens = input_tokens + ?,"
                " output_tokens = output_tokens + ?, output_bytes = ?, error_bytes = ? WHERE id = ?",
                (len(outputs), len(errors), input_tokens, output_tokens, output_bytes, error_bytes, batch_id),
            )

    def answered_lines(self, batch_id: str) -> set[int]:
        return {row[0] for row in self._query("SELECT line FROM results WHERE batch_id = ?", (batch_id,))}

    def _publish(self, batch_id: str, kind: str) -> str:
        """Give a partial file its file id: a hard link, so the partial stays until the commit."""
        file_id = new_id("file-")
        try:
            os.link(self.partial_path(batch_id, kind), self.blob_path(file_id))
        except OSError:  # a file system without hard links
            shutil.copyfile(self.partial_path(batch_id, kind), self.blob_path(file_id))
        return file_id

    def finish_batch(
        self,
        batch_id: str,
        *,
        status: str,
        only_if: tuple[str, ...],
        extra_error_lines: list[bytes] = (),  # type: ignore[assignment]
        keep_empty: tuple[str, ...] = (),
        **fields: Any,
    ) -> bool:
        """Turn the saved results into the output and error files and end the batch, atomically.

        A kind ("output", "error") with no lines gets no file, unless it is in `keep_empty`.
        Returns False (and changes nothing) when the batch's status is no longer one of `only_if`.
        """
        batch = self.get_batch(batch_id)
        if batch is None or batch["status"] not in only_if:
            return False
        sizes = {
            "output": self._append(batch_id, "output", batch["output_bytes"], []),
            "error": self._append(batch_id, "error", batch["error_bytes"], list(extra_error_lines)),
        }
        kept = [(kind, size) for kind, size in sizes.items() if size or kind in keep_empty]
        new_files = [(self._publish(batch_id, kind), size, kind) for kind, size in kept]
        for file_id, _, kind in new_files:
            fields[f"{kind}_file_id"] = file_id
        try:
            input_deleted = self._commit_finish(batch, new_files, status, only_if, fields)
        except _Raced:
            for file_id, _, _ in new_files:
                self.blob_path(file_id).unlink(missing_ok=True)
            return False
        for kind in sizes:
            self.partial_path(batch_id, kind).unlink(missing_ok=True)
        if input_deleted:
            self.blob_path(batch["input_file_id"]).unlink(missing_ok=True)
        return True

    def _commit_finish(
        self,
        batch: sqlite3.Row,
        new_files: list[tuple[str, int, str]],
        status: str,
        only_if: tuple[str, ...],
        fields: dict[str, Any],
    ) -> bool:
        batch_id = batch["id"]
        now = int(time.time())
        lifetime = batch["output_lifetime"] or FILE_LIFETIME_SECONDS
        with self.transaction() as db:
            for file_id, size, kind in new_files:
                db.execute(
                    "INSERT INTO files (id, bytes, created_at, expires_at, filename, purpose) VALUES (?,?,?,?,?,?)",
                    (file_id, size, now, now + lifetime, f"{batch_id}_{kind}.jsonl", "batch_output"),
                )
            if not self._update_batch(db, batch_id, only_if=only_if, status=status, **fields):
                raise _Raced()
            db.execute("DELETE FROM results WHERE batch_id = ?", (batch_id,))
            input_deleted = db.execute(
                "SELECT 1 FROM files WHERE id = ? AND deleted = 1", (batch["input_file_id"],)
            ).fetchone()
        return input_deleted is not None


class _Raced(Exception):
    """The batch changed status between reading it and finishing it."""


def remove_store_files(state_dir: Path) -> None:
    """Remove what a closed Store wrote under `state_dir` (its database, blobs and partial files, by
    their names), then its two folders if that leaves them empty; anything else there stays."""
    own_names = {BLOB_DIR_NAME: (OWN_BLOB_NAME, OWN_TEMP_NAME), PARTIAL_DIR_NAME: (OWN_PARTIAL_NAME,)}
    for folder_name, own in own_names.items():
        folder = state_dir / folder_name
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if any(name.fullmatch(path.name) for name in own) and path.is_file():
                path.unlink(missing_ok=True)
        remove_if_empty(folder)
    # The database last: until it goes, a removal cut short is finished by the next one.
    for name in DATABASE_NAMES:
        (state_dir / name).unlink(missing_ok=True)


def remove_if_empty(folder: Path) -> bool:
    """Remove `folder` if nothing is in it; False when something is (a user's file stays, with its folder)."""
    try:
        folder.rmdir()
        return True
    except OSError:
        return False


def _marks(values: tuple[Any, ...]) -> str:
    return ", ".join("?" * len(values))
