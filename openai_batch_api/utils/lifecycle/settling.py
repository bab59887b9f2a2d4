"""Settling by hand a shard whose batch creation's answer was lost where the server cannot be searched.

A server without a batches listing cannot say whether a creation whose answer never came made a
batch: the shard stays `creating`, and no command creates another batch for it (that could pay
twice). The user, who can look on the server, says what became of it: "this is its batch" (taken
up once the server confirms the batch exists and was made from the shard's input file) or "there
is none" (the shard is submitted again; where the server does list batches, that is checked too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import BatchToolError, LostCreationError, UsageError
from ..providers.base import Provider, ProviderError
from ..state.batch_state import BatchState
from ..state.ledger import ShardRecord
from ..state.run_store import RunStore
from .submission import Submissions, run_batch_ids

# How a settlement says that the lost creation made no batch.
NO_BATCH = "none"
MAX_LISTED_SHARDS = 5


@dataclass(frozen=True)
class Settled:
    """What `Run.settle` recorded: shards given their batch, and shards to be submitted again."""

    run_id: str
    taken_up: dict[str, str] = field(default_factory=dict)  # shard key -> its batch id
    resubmitted: list[str] = field(default_factory=list)  # shard keys submitted again by the next submit


def parse_settlements(values: list[str]) -> dict[str, str | None]:
    """`--settle SHARD=BATCH_ID` / `SHARD=none` flags as {shard: batch id or None}; a malformed one is a UsageError."""
    settlements: dict[str, str | None] = {}
    for value in values:
        key, sep, batch_id = (part.strip() for part in value.partition("="))
        if not sep or not key or not batch_id:
            raise UsageError(
                f"--settle {value}: give SHARD=BATCH_ID (that batch is the shard's) or SHARD={NO_BATCH} "
                "(there is none: submit it again), e.g. --settle a1-s0002=batch_abc123"
            )
        if key in settlements:
            raise UsageError(f"--settle {key}: shard {key} is settled twice; give each shard once")
        settlements[key] = None if batch_id == NO_BATCH else batch_id
    return settlements


def flag(key: str, batch_id: str | None) -> str:
    return f"--settle {key}={batch_id or NO_BATCH}"


def settle_shards(api: Provider, store: RunStore, settlements: Mapping[str, str | None]) -> Settled:
    """Check every settlement against the run and the server, then record them all (or none)."""
    ledger = store.ledger
    shards = {s.key: s for s in ledger.shards}
    chosen: list[tuple[ShardRecord, str | None]] = []
    for key, batch_id in settlements.items():
        shard = shards.get(key)
        if shard is None:
            known = ", ".join(list(shards)[:MAX_LISTED_SHARDS]) + (", ..." if len(shards) > MAX_LISTED_SHARDS else "")
            raise BatchToolError(f"{flag(key, batch_id)}: run {ledger.run_id} has no shard {key} (its shards: {known})")
        if shard.open_intent != "create":
            now = f"batch {shard.batch_id}" if shard.batch_id else shard.state
            raise BatchToolError(
                f"{flag(key, batch_id)}: shard {key} has no lost batch creation to settle (it stands at {now}); "
                "leave it out"
            )
        if batch_id is not None:
            check_batch(api, shard, batch_id, taken={s.batch_id for s in ledger.shards if s.batch_id})
        else:
            check_no_batch(api, store, shard)
        chosen.append((shard, batch_id))
    taken_up: dict[str, str] = {}
    resubmitted: list[str] = []
    for shard, batch_id in chosen:
        # None: its upload stays, and the next submit creates its batch.
        store.settle_create(shard, retrieve(api, batch_id) if batch_id is not None else None)
        if batch_id is None:
            resubmitted.append(shard.key)
        else:
            taken_up[shard.key] = batch_id
    return Settled(run_id=ledger.run_id, taken_up=taken_up, resubmitted=resubmitted)


def check_batch(api: Provider, shard: ShardRecord, batch_id: str, *, taken: set[str]) -> None:
    """Refuse a batch that does not exist, belongs to another shard, or was made from another file."""
    where = flag(shard.key, batch_id)
    if shard.file_id is None:
        # No input file to check the batch against (a provider that takes the requests in the creation):
        # taking the user's word could put another batch's answers on this shard's rows.
        raise BatchToolError(
            f"{where}: shard {shard.key} was sent with its creation, not as an uploaded file, so batch {batch_id} "
            "cannot be checked as its own; once that batch has ended, run create-batch again without --settle: "
            "it finds the shard's batch by the ids of its results"
        )
    if batch_id in taken or batch_id in shard.requeued_batch_ids:
        raise BatchToolError(f"{where}: batch {batch_id} is already another submission's of this run; check the id")
    try:
        batch = retrieve(api, batch_id)
    except ProviderError as exc:
        if exc.status not in (400, 404):
            raise
        raise BatchToolError(f"{where}: the server has no batch {batch_id}; check the id") from None
    if batch.input_file_id != shard.file_id:
        raise BatchToolError(
            f"{where}: batch {batch_id} was made from input file {batch.input_file_id}, not from shard "
            f"{shard.key}'s input file {shard.file_id}; give the batch made from {shard.file_id}"
        )


def check_no_batch(api: Provider, store: RunStore, shard: ShardRecord) -> None:
    """Where the server lists batches, refuse "none" for a shard whose input file has a batch."""
    ledger = store.ledger
    try:
        lookup = api.find_lost_submission(Submissions(ledger, store.data_path, exclude=run_batch_ids(ledger)).of(shard))
    except LostCreationError:
        return  # the server cannot be searched: the user's word is taken
    if lookup.unknowable:
        raise BatchToolError(f"{flag(shard.key, None)}: {lookup.unknowable}")
    found = lookup.batch
    if found is not None:
        raise BatchToolError(
            f"{flag(shard.key, None)}: the server holds batch {found.id}, made from shard {shard.key}'s input file "
            f"{shard.file_id}; settle it with {flag(shard.key, found.id)}"
        )


def retrieve(api: Provider, batch_id: str) -> BatchState:
    """One batch as it stands, through the provider's poll (one GET for one batch)."""
    return api.poll({batch_id: 0}, workers=1)[batch_id]
