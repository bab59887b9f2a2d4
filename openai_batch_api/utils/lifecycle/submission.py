"""Submitting a run's shards exactly once: reconcile, refresh, and the enqueued-token queue."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

import openai
from openai.types import Batch

from ..config import Config
from ..providers.openai import BatchApi, is_missing_listing
from ..state.ledger import Ledger, ShardRecord
from ..state.run_store import RunStore

# Batches a page of `GET /v1/batches` holds (the API's maximum).
LIST_PAGE = 100
T = TypeVar("T")


def run_in_parallel(work: Callable[[T], None], items: Iterable[T], *, workers: int) -> None:
    """Run `work` on every item in a bounded pool; every item gets its turn, then the first failure is raised."""
    items = list(items)
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))))
    try:
        futures = [pool.submit(work, item) for item in items]
        wait(futures)
    except BaseException:
        # Ctrl-C: no item starts any more; those under way end at their next API call (BatchApi.stop).
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    for future in futures:
        future.result()


def reconcile(api: BatchApi, store: RunStore) -> list[str]:
    """Settle the steps a crash may have left half-done; return what was found again.

    A shard caught `uploading` or `creating` may or may not have its file or batch on
    the API side: look for it by the name or tags it was given, and adopt it if found.
    """
    ledger = store.ledger
    found: list[str] = []
    in_doubt = ledger.in_doubt_shards()
    uploading = {ledger.upload_name(s): s.bytes for s in in_doubt if s.open_intent == "upload"}
    uploaded = api.find_files(uploading) if uploading else {}  # one listing for them all
    for shard in in_doubt:
        if shard.open_intent == "upload":
            item = uploaded.get(ledger.upload_name(shard))
            store.settle_upload(shard, item.id if item else None)
            if item:
                found.append(f"{shard.key}: file {item.id}")
        if shard.open_intent == "create":
            batch = api.find_batch(
                metadata=ledger.batch_metadata(shard),
                since=ledger.created_at,
                input_file_id=shard.file_id,
                exclude=shard.requeued_batch_ids,
            )
            store.settle_create(shard, batch)
            if batch:
                found.append(f"{shard.key}: batch {batch.id}")
    return found


def latest_batches(api: BatchApi, shards: list[ShardRecord], *, workers: int) -> dict[str, Batch]:
    """The current state of the shards' batches, by batch id, in as few API calls as it takes.

    `GET /v1/batches` pages (newest first) answer up to a hundred batches a call. The listing stops
    once it passes the oldest of them, or once it has cost as many calls as fetching the rest one by
    one would (an account busy with many newer batches); the batches it did not reach, or a server
    without a listing, are fetched one by one.
    """
    wanted = {s.batch_id: s for s in shards if s.batch_id}
    if not wanted:
        return {}
    oldest = min(s.batch.created_at if s.batch is not None else 0 for s in wanted.values())
    found: dict[str, Batch] = {}
    if len(wanted) > 1:
        try:
            for seen, batch in enumerate(api.list_batches(page_size=LIST_PAGE), 1):
                if batch.id in wanted:
                    found[batch.id] = batch
                left = len(wanted) - len(found)
                if not left or batch.created_at < oldest or (seen % LIST_PAGE == 0 and seen // LIST_PAGE >= left):
                    break
        except openai.APIStatusError as exc:
            if not is_missing_listing(exc):
                raise  # a server without a batches listing: every batch is fetched on its own
    missing = [batch_id for batch_id in wanted if batch_id not in found]

    def fetch(batch_id: str) -> None:
        found[batch_id] = api.retrieve_batch(batch_id)

    run_in_parallel(fetch, missing, workers=workers)
    return found


def refresh(api: BatchApi, store: RunStore, *, workers: int) -> list[ShardRecord]:
    """Learn the state of every unfinished batch; send shards failed for the token limit back to the queue.

    Finished batches never change, so their stored snapshot is not fetched again.
    Returns the shards that were requeued.
    """
    unfinished = store.ledger.running_shards()
    latest = latest_batches(api, unfinished, workers=workers)
    changed = [s for s in unfinished if s.batch is None or latest[s.batch_id] != s.batch]
    # A batch failed for the token limit is no failure of the rows: the queue was full, try again later.
    requeued = [shard for shard in changed if shard.observe(latest[shard.batch_id])]
    store.save_shards(changed)
    return requeued


def cancel_batches(api: BatchApi, store: RunStore, shards: list[ShardRecord]) -> None:
    """Cancel the shards' batches, one at a time, saving each as the API answers."""
    for shard in shards:
        shard.batch_cancelled(api.cancel_batch(shard.batch_id))
        store.save_shard(shard)


def shards_that_fit(ledger: Ledger, max_enqueued_tokens: int | None) -> list[ShardRecord]:
    """The waiting shards to submit now: in order, while their tokens fit under the limit."""
    waiting = ledger.waiting_shards()
    if max_enqueued_tokens is None:
        return waiting
    room = max_enqueued_tokens - ledger.enqueued_tokens()
    chosen = []
    for shard in waiting:
        if shard.prompt_tokens > room:
            break  # keep the order: later shards wait for earlier ones
        chosen.append(shard)
        room -= shard.prompt_tokens
    return chosen


def submit_waiting(api: BatchApi, store: RunStore, config: Config) -> list[ShardRecord]:
    """Upload and create batches for the waiting shards that fit; return those submitted.

    The intent of each call is saved before it is made, so `reconcile` can settle it
    after a crash; an upload already made is reused, never made twice. The uploads' intents
    are saved together up front (one fsync, not one per shard); each creation's just before it.
    """
    ledger = store.ledger
    chosen = shards_that_fit(ledger, config.max_enqueued_tokens)
    origin = ledger.origin_tags(data_path=config.data_path)  # how a lost run is found again (adoption.py)
    store.begin([s for s in chosen if s.needs_upload], kind="upload")

    def submit(shard: ShardRecord) -> None:
        if shard.open_intent == "upload":
            item = api.upload_file(config.data_path / shard.path, filename=ledger.upload_name(shard))
            store.settle_upload(shard, item.id)
        store.begin([shard], kind="create")
        batch = api.create_batch(
            input_file_id=shard.file_id,
            endpoint=config.endpoint,
            metadata={**ledger.batch_metadata(shard), **origin},
            since=ledger.created_at,
            exclude=shard.requeued_batch_ids,
        )
        store.settle_create(shard, batch)

    run_in_parallel(submit, chosen, workers=config.concurrency)
    return chosen


@dataclass(frozen=True)
class RunProgress:
    """Counts over a run's shards and rows, from the stored batch snapshots."""

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
        counts = shard.batch.request_counts if shard.batch is not None else None
        completed, failed = (counts.completed, counts.failed) if counts else (0, 0)
        done += completed
        if not shard.finished:
            pending += max(shard.rows - completed - failed, 0)
    return RunProgress(
        shards=len(ledger.shards),
        finished_shards=sum(s.finished for s in ledger.shards),
        queued_shards=sum(s.status == "queued" for s in ledger.shards),
        rows=ledger.rows,
        rows_done=done,
        rows_pending=pending,
    )
