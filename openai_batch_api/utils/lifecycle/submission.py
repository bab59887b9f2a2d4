"""Submitting a run's shards exactly once: reconcile, refresh, and the enqueued-token queue."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ApiError, LostCreationError
from ..files.parallel import run_in_parallel
from ..providers.base import Provider, ShardSubmission
from ..state.ledger import Ledger, ShardRecord
from ..state.run_store import RunStore


def reconcile(api: Provider, store: RunStore) -> list[str]:
    """Settle the steps a crash may have left half-done; return what was found again.

    A shard caught `uploading` or `creating` may or may not have its file or batch on
    the API side: look for it by the name or tags it was given, and adopt it if found. Shards
    a server without a batches listing cannot settle are named together in one LostCreationError
    (the user settles them: settling.py).
    """
    ledger = store.ledger
    found: list[str] = []
    unsettled: list[LostCreationError] = []
    in_doubt = ledger.in_doubt_shards()
    names = {s.key: ledger.upload_name(s, data_path=store.data_path) for s in in_doubt if s.open_intent == "upload"}
    uploading = {names[s.key]: s.bytes for s in in_doubt if s.open_intent == "upload"}
    uploaded = api.find_uploads(uploading) if uploading else {}  # one listing for them all
    # The batches the run knows, kept up to date as this finds more: a lost creation is none of them.
    known = run_batch_ids(ledger)
    submissions = Submissions(ledger, store.data_path, exclude=known)
    for shard in in_doubt:
        if shard.open_intent == "upload":
            file_id = uploaded.get(names[shard.key])
            store.settle_upload(shard, file_id)
            if file_id:
                found.append(f"{shard.key}: file {file_id}")
        if shard.open_intent == "create":
            try:
                lookup = api.find_lost_submission(submissions.of(shard))
            except LostCreationError as lost:
                unsettled.append(lost)  # the others are settled still; all of these are named together
                continue
            if lookup.unknowable:
                raise ApiError(lookup.unknowable)  # creating another could pay twice: the shard stays in doubt
            store.settle_create(shard, lookup.batch)
            if lookup.batch:
                known.add(lookup.batch.id)
                found.append(f"{shard.key}: batch {lookup.batch.id}")
    if unsettled:
        raise LostCreationError([pair for lost in unsettled for pair in lost.shards], status=unsettled[0].status)
    return found


class Submissions:
    """The run's shards as a provider submits them, finds a lost one again, and fetches its results: each
    shard's next (or latest) creation. What the run's tags hash is worked out once for them all."""

    def __init__(self, ledger: Ledger, data_path: Path, *, endpoint: str = "", exclude: Collection[str] = ()):
        self.ledger = ledger
        self.data_path = data_path
        self.endpoint = endpoint
        self.exclude = exclude
        self.origin = ledger.origin_tags(data_path=data_path)  # how a lost run is found again (adoption.py)
        self.upload_tag = ledger.upload_tag(data_path=data_path)

    def of(self, shard: ShardRecord) -> ShardSubmission:
        return ShardSubmission(
            path=self.data_path / shard.path,
            index=shard.index,
            name=self.ledger.upload_name(shard, data_path=self.data_path, tag=self.upload_tag),
            endpoint=self.endpoint,
            tags=self.ledger.batch_metadata(shard),
            origin=self.origin,
            since=self.ledger.created_at,
            exclude=self.exclude,
            file_id=shard.file_id,
        )


def run_batch_ids(ledger: Ledger) -> set[str]:
    """Every batch the run knows as its own: none of them is the one a lost creation made.

    Without tags, a lost creation is looked for among batches of its size; the run's other shards'
    batches are often of the same size, and are known already. With tags but none on the server, among
    the batches made from its input file, which its own earlier (requeued) batches were made from too.
    """
    known = {shard.batch_id for shard in ledger.shards if shard.batch_id}
    return known.union(*(shard.requeued_batch_ids for shard in ledger.shards))


class ShardIntents:
    """A shard's submission steps, each saved in the run store before the provider's call (base.Intents)."""

    def __init__(self, store: RunStore, shard: ShardRecord) -> None:
        self.store = store
        self.shard = shard

    def begin(self, step: str) -> None:
        if self.shard.open_intent != step:  # else begun already, with the other shards' (submit_waiting)
            self.store.begin([self.shard], kind=step)

    def uploaded(self, file_id: str) -> None:
        self.store.settle_upload(self.shard, file_id)


def refresh(api: Provider, store: RunStore, *, workers: int) -> list[ShardRecord]:
    """Learn the state of every unfinished batch; send shards failed for the token limit back to the queue.

    Finished batches never change, so their stored snapshot is not fetched again.
    Returns the shards that were requeued.
    """
    unfinished = store.ledger.running_shards()
    latest = api.poll({s.batch_id: s.batch.created_at if s.batch else 0 for s in unfinished}, workers=workers)
    changed = [s for s in unfinished if s.batch is None or latest[s.batch_id] != s.batch]
    # A batch failed for the token limit is no failure of the rows: the queue was full, try again later.
    requeued = [shard for shard in changed if shard.observe(latest[shard.batch_id])]
    store.save_shards(changed)
    return requeued


def cancel_batches(api: Provider, store: RunStore, shards: list[ShardRecord]) -> None:
    """Cancel the shards' batches, one at a time, saving each as the API answers."""
    for shard in shards:
        shard.batch_cancelled(api.cancel(shard.batch_id))
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


