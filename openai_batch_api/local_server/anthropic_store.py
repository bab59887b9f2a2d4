"""Message batches on disk: rows in the backend's sqlite database, requests and results beside it.

Kept as the OpenAI side keeps its batches: a batch's requests are written (temp file + rename)
before the row naming them is committed; its result lines are appended to a results file whose
committed size lives in the row, with the answered requests' indexes in the same transaction. A
process killed at any instant leaves every request answered once or not yet; bytes past the
committed size are cut off before the next append.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..utils.files.atomic_files import write_atomically
from .ids import new_id
from .store import Store, remove_if_empty

FOLDER_NAME = "message_batches"
# The names of the files written here: a batch's requests and its results (msgbatch_ + 24 hex digits),
# and the temporary names atomic_files gives a file being written.
OWN_NAME = re.compile(r"\.?(?P<id>msgbatch_[0-9a-f]{24})\.(?P<kind>requests|results)\.jsonl(\.[0-9a-f]{16}\.part)?")
COUNTERS = ("succeeded", "errored", "canceled", "expired")

SCHEMA = """
CREATE TABLE IF NOT EXISTS message_batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    cancel_initiated_at REAL,
    ended_at REAL,
    total INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    errored INTEGER NOT NULL DEFAULT 0,
    canceled INTEGER NOT NULL DEFAULT 0,
    expired INTEGER NOT NULL DEFAULT 0,
    results_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS message_batch_answers (
    batch_id TEXT NOT NULL,
    request INTEGER NOT NULL,
    PRIMARY KEY (batch_id, request)
) WITHOUT ROWID;
"""


class MessageBatchStore:
    """Message batches in the same database as the backend's files and batches (`store`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Made with the first message batch: a state dir that never had one looks as it always did.
        self.folder = store.root / FOLDER_NAME
        with store.transaction() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        self._remove_orphans()

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self.store.transaction() as db:
            return db.execute(sql, tuple(params)).fetchall()

    def _remove_orphans(self) -> None:
        """Files of no stored batch (a create cut short, a delete cut short) and temporary names go."""
        if not self.folder.is_dir():
            return
        rows = self._query("SELECT id, status FROM message_batches")
        # An ended batch needs only its results (its requests file goes just after it ends).
        needed = {(row["id"], "results") for row in rows}
        needed |= {(row["id"], "requests") for row in rows if row["status"] != "ended"}
        for path in self.folder.iterdir():
            match = OWN_NAME.fullmatch(path.name)
            if match and (path.name.startswith(".") or (match["id"], match["kind"]) not in needed) and path.is_file():
                path.unlink(missing_ok=True)

    def requests_path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.requests.jsonl"

    def results_path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.results.jsonl"

    def create(self, lines: list[bytes], *, window_seconds: float) -> sqlite3.Row:
        """Store a batch of requests (one JSON line each) and its row, in progress from now."""
        batch_id = new_id("msgbatch_")
        self.folder.mkdir(exist_ok=True)
        write_atomically(self.requests_path(batch_id), (line + b"\n" for line in lines))
        now = time.time()
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO message_batches (id, status, created_at, expires_at, total) VALUES (?,?,?,?,?)",
                (batch_id, "in_progress", now, now + window_seconds, len(lines)),
            )
        return self.get(batch_id)  # type: ignore[return-value]

    def get(self, batch_id: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM message_batches WHERE id = ?", (batch_id,))
        return rows[0] if rows else None

    def page(self, *, after_id: str | None, before_id: str | None, limit: int) -> tuple[list[sqlite3.Row], bool]:
        """A page of batches, newest first, and whether more follow in the direction of paging.

        after_id: the older batches following that one; before_id: the newer ones just before it.
        """
        if before_id:
            rows = self._query(
                "SELECT * FROM message_batches WHERE seq > (SELECT seq FROM message_batches WHERE id = ?)"
                " ORDER BY seq ASC LIMIT ?",
                (before_id, limit + 1),
            )
            return list(reversed(rows[:limit])), len(rows) > limit
        if after_id:
            rows = self._query(
                "SELECT * FROM message_batches WHERE seq < (SELECT seq FROM message_batches WHERE id = ?)"
                " ORDER BY seq DESC LIMIT ?",
                (after_id, limit + 1),
            )
        else:
            rows = self._query("SELECT * FROM message_batches ORDER BY seq DESC LIMIT ?", (limit + 1,))
        return rows[:limit], len(rows) > limit

    def active_ids(self) -> list[str]:
        rows = self._query("SELECT id FROM message_batches WHERE status != 'ended' ORDER BY seq")
        return [row["id"] for row in rows]

    def start_cancel(self, batch_id: str) -> bool:
        """in_progress -> canceling; False when the batch was not in progress."""
        with self.store.transaction() as db:
            return (
                db.execute(
                    "UPDATE message_batches SET status = 'canceling', cancel_initiated_at = ?"
                    " WHERE id = ? AND status = 'in_progress'",
                    (time.time(), batch_id),
                ).rowcount
                > 0
            )

    def answered(self, batch_id: str) -> set[int]:
        rows = self._query("SELECT request FROM message_batch_answers WHERE batch_id = ?", (batch_id,))
        return {row[0] for row in rows}

    def _append(self, batch_id: str, committed: int, lines: list[bytes]) -> int:
        """Append lines after the committed prefix of the results file; returns its new size."""
        path = self.results_path(batch_id)
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

    def record(self, batch_id: str, results: list[tuple[int, str, bytes]]) -> None:
        """Save answered requests (index, result type, result line) and their counts, atomically.

        The unique (batch, request) key makes answering a request twice an error rather than a
        duplicate line in the results.
        """
        if not results:
            return
        batch = self.get(batch_id)
        size = self._append(batch_id, batch["results_bytes"], [line for _, _, line in results])
        counts = {kind: sum(1 for _, got, _ in results if got == kind) for kind in COUNTERS}
        with self.store.transaction() as db:
            db.executemany(
                "INSERT INTO message_batch_answers (batch_id, request) VALUES (?,?)",
                [(batch_id, index) for index, _, _ in results],
            )
            db.execute(
                "UPDATE message_batches SET succeeded = succeeded + ?, errored = errored + ?,"
                " canceled = canceled + ?, expired = expired + ?, results_bytes = ? WHERE id = ?",
                (*counts.values(), size, batch_id),
            )

    def end(self, batch_id: str, results: list[tuple[int, str, bytes]] = ()) -> bool:  # type: ignore[assignment]
        """Save the last results (the canceled or expired requests) and end the batch, atomically."""
        batch = self.get(batch_id)
        if batch is None or batch["status"] == "ended":
            return False
        size = self._append(batch_id, batch["results_bytes"], [line for _, _, line in results])
        counts = {kind: sum(1 for _, got, _ in results if got == kind) for kind in COUNTERS}
        with self.store.transaction() as db:
            db.execute(
                "UPDATE message_batches SET status = 'ended', ended_at = ?, succeeded = succeeded + ?,"
                " errored = errored + ?, canceled = canceled + ?, expired = expired + ?, results_bytes = ?"
                " WHERE id = ? AND status != 'ended'",
                (time.time(), *counts.values(), size, batch_id),
            )
            db.execute("DELETE FROM message_batch_answers WHERE batch_id = ?", (batch_id,))
        self.requests_path(batch_id).unlink(missing_ok=True)
        return True

    def delete(self, batch_id: str) -> None:
        """Forget an ended batch and its results."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM message_batches WHERE id = ? AND status = 'ended'", (batch_id,))
        self.results_path(batch_id).unlink(missing_ok=True)


def remove_message_batch_files(state_dir: Path) -> None:
    """Remove the files a closed MessageBatchStore wrote under `state_dir` (by their names), then its
    folder if that leaves it empty; anything else there stays."""
    folder = state_dir / FOLDER_NAME
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if OWN_NAME.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
    remove_if_empty(folder)
