"""A run at a glance: its batches per state, the ones that need a person, and the rate rows are answered at.

Read from the stored batch snapshots only (no API call, nothing heavy to import): status-jobs draws it
for thousands of batches in a fraction of a second, and a notebook draws it as HTML.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..state.ledger import Ledger, ShardRecord
from .submission import RunProgress

# The order states are listed in: the way a batch goes, then how it ended.
STATE_ORDER = (
    "queued",
    "uploading",
    "creating",
    "validating",
    "in_progress",
    "finalizing",
    "cancelling",
    "completed",
    "failed",
    "expired",
    "cancelled",
)
# A batch whose completion window closes within this many seconds is about to expire with its rows.
EXPIRING_SOON = 2 * 3600
# The unfinished batches in progress the longest: the ones to look at when a run seems stuck.
LONGEST_RUNNING = 3
# Why a batch needs attention, in the order they are listed.
REASONS = ("failed", "expired", "cancelled", "expiring", "in progress longest")


@dataclass(frozen=True)
class Attention:
    """A batch that needs a person, and why (one of REASONS)."""

    shard: ShardRecord
    reason: str


def batch_counts(ledger: Ledger) -> dict[str, int]:
    """How many of the run's shards are in each state, in the order of STATE_ORDER (others after)."""
    return state_counts(shard.status for shard in ledger.shards)


def state_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many of `statuses` are each state, in the order of STATE_ORDER (others after)."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    rank = {state: number for number, state in enumerate(STATE_ORDER)}
    return dict(sorted(counts.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def needs_attention(ledger: Ledger, *, now: float) -> list[Attention]:
    """The batches a person should look at, most pressing first.

    Failed, expired and cancelled batches of the last attempt that holds them (rows a retry sent
    again are that retry's), then unfinished ones expiring within two hours, then the few in
    progress the longest.
    """
    last_attempt = ledger.attempts
    ended: dict[str, list[Attention]] = {"failed": [], "expired": [], "cancelled": []}
    expiring: list[Attention] = []
    running: list[ShardRecord] = []
    for shard in ledger.shards:
        status = shard.status
        if status in ended:
            # A failed, expired or cancelled batch's unanswered rows go into the next retry attempt.
            if shard.attempt == last_attempt:
                ended[status].append(Attention(shard, status))
            continue
        batch = shard.batch
        if batch is None or shard.finished:
            continue
        if batch.expires_at and batch.expires_at - now <= EXPIRING_SOON:
            expiring.append(Attention(shard, "expiring"))
        elif status == "in_progress" and batch.in_progress_at:
            running.append(shard)
    expiring.sort(key=lambda item: item.shard.batch.expires_at)
    running.sort(key=lambda shard: shard.batch.in_progress_at)
    longest = [Attention(shard, "in progress longest") for shard in running[:LONGEST_RUNNING]]
    return [*ended["failed"], *ended["expired"], *ended["cancelled"], *expiring, *longest]


def ended_at(shard: ShardRecord) -> int | None:
    """When a finished batch finished, by the API's clock."""
    batch = shard.batch
    if batch is None:
        return None
    return batch.completed_at or batch.failed_at or batch.expired_at or batch.cancelled_at


def answer_rate(ledger: Ledger, progress: RunProgress, *, now: float) -> float | None:
    """Rows answered a second since the first batch went in progress (until the last ended, on a finished run).

    None before any row is answered: there is no rate yet.
    """
    answered = progress.rows - progress.rows_pending  # done or failed
    started = [s.batch.in_progress_at for s in ledger.shards if s.batch is not None and s.batch.in_progress_at]
    if answered <= 0 or not started:
        return None
    until = now
    if progress.finished:
        ends = [end for end in map(ended_at, ledger.shards) if end]
        until = max(ends) if ends else now
    seconds = until - min(started)
    return answered / seconds if seconds > 0 else None
