"""create-batch: build the task files from the input table, upload them and create the batches."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .cli import run_command
from .reporting import cost_lines, format_bytes, line_break_lines, missing_cells_lines, next_command, plural
from .utils.adoption import start_run
from .utils.api import check_api_settings, open_api
from .utils.config import Config
from .utils.errors import BatchToolError
from .utils.ledger import check_same_inputs
from .utils.planning import (
    attempt_dir,
    input_sha256,
    plan_attempt,
)
from .utils.resubmission import add_retry_attempt
from .utils.run_lock import run_lock
from .utils.run_store import RunStore
from .utils.submission import (
    reconcile,
    refresh,
    submit_waiting,
    waiting_shards,
)

DESCRIPTION = (
    "Build JSONL task files from the input table, upload them and create the batches. "
    "Running it again on the same run submits nothing twice."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="build and validate every request, print the cost estimate, upload nothing",
    )
    parser.add_argument(
        "--retry",
        action="store_true",
        help="submit again the rows whose last attempt failed retryably (429, 5xx, expired) or has no result",
    )
    parser.add_argument(
        "--retry-all",
        action="store_true",
        help="like --retry, and also the rows that failed for other reasons (e.g. 400s)",
    )
    parser.add_argument(
        "--adopt",
        action="store_true",
        help="when the run state in data_path is lost but the API holds its batches, take that run up again",
    )


def dry_run(config: Config) -> int:
    config.data_path.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".dry-run-", dir=config.data_path)
    try:
        plan, cost = plan_attempt(config, out_dir=Path(scratch) / "tasks")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    size = format_bytes(sum(s.bytes for s in plan.shards))
    print(f"dry run: {plural(plan.rows, 'row')} valid, {plural(len(plan.shards), 'shard')} ({size})")
    notes = line_break_lines(plan.line_breaks, config.input_file.name) + missing_cells_lines(plan.missing_cells)
    for line in notes + cost_lines(cost):
        print(line)
    print("nothing was uploaded")
    return 0


def handle(args: argparse.Namespace, config: Config) -> int:
    if args.dry_run and (args.retry or args.retry_all):
        raise BatchToolError("--dry-run cannot be combined with --retry; check the run with status-jobs")
    if not args.dry_run:
        check_api_settings(config)  # before any task file or ledger is written
    with run_lock(config.data_path, command="create-batch"):
        if args.dry_run:
            return dry_run(config)
        input_hash = input_sha256(config)
        store = RunStore.open(config.data_path, writable=True)
        if store is None:
            if args.retry or args.retry_all:
                raise BatchToolError(
                    f"{config.data_path}: no run to retry yet; run create-batch --config {args.config} first"
                )
            started = start_run(config, input_hash=input_hash, adopt=args.adopt, config_arg=args.config)
            store, plan, cost, ledger = started.store, started.plan, started.cost, started.store.ledger
            print(
                f"run {ledger.run_id}: {plural(plan.rows, 'row')} in {plural(len(plan.shards), 'shard')} "
                f"({attempt_dir(config.data_path, 1)})"
            )
            for line in adoption_lines(started):
                print(line)
            notes = line_break_lines(plan.line_breaks, config.input_file.name) + missing_cells_lines(plan.missing_cells)
            for line in notes + cost_lines(cost):
                print(line)
        else:
            ledger = store.ledger
            try:
                check_same_inputs(ledger, config, input_sha256=input_hash)
            except BatchToolError:
                store.close()
                raise
        with store, open_api(config) as api:
            for found in reconcile(api, store):
                print(f"found again after an interrupted run: {found}")
            requeued = refresh(api, store, workers=config.concurrency)
            if ledger.cancelled_at and not (args.retry or args.retry_all):
                raise BatchToolError(
                    f"{config.data_path}: run {ledger.run_id} was cancelled; collate what it has, or submit its "
                    f"unanswered rows again with create-batch --config {args.config} --retry"
                )
            if args.retry or args.retry_all:
                added = add_retry_attempt(api, store, config, include_all=args.retry_all)
                if added is None:
                    print(f"run {ledger.run_id}: no row needs a retry")
                    return 0
                rows, shards, cost = added
                print(
                    f"attempt {ledger.attempts}: retrying {plural(rows, 'row')} in {plural(shards, 'shard')}"
                )
                for line in cost_lines(cost):
                    print(line)
            before = {s.key for s in waiting_shards(ledger)}
            submitted = submit_waiting(api, store, config)
            for notice in api.notices:
                print(f"note: {notice}")
        print_summary(args, config, ledger, submitted=len(submitted), waiting=before, requeued=len(requeued))
    return 0


def adoption_lines(started) -> list[str]:
    lines = [f"note: {notice}" for notice in started.notices]
    if started.adopted_batches:
        lines.append(
            f"taken up again from the API: {plural(started.adopted_batches, 'batch', 'batches')} of run "
            f"{started.store.ledger.run_id} found; only shards with no batch are submitted"
        )
    return lines


def print_summary(args, config: Config, ledger, *, submitted: int, waiting: set[str], requeued: int) -> None:
    batches = sum(1 for s in ledger.shards if s.batch_id)
    queued = len(waiting_shards(ledger))
    print(
        f"run {ledger.run_id}: {plural(ledger.rows, 'row')}, {plural(len(ledger.shards), 'shard')}, "
        f"{plural(batches, 'batch', 'batches')} on the API side"
    )
    if submitted:
        print(f"submitted {plural(submitted, 'batch', 'batches')} now")
    elif not waiting:
        print("every shard already has its batch: nothing was submitted again")
    if requeued:
        print(
            f"{plural(requeued, 'batch', 'batches')} hit the enqueued-token limit and went back to the queue"
        )
    if queued:
        print(
            f"{plural(queued, 'shard')} queued until earlier batches finish (enqueued-token limit); "
            f"status-jobs --wait submits them as room frees"
        )
    print(f"next: {next_command('status-jobs', args.config)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `create-batch`."""
    return run_command(
        prog="create-batch",
        description=DESCRIPTION,
        add_arguments=add_arguments,
        handler=handle,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
