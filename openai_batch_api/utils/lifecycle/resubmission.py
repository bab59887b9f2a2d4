"""Resubmitting the rows whose last attempt failed, as a new attempt of the same run.

Not to be confused with the retries of a single HTTP call, which live in api.py.
"""

from __future__ import annotations

from ..answers import result_columns as columns
from ..config import Config
from ..errors import BatchToolError
from ..next_steps import next_step
from ..providers.base import Provider
from ..state.row_requests import answer_sources
from ..state.run_store import RunStore
from .collation import collated_chunks
from .planning import CostReport, attempt_dir, plan_attempt, shard_records
from .result_files import run_result_files


def rows_to_retry(api: Provider, store: RunStore, config: Config, *, include_all: bool) -> list[str]:
    """Ids of the rows to submit again: failed retryably or unanswered (or, with include_all, any failure)."""
    ledger = store.ledger
    running = [s for s in ledger.shards if not s.finished]  # queued shards too: the run is not over
    if running:
        raise BatchToolError(
            f"{config.data_path}: {len(running)} batches of run {ledger.run_id} are not finished; "
            f"wait for them with {next_step(config, None, 'status-jobs', '--wait')} before retrying"
        )
    files = run_result_files(api, store, workers=config.concurrency)
    ids: list[str] = []
    # A group of shards at a time (memory follows a shard); a continued run, or one with a pilot, is one chunk.
    for chunk in collated_chunks(config, ledger, files, **answer_sources(store)):
        failed = chunk.table[columns.STATUS] != "ok"
        if not include_all:
            failed &= chunk.retryable
        ids.extend(chunk.ids[failed].tolist())
    return ids


def add_retry_attempt(
    api: Provider, store: RunStore, config: Config, *, include_all: bool
) -> tuple[int, int, CostReport] | None:
    """Build the next attempt from the rows to retry and add it to the run.

    Returns (rows, shards, cost estimate), or None when no row needs a retry.
    """
    ids = rows_to_retry(api, store, config, include_all=include_all)
    if not ids:
        return None
    attempt = store.ledger.attempts + 1
    plan, cost = plan_attempt(config, out_dir=attempt_dir(config.data_path, attempt), only_ids=set(ids))
    store.add_attempt(attempt, shard_records(plan, attempt=attempt, data_path=config.data_path))
    return plan.rows, len(plan.shards), cost