def submit_waiting(api: Provider, store: RunStore, config: Config) -> list[ShardRecord]:
    """Make the batches of the waiting shards that fit; return those submitted.

    The provider makes each through its submission steps (an upload then a creation, or one creation
    carrying the requests), and the intent of each call is saved before it is made, so `reconcile` can
    settle it after a crash; an upload already made is reused, never made twice. The steps before the
    creation are begun for all the chosen shards together up front (one fsync, not one per shard); each
    creation's just before it.
    """
    ledger = store.ledger
    chosen = shards_that_fit(ledger, config.max_enqueued_tokens)
    for step in api.capabilities.submission_steps[:-1]:
        store.begin([s for s in chosen if s.needs(step)], kind=step)
    # The batches the run knows, kept up to date as this step makes more: a lost creation is none of them.
    known = run_batch_ids(ledger)
    submissions = Submissions(ledger, config.data_path, endpoint=config.endpoint, exclude=known)

    def submit(shard: ShardRecord) -> None:
        try:
            batch = api.submit_shard(submissions.of(shard), ShardIntents(store, shard))
        except LostCreationError as exc:
            lost.append(exc)  # the other shards go on; all of these are named together
            return
        store.settle_create(shard, batch)
        known.add(batch.id)

    lost: list[LostCreationError] = []
    run_in_parallel(submit, chosen, workers=config.concurrency)
    if lost:
        raise LostCreationError(sorted(pair for exc in lost for pair in exc.shards), status=lost[0].status)
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
    """Where the run stands; a row succeeds at most once, retries hold only rows that failed.

    A run that took up a changed table counts the pilot's answers as done, and not its shards' requests
    the table no longer asks (taken as answered: most are; one that failed shows as a row failed).
    """
    done = ledger.pilot_rows - ledger.stale_rows
    pending = 0
    for shard in ledger.shards:
        completed, failed = (shard.batch.completed, shard.batch.failed) if shard.batch is not None else (0, 0)
        done += completed
        if not shard.finished:
            pending += max(shard.rows - completed - failed, 0)
    return RunProgress(
        shards=len(ledger.shards),
        finished_shards=sum(s.finished for s in ledger.shards),
        queued_shards=sum(s.status == "queued" for s in ledger.shards),
        rows=max(ledger.rows, done + pending),
        rows_done=max(done, 0),
        rows_pending=pending,
    )
