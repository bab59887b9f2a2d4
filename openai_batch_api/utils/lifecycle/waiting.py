"""Waiting for a run to finish: poll the unfinished batches, submit queued shards as room frees."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config
from ..errors import BatchToolError
from ..next_steps import next_step
from ..providers.base import Provider
from ..state.ledger import Ledger
from ..state.run_store import RunStore
from .notify import notify_run_end
from .resubmission import add_retry_attempt
from .submission import RunProgress, reconcile, refresh, run_progress, submit_waiting

# The poll interval grows by this factor after each poll, up to MAX_INTERVAL (or the first interval).
BACKOFF = 1.5
MAX_INTERVAL = 300.0


@dataclass(frozen=True)
class WaitUpdate:
    """What a display needs after one poll."""

    progress: RunProgress
    statuses: tuple[str, ...]  # each shard's status
    elapsed: float
    rows_per_second: float | None
    submitted: int
    requeued: int
    retried_rows: int
    api_calls: int = 0  # the HTTP calls this poll made

    @property
    def seconds_left(self) -> float | None:
        if not self.rows_per_second:
            return None
        return self.progress.rows_pending / self.rows_per_second


def wait_for_run(
    api: Provider,
    store: RunStore,
    config: Config,
    *,
    interval: float,
    on_update: Callable[[WaitUpdate], None],
    sleep: Callable[[float], None] = time.sleep,
) -> RunProgress:
    """Poll until every shard is finished, retrying failed rows up to `config.max_retries` times.

    Shards an interrupted create-batch left uploading or creating are settled first, as create-batch
    does (found on the API side, or submitted once); a run left with shards nothing will move is an
    error at once, never an endless wait. At the end the config's notify command and notify_url are
    told, once per run.
    """
    ledger = store.ledger
    reconcile(api, store)
    if ledger.cancelled_at:
        # Settled shards of a cancelled run are not submitted: they are cancelled as the queued ones were.
        store.cancel_queued()
    started = time.monotonic()
    # The rate is measured from the first poll: what that poll learns was done before we watched.
    first_poll: tuple[float, int] | None = None
    delay = interval
    while True:
        calls_before = api.calls
        requeued = refresh(api, store, workers=config.concurrency)
        submitted = submit_waiting(api, store, config) if not ledger.cancelled_at else []
        progress = run_progress(ledger)
        retried = 0
        if progress.finished and not ledger.cancelled_at and ledger.attempts <= config.max_retries:
            added = add_retry_attempt(api, store, config, include_all=False)
            if added is not None:
                retried = added[0]
                submit_waiting(api, store, config)
                progress = run_progress(ledger)
        now = time.monotonic()
        elapsed = now - started
        if first_poll is None:
            first_poll = (now, progress.rows_done)
        done, watched = progress.rows_done - first_poll[1], now - first_poll[0]
        rate = done / watched if done > 0 and watched > 0 else None
        statuses = tuple(s.status for s in ledger.shards)
        on_update(
            WaitUpdate(
                progress, statuses, elapsed, rate, len(submitted), len(requeued), retried, api.calls - calls_before
            )
        )
        if progress.finished:
            notify_run_end(store, config, progress)  # once per run; a failure to tell is logged, never raised
            return progress
        check_moving(ledger, config)
        sleep(delay)
        delay = min(delay * BACKOFF, max(interval, MAX_INTERVAL))


def check_moving(ledger: Ledger, config: Config) -> None:
    """An error when no batch is running and the shards left could not be submitted: waiting would be endless."""
    if ledger.running_shards():
        return
    waiting = ledger.waiting_shards()
    limit = config.max_enqueued_tokens
    if waiting and limit is not None and waiting[0].prompt_tokens > limit:
        raise BatchToolError(
            f"{config.name}: shard {waiting[0].key} of run {ledger.run_id} holds about "
            f"{waiting[0].prompt_tokens:,} prompt tokens, more than max_enqueued_tokens ({limit:,}), so it can "
            "never be submitted; raise max_enqueued_tokens and run the command again"
        )
    stuck = [s for s in ledger.shards if not s.finished]
    raise BatchToolError(  # a safety net: the steps above leave no such shard
        f"{config.data_path}: no batch of run {ledger.run_id} is running and shard {stuck[0].key} "
        f"({stuck[0].status}) could not be submitted; run {next_step(config, None, 'create-batch')} to settle it"
    )
