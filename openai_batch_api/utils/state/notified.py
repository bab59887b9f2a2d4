"""The record that a run's end was told (the config's notify and notify_url): a small table of its own.

Made the first time it is needed, so a run store of any age takes it, and a version that does not know
it leaves it alone. One row per attempt: a retry attempt added later ends, and is told, again.
"""

from __future__ import annotations

from .run_store import RunStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS notified (
    attempt INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    notified_at INTEGER NOT NULL
)
"""


def mark_notified(store: RunStore, *, attempt: int, status: str, now: int) -> bool:
    """Record that the end of the run's `attempt` is being told; False when it was told already.

    A store opened without the run lock records nothing and answers False: only the process
    holding the lock tells, so two waiting processes never both do.
    """
    if not store.writable:
        return False
    with store.step() as db:
        db.execute(SCHEMA)
        added = db.execute(
            "INSERT OR IGNORE INTO notified (attempt, status, notified_at) VALUES (?, ?, ?)", (attempt, status, now)
        ).rowcount
    return added == 1

