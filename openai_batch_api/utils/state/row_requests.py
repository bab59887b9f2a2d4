"""Per-row records of a run beyond its shards: the pilot's answers, and the requests a changed table made stale.

Both live in the run store beside the shards, in tables made on first use (a run begun before them
has none, and reads as having neither). A pilot answer is saved in its own small transaction as it
arrives, so a pilot killed halfway keeps every answer it was given. A stale request is a row of a
shard (or of the pilot) whose body no longer matches the row's content in the table: its answer
answers nothing the table still asks, so collate leaves it out.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .ledger import ShardRecord
from .run_store import RunStore

# The source of the pilot's answers where a shard key names a batch's.
PILOT = "pilot"

SCHEMA = """
CREATE TABLE IF NOT EXISTS pilot_answers (
    custom_id TEXT PRIMARY KEY,
    request_sha256 TEXT NOT NULL,
    line BLOB NOT NULL,
    answered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stale_requests (
    source TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    PRIMARY KEY (source, custom_id)
);
"""


@dataclass(frozen=True)
class PilotAnswer:
    """One row answered synchronously: its request's hash and the result line, as a batch's output file holds it."""

    custom_id: str
    request_sha256: str
    line: bytes


def _has_tables(db: sqlite3.Connection) -> bool:
    found = db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('pilot_answers', 'stale_requests')")
    return found.fetchone()[0] == 2


def _ensure_tables(db: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def save_pilot_answer(store: RunStore, answer: PilotAnswer) -> None:
    """Keep one pilot answer, in its own transaction: a pilot killed later keeps it."""
    with store.step() as db:
        store.ledger.pilot_answered()
        if store.writable:
            _ensure_tables(db)
            db.execute(
                "INSERT OR REPLACE INTO pilot_answers (custom_id, request_sha256, line, answered_at) "
                "VALUES (?, ?, ?, ?)",
                (answer.custom_id, answer.request_sha256, answer.line, time.time()),
            )


def pilot_answers(store: RunStore) -> list[PilotAnswer]:
    """The pilot's answers, in the order they arrived."""
    with store.step() as db:
        if not _has_tables(db):
            return []
        rows = db.execute("SELECT custom_id, request_sha256, line FROM pilot_answers ORDER BY answered_at, custom_id")
        return [PilotAnswer(custom_id, digest, bytes(line)) for custom_id, digest, line in rows]


def answer_usage(answer: PilotAnswer) -> tuple[int, int]:
    """(input tokens, output tokens) the answer's usage reports."""
    body = orjson.loads(answer.line)["response"]["body"]
    usage = body.get("usage") or {}
    prompt = usage.get("prompt_tokens", usage.get("input_tokens")) or 0
    completion = usage.get("completion_tokens", usage.get("output_tokens")) or 0
    return int(prompt), int(completion)


def stale_requests(store: RunStore) -> dict[str, set[str]]:
    """source (a shard key, or PILOT) -> the custom_ids of its requests the table no longer asks."""
    with store.step() as db:
        if not _has_tables(db):
            return {}
        stale: dict[str, set[str]] = {}
        for source, custom_id in db.execute("SELECT source, custom_id FROM stale_requests"):
            stale.setdefault(source, set()).add(custom_id)
        return stale


def replace_stale_requests(db: sqlite3.Connection, stale: Mapping[str, set[str]]) -> None:
    """Within a store step: the stale requests become `stale` (the table's content decides them anew)."""
    _ensure_tables(db)
    db.execute("DELETE FROM stale_requests")
    db.executemany(
        "INSERT INTO stale_requests (source, custom_id) VALUES (?, ?)",
        ((source, custom_id) for source, ids in stale.items() for custom_id in ids),
    )


def record_continuation(
    store: RunStore,
    *,
    input_sha256: str,
    rows: int,
    attempt: int | None,
    shards: list[ShardRecord],
    stale: Mapping[str, set[str]],
) -> None:
    """The run takes up a changed table, in one step: its new hash and row count, the requests it made
    stale, and (`attempt`, when rows go out) the attempt holding its new and edited rows."""
    stale_pilot = stale.get(PILOT, set())
    with store.step() as db:
        store.take_up_table(
            input_sha256=input_sha256,
            rows=rows,
            attempt=attempt,
            shards=shards,
            pilot_rows=sum(1 for answer in pilot_answers(store) if answer.custom_id not in stale_pilot),
            stale_rows=sum(len(ids) for source, ids in stale.items() if source != PILOT),
        )
        if store.writable:
            replace_stale_requests(db, stale)


def answer_sources(store: RunStore) -> dict[str, Any]:
    """What collate needs to know beyond the shards: the stale requests, and the rows the pilot answered."""
    stale = stale_requests(store)
    stale_pilot = stale.get(PILOT, set())
    pilot_ids = {a.custom_id for a in pilot_answers(store) if a.custom_id not in stale_pilot}
    return {"stale": stale, "pilot_ids": pilot_ids}
