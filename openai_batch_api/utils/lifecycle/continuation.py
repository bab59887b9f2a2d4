"""A run taking up a changed table: only the rows whose request it never sent go out, as a new attempt.

A row's request is known by its body's hash. A row of the table whose request (same custom_id, same
body) is in one of the run's shards, answered or in flight, or was answered by the pilot, is reused;
a row the run never had is new; a row the run had with another body is edited. New and edited rows
go out as the run's next attempt; the requests the table no longer asks (edited or removed rows) are
recorded as stale, and collate leaves their answers out.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..layout import TABLE_CHECK_PREFIX, tasks_dir
from ..requests import write_shards
from ..requests.request_hashes import shard_hashes
from ..state.row_requests import PILOT, pilot_answers, record_continuation
from ..state.run_store import RunStore
from .planning import CostReport, attempt_dir, plan_attempt, shard_records


@dataclass(frozen=True)
class TableChanges:
    """How the table's rows compare with the requests the run holds."""

    reused: int
    new: int
    edited: int
    removed: int
    to_send: set[str] = field(repr=False)  # the ids of the new and edited rows
    stale: dict[str, set[str]] = field(repr=False)  # source -> ids of requests the table no longer asks


@dataclass(frozen=True)
class Continued:
    """What continuing a run did: the table's changes, and the attempt that sends them (None: nothing to send)."""

    changes: TableChanges
    attempt: int | None
    rows: int  # rows in the table now
    shards: int
    cost: CostReport | None
    task_dir: Path | None


def current_requests(config: Config) -> dict[str, str]:
    """custom_id -> request body hash of every row of the table as it is now (every row is checked)."""
    config.data_path.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=TABLE_CHECK_PREFIX, dir=config.data_path))
    try:
        plan = write_shards(config, out_dir=tasks_dir(scratch))
        current: dict[str, str] = {}
        for shard in plan.shards:
            current.update(shard_hashes(shard.path))
        return current
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def held_requests(store: RunStore) -> dict[str, dict[str, str]]:
    """source (a shard key, or PILOT) -> custom_id -> body hash of every request the run holds."""
    held = {shard.key: shard_hashes(store.data_path / shard.path) for shard in store.ledger.shards}
    answers = pilot_answers(store)
    if answers:
        held[PILOT] = {answer.custom_id: answer.request_sha256 for answer in answers}
    return held


def compare(current: dict[str, str], held: dict[str, dict[str, str]]) -> TableChanges:
    known: dict[str, set[str]] = {}
    for requests in held.values():
        for custom_id, digest in requests.items():
            known.setdefault(custom_id, set()).add(digest)
    reused = new = edited = 0
    to_send: set[str] = set()
    for custom_id, digest in current.items():
        digests = known.get(custom_id)
        if digests is None:
            new += 1
            to_send.add(custom_id)
        elif digest in digests:
            reused += 1
        else:
            edited += 1
            to_send.add(custom_id)
    removed = sum(1 for custom_id in known if custom_id not in current)
    stale = {
        source: ids
        for source, requests in held.items()
        if (ids := {custom_id for custom_id, digest in requests.items() if current.get(custom_id) != digest})
    }
    return TableChanges(reused=reused, new=new, edited=edited, removed=removed, to_send=to_send, stale=stale)


def continue_run(config: Config, store: RunStore, *, input_hash: str) -> Continued:
    """Take up the table as it is now: send its new and edited rows as the next attempt, record the rest.

    Refused as a new run's plan is (max_cost, max_enqueued_tokens) for the rows that go out. The attempt's
    files are written before the run records them, in one step with the table's hash: a crash before that
    leaves the run as it was, and the next call starts over.
    """
    changes = compare(current_requests(config), held_requests(store))
    attempt = cost = task_dir = None
    records = []
    if changes.to_send:
        attempt = store.ledger.attempts + 1
        # A run whose only answers came from the pilot has no attempt yet: its first batch is attempt 1.
        if not store.ledger.shards:
            attempt = 1
        task_dir = attempt_dir(config.data_path, attempt)
        plan, cost = plan_attempt(config, out_dir=task_dir, only_ids=changes.to_send)
        records = shard_records(plan, attempt=attempt, data_path=config.data_path)
    rows = changes.reused + changes.new + changes.edited
    record_continuation(
        store, input_sha256=input_hash, rows=rows, attempt=attempt, shards=records, stale=changes.stale
    )
    return Continued(changes=changes, attempt=attempt, rows=rows, shards=len(records), cost=cost, task_dir=task_dir)
