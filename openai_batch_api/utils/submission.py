"""Submitting a run's shards exactly once: reconcile, refresh, and the enqueued-token queue."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from openai.types import Batch

from .api import BatchApi
from .config import Config
from .ledger import (
    CREATING,
    PENDING,
    SUBMITTED,
    UPLOADED,
    UPLOADING,
    Ledger,
    ShardRecord,
    save_ledger,
)

TOKEN_LIMIT_CODE = "token_limit_exceeded"
T = TypeVar("T")


class LedgerWriter:
    """Saves the ledger after each step; one writer at a time when steps run in threads."""

    def __init__(self, data_path: Path, ledger: Ledger, *, persist: bool = True) -> None:
        self.data_path = data_path
        self.ledger = ledger
        self.persist = persist  # False for a reader that does not hold the run lock
        self._lock = threading.Lock()

    def update(self, change: Callable[[], Any] | None = None) -> None:
        with self._lock:
            if change is not None:
                change()
            if self.persist:
                save_ledger(self.data_path, self.ledger)


def batch_snapshot(batch: Batch) -> dict[str, Any]:
    return batch.model_dump(mode="json")


def batch_error_codes(shard: ShardRecord) -> list[str]:
    errors = (shard.batch or {}).get("errors") or {}
    return [e.get("code") or "" for e in errors.get("data") or []]


def run_in_parallel(work: Callable[[T], None], items: Iterable[T], *, workers: int) -> None:
    """Run `work` on every item in a bounded pool; every item gets its turn, then the first failure is raised."""
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        futures = [pool.submit(work, item) for item in items]
    for future in futures:
        future.result()


def reconcile(api: BatchApi, writer: LedgerWriter) -> list[str]:
    """Settle the steps a crash may have left half-done; return what was found again.

    A shard caught `uploading` or `creating` may or may not have its file or batch on
    the API side: look for it by the name or tags it was given, and adopt it if found.
    """
    ledger = writer.ledger
    found: list[str] = []
    for shard in ledger.shards:
        if shard.state == UPLOADING:
            item = api.find_file(filename=ledger.upload_name(shard), size=shard.bytes)

            def settle_upload(shard: ShardRecord = shard, item: Any = item) -> None:
                shard.file_id, shard.state = (item.id, UPLOADED) if item else (None, PENDING)

            writer.update(settle_upload)
            if item:
                found.append(f"{shard.key}: file {item.id}")
        if shard.state == CREATING:
            batch = api.find_batch(
                metadata=ledger.batch_metadata(shard),
                since=ledger.created_at,
                input_file_id=shard.file_id,
                exclude=shard.requeued_batch_ids,
            )

            def settle_batch(shard: ShardRecord = shard, batch: Batch | None = batch) -> None:
                if batch:
                    shard.batch_id, shard.batch, shard.state = batch.id, batch_snapshot(batch), SUBMITTED
                else:
                    shard.state = UPLOADED

            writer.update(settle_batch)
            if batch:
                found.append(f"{shard.key}: batch {batch.id}")
    return found


def refresh(api: BatchApi, writer: LedgerWriter, *, workers: int) -> list[ShardRecord]:
    """Fetch every unfinished batch; send shards failed for the token limit back to the queue.

    Finished batches never change, so their cached snapshot is not fetched again.
    Returns the shards that were requeued.
    """
    unfinished = [s for s in writer.ledger.shards if s.state == SUBMITTED and not s.finished]
    requeued: list[ShardRecord] = []

    def fetch(shard: ShardRecord) -> None:
        batch = api.retrieve_batch(shard.batch_id)

        def apply() -> None:
            shard.batch = batch_snapshot(batch)
            if batch.status == "failed" and TOKEN_LIMIT_CODE in batch_error_codes(shard):
                # Not a failure of the rows: the organisation's queue was full. Try again later.
                shard.requeued_batch_ids.append(batch.id)
                shard.batch_id, shard.batch, shard.state = None, None, UPLOADED
                shard.submission += 1
                requeued.append(shard)

        writer.update(apply)

    run_in_parallel(fetch, unfinished, workers=workers)
    return requeued


def enqueued_tokens(ledger: Ledger) -> int:
    """Prompt tokens of the batches the API is still holding for this run."""
    return sum(s.prompt_tokens for s in ledger.shards if s.state in (CREATING, SUBMITTED) and not s.finished)


def waiting_shards(ledger: Ledger) -> list[ShardRecord]:
    return [s for s in ledger.shards if s.state in (PENDING, UPLOADED)]


def shards_that_fit(ledger: Ledger, max_enqueued_tokens: int | None) -> list[ShardRecord]:
    """The waiting shards to submit now: in order, while their tokens fit under the limit."""
    waiting = waiting_shards(ledger)
    if max_enqueued_tokens is None:
        return waiting
    room = max_enqueued_tokens - enqueued_tokens(ledger)
    chosen = []
    for shard in waiting:
        if shard.prompt_tokens > room:
            break  # keep the order: later shards wait for earlier ones
        chosen.append(shard)
        room -= shard.prompt_tokens
    return chosen


def submit_waiting(api: BatchApi, writer: LedgerWriter, config: Config) -> list[ShardRecord]:
    """Upload and create batches for the waiting shards that fit; return those submitted.

    The intent of each call is saved before it is made, so `reconcile` can settle it
    after a crash; an upload already made is reused, never made twice.
    """
    ledger = writer.ledger
    chosen = shards_that_fit(ledger, config.max_enqueued_tokens)

    def submit(shard: ShardRecord) -> None:
        if shard.state == PENDING:
            writer.update(lambda: setattr(shard, "state", UPLOADING))
            item = api.upload_file(config.data_path / shard.path, filename=ledger.upload_name(shard))
            writer.update(lambda: (setattr(shard, "file_id", item.id), setattr(shard, "state", UPLOADED)))
        writer.update(lambda: setattr(shard, "state", CREATING))
        batch = api.create_batch(
            input_file_id=shard.file_id,
            endpoint=config.endpoint,
            metadata=ledger.batch_metadata(shard),
            since=ledger.created_at,
            exclude=shard.requeued_batch_ids,
        )

        def record() -> None:
            shard.batch_id, shard.batch, shard.state = batch.id, batch_snapshot(batch), SUBMITTED

        writer.update(record)

    run_in_parallel(submit, chosen, workers=config.concurrency)
    return chosen


@dataclass(frozen=True)
class RunProgress:
    """Counts over a run's shards and rows, from the ledger's batch snapshots."""

    shards: int
    finished_shards: int
    queued_shards: int
    rows: int
    rows_done: int
    rows_pending: int

    @property
    def rows_failed(self) -> int:
        return max(self.rows - self.rows_done - self.rows_pending, 0)

    @property
    def finished(self) -> bool:
        return self.finished_shards == self.shards


def run_progress(ledger: Ledger) -> RunProgress:
    """Where the run stands; a row succeeds at most once, retries hold only rows that failed."""
    done = pending = 0
    for shard in ledger.shards:
        counts = (shard.batch or {}).get("request_counts") or {}
        done += counts.get("completed") or 0
        if not shard.finished:
            pending += max(shard.rows - (counts.get("completed") or 0) - (counts.get("failed") or 0), 0)
    return RunProgress(
        shards=len(ledger.shards),
        finished_shards=sum(s.finished for s in ledger.shards),
        queued_shards=sum(s.status == "queued" for s in ledger.shards),
        rows=ledger.rows,
        rows_done=done,
        rows_pending=pending,
    )
