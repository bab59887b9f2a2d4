"""The run store: one sqlite database in data_path (`run.sqlite3`) holding the state of a run.

The run, its attempts, shards, batch snapshots, the intents of uploads and creations, the
files the run wrote and the remote files it deleted are rows. Every step is one small
transaction, so a step costs the same at the ten-thousandth shard as at the first, and a crash
at any line leaves each step either "not yet" or "done"; `submission.reconcile` settles the
intents left open. An intent is on disk (the WAL fsynced) before the call it announces, even
through a power cut; the threads submitting at once share those fsyncs (a group commit), which
is what keeps a thousand shards from paying a thousand serial fsyncs. A `ledger.json` of an
earlier version is imported once and kept beside as a backup.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from ..config import Config
from ..errors import BatchToolError
from ..layout import STORE_NAME, imported_ledger_path, legacy_ledger_path
from ..layout import store_path as store_path
from .batch_state import BatchState
from .ledger import Ledger, ShardRecord, read_legacy_ledger

SCHEMA_VERSION = 1
# Rows per fetch when walking the recorded files: memory stays flat in their number.
FETCH_ROWS = 1000

SCHEMA = """
CREATE TABLE run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    run_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    input_sha256 TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    token_method TEXT NOT NULL,
    collated_at INTEGER,
    cancelled_at INTEGER,
    imported_sha256 TEXT
);
CREATE TABLE attempts (
    attempt INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE shards (
    key TEXT PRIMARY KEY,
    attempt INTEGER NOT NULL REFERENCES attempts (attempt),
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    state TEXT NOT NULL,
    submission INTEGER NOT NULL,
    file_id TEXT,
    batch_id TEXT,
    requeued_batch_ids TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE batches (
    batch_id TEXT PRIMARY KEY,
    shard_key TEXT NOT NULL REFERENCES shards (key),
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    snapshot TEXT NOT NULL
);
CREATE TABLE intents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    shard_key TEXT NOT NULL REFERENCES shards (key),
    kind TEXT NOT NULL CHECK (kind IN ('upload', 'create')),
    submission INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    result_id TEXT
);
CREATE INDEX intents_open ON intents (shard_key, kind) WHERE finished_at IS NULL;
CREATE TABLE local_files (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL
);
CREATE TABLE deleted_remote_files (
    file_id TEXT PRIMARY KEY,
    deleted_at INTEGER NOT NULL
);
"""

# The columns of the run and shards tables and the record fields they hold: the one place they are
# listed besides SCHEMA. (column, field); the run's first ones never change after it is made (the table's
# hash and row count change when the run takes up a changed table).
RUN_FIELDS = ("run_id", "created_at", "request_sha256", "token_method")
RUN_CHANGING_FIELDS = ("input_sha256", "rows", "collated_at", "cancelled_at")
SHARD_FIELDS = (
    ("key", "key"),
    ("attempt", "attempt"),
    ("idx", "index"),
    ("path", "path"),
    ("rows", "rows"),
    ("bytes", "bytes"),
    ("sha256", "sha256"),
    ("prompt_tokens", "prompt_tokens"),
    ("state", "state"),
    ("submission", "submission"),
    ("file_id", "file_id"),
    ("batch_id", "batch_id"),
    ("requeued_batch_ids", "requeued_batch_ids"),
)
# What a shard's row may change to after it is made.
SHARD_CHANGING = ("state", "submission", "file_id", "batch_id", "requeued_batch_ids")
SHARD_COLUMNS = ", ".join(column for column, _ in SHARD_FIELDS)
# Fields stored as JSON text.
JSON_FIELDS = frozenset({"requeued_batch_ids"})
SAVE_SHARD = (
    f"INSERT INTO shards ({SHARD_COLUMNS}) VALUES ({', '.join('?' for _ in SHARD_FIELDS)}) "
    f"ON CONFLICT (key) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in SHARD_CHANGING)}"
)


def damaged(path: Path, reason: object) -> BatchToolError:
    return BatchToolError(
        f"{path}: the run database is damaged ({reason}); restore it from a backup, or move it away "
        "to start a new run (its batches stay on the API side)"
    )


def disk_full(path: Path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


class RunStore:
    """One run's state: `ledger` is the run in memory, each method saves one step of it.

    A store opened without the run lock (`writable=False`) keeps what it learns in memory only.
    Methods may be called from several threads; each step is applied and saved under one lock.
    """

    def __init__(self, path: Path, db: sqlite3.Connection, ledger: Ledger, *, writable: bool) -> None:
        self.path = path
        self.data_path = path.parent
        self.ledger = ledger
        self.writable = writable
        self._db = db
        self._lock = threading.RLock()
        self._depth = 0  # steps under way in the thread holding the lock: a step within one joins it
        # Group commit: steps committed so far, and how many of them an fsync of the WAL has covered.
        self._committed = 0
        self._synced = 0
        self._sync_lock = threading.Lock()

    # Opening

    @classmethod
    def create(cls, data_path: Path, ledger: Ledger, *, imported_sha256: str | None = None) -> RunStore:
        """A new store holding `ledger`, written whole to a temporary file and renamed into place."""
        path = store_path(data_path)
        tmp = path.with_name(f".{path.name}.new")
        for leftover in (tmp, *sidecars(tmp)):
            leftover.unlink(missing_ok=True)
        try:
            db = connect(tmp)
            try:
                db.executescript(SCHEMA)
                with transaction(db, tmp):
                    columns = (*RUN_FIELDS, *RUN_CHANGING_FIELDS)
                    db.execute(
                        f"INSERT INTO run (id, {', '.join(columns)}, imported_sha256)"
                        f" VALUES (1, {', '.join('?' for _ in columns)}, ?)",
                        (*(getattr(ledger, c) for c in columns), imported_sha256),
                    )
                    db.executemany(
                        "INSERT INTO attempts (attempt, created_at) VALUES (?, ?)",
                        [(a, ledger.created_at) for a in range(1, ledger.attempts + 1)],
                    )
                    for shard in ledger.shards:
                        write_shard(db, shard)
                    db.executemany(
                        "INSERT OR IGNORE INTO local_files (path, kind) VALUES (?, 'shard')",
                        [(s.path,) for s in ledger.shards],
                    )
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
            os.replace(tmp, path)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise disk_full(path) from None
            raise
        finally:
            for leftover in (tmp, *sidecars(tmp)):
                leftover.unlink(missing_ok=True)
        return cls(path, open_existing(path, writable=True), ledger, writable=True)

    @classmethod
    def open(cls, data_path: Path, *, writable: bool) -> RunStore | None:
        """The run in data_path, or None when there is none yet.

        A writable open (under the run lock) imports a `ledger.json` of an earlier version once,
        and renames it to `ledger.json.imported`; a read-only open reads it where it is.
        """
        path = store_path(data_path)
        legacy = legacy_ledger_path(data_path)
        if not path.exists():
            if not legacy.exists():
                return None
            ledger = read_legacy_ledger(legacy)
            if not writable:
                return cls(path, sqlite3.connect(":memory:", check_same_thread=False), ledger, writable=False)
            store = cls.create(data_path, ledger, imported_sha256=file_digest(legacy))
            os.replace(legacy, imported_ledger_path(data_path))
            return store
        db = open_existing(path, writable=writable)
        try:
            ledger, imported_sha256 = load(db, path)
        except BaseException:
            db.close()
            raise
        if legacy.exists():
            if imported_sha256 is None or imported_sha256 != file_digest(legacy):
                db.close()
                raise BatchToolError(
                    f"{legacy}: a run ledger beside the run database {path.name} that holds another run; "
                    f"move {legacy.name} away (run {ledger.run_id} in {path.name} goes on)"
                )
            if writable:  # imported before a crash left no time to rename it
                os.replace(legacy, imported_ledger_path(data_path))
        return cls(path, db, ledger, writable=writable)

    def close(self) -> None:
        self._db.close()  # the last connection checkpoints the WAL into the database, synced

    def _commit_durably(self, committed: int) -> None:
        """Return once the WAL holding commit number `committed` is on disk, sharing fsyncs between threads."""
        with self._sync_lock:
            if self._synced >= committed:
                return  # an fsync started after our commit already covered it
            with self._lock:
                target = self._committed
            wal = self.path.with_name(self.path.name + "-wal")
            fd = os.open(wal, os.O_RDWR)
            try:
                # fdatasync: the WAL's data is what must reach the disk; its timestamps need not.
                (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)
            except OSError as exc:
                raise disk_full(self.path) if exc.errno == errno.ENOSPC else exc from None
            finally:
                os.close(fd)
            self._synced = target

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Steps

    @contextmanager
    def step(self) -> Iterator[sqlite3.Connection]:
        """Apply a change in memory and save it in one transaction (nothing saved when read-only)."""
        with self._lock:
            if not self.writable or self._depth:  # read only, or part of a step under way
                yield self._db
                return
            self._depth += 1
            try:
                with transaction(self._db, self.path):
                    yield self._db
            finally:
                self._depth -= 1
            self._committed += 1

    def save_shard(self, shard: ShardRecord) -> None:
        self.save_shards([shard])

    def save_shards(self, shards: list[ShardRecord]) -> None:
        """Save shards as they now stand, in one step (as a poll that learned about many batches does)."""
        if not shards:
            return
        with self.step() as db:
            if self.writable:
                for shard in shards:
                    write_shard(db, shard)

    def save_run(self) -> None:
        """Save what changes of the run itself: its table's hash and rows, when it was collated or cancelled."""
        ledger = self.ledger
        with self.step() as db:
            if self.writable:
                db.execute(
                    f"UPDATE run SET {', '.join(f'{c} = ?' for c in RUN_CHANGING_FIELDS)} WHERE id = 1",
                    tuple(getattr(ledger, c) for c in RUN_CHANGING_FIELDS),
                )

    def cancel(self) -> list[ShardRecord]:
        """Cancel the run: recorded first, with its queued shards cancelled, so a crash after it submits
        nothing more. Returns the shards it cancelled."""
        with self.step():
            queued = self.ledger.cancel()
            self.save_run()
            self.save_shards(queued)
        return queued

    def cancel_queued(self) -> list[ShardRecord]:
        """Cancel the queued shards of a cancelled run (settled after the cancel), returning them."""
        with self.step():
            queued = self.ledger.cancel_queued()
            self.save_shards(queued)
        return queued

    def mark_collated(self) -> None:
        self.ledger.mark_collated()
        self.save_run()

    def begin(self, shards: list[ShardRecord], *, kind: str) -> None:
        """Record the intent to upload or create (`kind`) for `shards` before the calls.

        Returns once the intent is on disk, through a power cut too.
        """
        if not shards:
            return
        with self.step() as db:
            for shard in shards:
                shard.begin(kind)
            if self.writable:
                for shard in shards:
                    write_shard(db, shard)
                db.executemany(
                    "INSERT INTO intents (shard_key, kind, submission, started_at) VALUES (?, ?, ?, ?)",
                    [(shard.key, kind, shard.submission, time.time()) for shard in shards],
                )
            committed = self._committed + 1
        if self.writable:
            self._commit_durably(committed)

    def settle(self, shard: ShardRecord, *, kind: str, result_id: str | None) -> None:
        """Record what became of the open intent of `shard`, with the shard as it now stands."""
        with self.step() as db:
            if self.writable:
                write_shard(db, shard)
                db.execute(
                    "UPDATE intents SET finished_at = ?, result_id = ? "
                    "WHERE shard_key = ? AND kind = ? AND finished_at IS NULL",
                    (time.time(), result_id, shard.key, kind),
                )

    def settle_upload(self, shard: ShardRecord, file_id: str | None) -> None:
        """The upload's answer (None: it was never made), applied to the shard and saved with its intent."""
        shard.uploaded(file_id)
        self.settle(shard, kind="upload", result_id=file_id)

    def settle_create(self, shard: ShardRecord, batch: BatchState | None) -> None:
        """The creation's answer (None: no batch was made), applied to the shard and saved with its intent."""
        shard.submitted(batch)
        self.settle(shard, kind="create", result_id=batch.id if batch is not None else None)

    def add_attempt(self, attempt: int, shards: list[ShardRecord]) -> None:
        """A retry attempt: its shards join the run, which is collated and running again."""
        with self.step() as db:
            self.ledger.add_attempt(attempt, shards)
            if self.writable:
                db.execute("INSERT INTO attempts (attempt, created_at) VALUES (?, ?)", (attempt, int(time.time())))
                for shard in shards:
                    write_shard(db, shard)
                db.executemany(
                    "INSERT OR IGNORE INTO local_files (path, kind) VALUES (?, 'shard')", [(s.path,) for s in shards]
                )
                db.execute("UPDATE run SET collated_at = NULL, cancelled_at = NULL WHERE id = 1")

    def take_up_table(
        self,
        *,
        input_sha256: str,
        rows: int,
        attempt: int | None,
        shards: list[ShardRecord],
        pilot_rows: int,
        stale_rows: int,
    ) -> None:
        """The run takes up a changed table (`Ledger.take_up_table`), saved in one step with what the caller
        saves inside the same `step()` (the requests the table made stale)."""
        with self.step() as db:
            self.ledger.take_up_table(
                input_sha256=input_sha256,
                rows=rows,
                attempt=attempt,
                shards=shards,
                pilot_rows=pilot_rows,
                stale_rows=stale_rows,
            )
            self.save_run()
            if self.writable and attempt is not None:
                db.execute("INSERT INTO attempts (attempt, created_at) VALUES (?, ?)", (attempt, int(time.time())))
                for shard in shards:
                    write_shard(db, shard)
                db.executemany(
                    "INSERT OR IGNORE INTO local_files (path, kind) VALUES (?, 'shard')", [(s.path,) for s in shards]
                )

    # Files of the run

    def record_local_files(self, paths: Iterable[Path], *, kind: str) -> None:
        """Record files the run writes into data_path, before writing them: delete-tasks removes only these."""
        rows = [(relative(path, self.data_path), kind) for path in paths]
        with self.step() as db:
            if self.writable and rows:
                db.executemany("INSERT OR IGNORE INTO local_files (path, kind) VALUES (?, ?)", rows)

    def local_files(self) -> Iterator[Path]:
        """Every file the run recorded as its own, fetched a page at a time."""
        cursor = self._db.execute("SELECT path FROM local_files ORDER BY path")
        while rows := cursor.fetchmany(FETCH_ROWS):
            for (path,) in rows:
                yield self.data_path / path

    def is_recorded(self, path: Path) -> bool:
        """Whether the run recorded `path` as a file of its own."""
        row = self._db.execute("SELECT 1 FROM local_files WHERE path = ?", (relative(path, self.data_path),))
        return row.fetchone() is not None

    def record_remote_deleted(self, file_id: str) -> None:
        with self.step() as db:
            if self.writable:
                db.execute(
                    "INSERT OR IGNORE INTO deleted_remote_files (file_id, deleted_at) VALUES (?, ?)",
                    (file_id, int(time.time())),
                )

    def remote_deleted(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT file_id FROM deleted_remote_files")}


def sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def relative(path: Path, data_path: Path) -> str:
    return Path(path).relative_to(data_path).as_posix()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def connect(path: Path, *, uri: str | None = None, read_only: bool = False) -> sqlite3.Connection:
    # Transactions are begun and ended explicitly (`transaction`), so autocommit mode.
    db = sqlite3.connect(uri or str(path), uri=uri is not None, isolation_level=None, check_same_thread=False)
    try:
        if not read_only:  # a store is made in WAL mode; a reader takes it as it is
            db.execute("PRAGMA journal_mode=WAL")
        # Commits reach the OS at once (a killed process loses nothing); `RunStore.begin` fsyncs the WAL
        # so an intent also survives a power cut before its call is made.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        db.close()
        raise
    return db


def open_existing(path: Path, *, writable: bool) -> sqlite3.Connection:
    """A connection to an existing store, checked: one clear error when it is damaged or too new."""
    try:
        db = connect(path, uri=f"{path.resolve().as_uri()}?mode={'rw' if writable else 'ro'}", read_only=not writable)
    except sqlite3.DatabaseError as exc:
        raise damaged(path, exc) from None
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BatchToolError(
                f"{path}: written by a newer version of openai_batch_api (run database schema {version}, this "
                f"version reads {SCHEMA_VERSION}); upgrade openai_batch_api to continue this run"
            )
        if version < 1:
            raise damaged(path, "it holds no run")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise damaged(path, check.splitlines()[0])
    except sqlite3.DatabaseError as exc:
        db.close()
        raise damaged(path, exc) from None
    except BaseException:
        db.close()
        raise
    return db


def load(db: sqlite3.Connection, path: Path) -> tuple[Ledger, str | None]:
    """The run in memory, and the hash of the ledger.json it was imported from (if it was)."""
    try:
        columns = (*RUN_FIELDS, *RUN_CHANGING_FIELDS)
        run = db.execute(f"SELECT {', '.join(columns)}, imported_sha256 FROM run WHERE id = 1").fetchone()
        if run is None:
            raise damaged(path, "it holds no run")
        attempts = db.execute("SELECT COALESCE(MAX(attempt), 1) FROM attempts").fetchone()[0]
        snapshots = dict(db.execute("SELECT batch_id, snapshot FROM batches"))
        shards = []
        for row in db.execute(f"SELECT {SHARD_COLUMNS} FROM shards ORDER BY attempt, idx"):
            values = {
                name: orjson.loads(value) if name in JSON_FIELDS else value
                for (_, name), value in zip(SHARD_FIELDS, row, strict=True)
            }
            snapshot = snapshots.get(values["batch_id"]) if values["batch_id"] else None
            shards.append(ShardRecord(**values, batch=BatchState.from_json(snapshot) if snapshot else None))
    except (sqlite3.DatabaseError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise damaged(path, exc) from None
    values = dict(zip(columns, run[:-1], strict=True))
    ledger = Ledger(shards=shards, attempts=attempts, **values)
    ledger.pilot_rows, ledger.stale_rows = row_record_counts(db)
    return ledger, run[-1]


def row_record_counts(db: sqlite3.Connection) -> tuple[int, int]:
    """(rows the pilot answered that the table still asks, shards' requests it no longer asks), from the
    per-row tables of row_requests.py when the run has them."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"pilot_answers", "stale_requests"} <= tables:
        return 0, 0
    pilot = db.execute(
        "SELECT COUNT(*) FROM pilot_answers WHERE custom_id NOT IN "
        "(SELECT custom_id FROM stale_requests WHERE source = 'pilot')"
    ).fetchone()[0]
    stale = db.execute("SELECT COUNT(*) FROM stale_requests WHERE source != 'pilot'").fetchone()[0]
    return pilot, stale


def write_shard(db: sqlite3.Connection, shard: ShardRecord) -> None:
    """Save one shard and, when it has one, the snapshot of its batch."""
    db.execute(
        SAVE_SHARD,
        tuple(
            orjson.dumps(getattr(shard, name)).decode() if name in JSON_FIELDS else getattr(shard, name)
            for _, name in SHARD_FIELDS
        ),
    )
    if shard.batch is not None:
        db.execute(
            "INSERT INTO batches (batch_id, shard_key, status, created_at, snapshot) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (batch_id) DO UPDATE SET status = excluded.status, snapshot = excluded.snapshot",
            (
                shard.batch.id,
                shard.key,
                shard.batch.status,
                shard.batch.created_at,
                shard.batch.to_json(),
            ),
        )


@contextmanager
def transaction(db: sqlite3.Connection, path: Path) -> Iterator[None]:
    """One step: all of it is saved or none; a full disk is an OSError naming the database."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise disk_full(path) from None
        raise


def load_run(data_path: Path) -> Ledger | None:
    """The run in data_path as it stands now, read only; None when there is none."""
    store = RunStore.open(data_path, writable=False)
    if store is None:
        return None
    with store:
        return store.ledger


def has_run(data_path: Path) -> bool:
    """Whether data_path holds a run (its database, or the ledger.json of an earlier version)."""
    return store_path(data_path).exists() or legacy_ledger_path(data_path).exists()


def require_run(config: Config, *, config_arg: str) -> None:
    """An error saying how to start the run when data_path holds none (nothing is read or made)."""
    if not has_run(config.data_path):
        from ..next_steps import next_step

        raise BatchToolError(
            f"{config.data_path}: no run here yet (no {STORE_NAME}); start one with "
            f"{next_step(config, config_arg, 'create-batch')}"
        )


def open_run(config: Config, *, config_arg: str, writable: bool) -> RunStore:
    """The run's store, or an error saying how to start the run."""
    require_run(config, config_arg=config_arg)
    store = RunStore.open(config.data_path, writable=writable)
    if store is None:  # moved away meanwhile
        require_run(config, config_arg=config_arg)
        raise AssertionError("unreachable")
    return store
