"""status-jobs: a table of the run's batches and their progress; --wait polls until done."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from tabulate import tabulate

from .cli import run_command
from .confirm import confirm
from .reporting import actual_cost_line, batch_warnings, failure_lines, next_command, plural
from .utils.api import open_api
from .utils.collation import download_results
from .utils.config import Config
from .utils.errors import BatchToolError
from .utils.latest_attempts import latest_failure_groups
from .utils.ledger import CANCELLED, Ledger, ShardRecord
from .utils.run_lock import run_lock
from .utils.run_store import RunStore, open_run, require_run
from .utils.submission import RunProgress, in_doubt_shards, reconcile, refresh, run_progress, waiting_shards
from .utils.waiting import WaitUpdate, wait_for_run

DESCRIPTION = (
    "Show every batch of the run with its progress, why failed rows failed, and the tokens used. "
    "--wait polls until every batch is finished, submitting queued shards as room frees."
)
HEADERS = ["shard", "batch id", "status", "created", "in progress since", "done / failed / total", "expires"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the same information as JSON")
    parser.add_argument("--wait", action="store_true", help="poll until every batch of the run is finished")
    parser.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="seconds between the first polls of --wait (default: poll_interval of the config, 30); it backs off",
    )
    parser.add_argument("--collate", action="store_true", help="with --wait: run collate-output when done")
    parser.add_argument(
        "--cancel", action="store_true", help="cancel the run's unfinished batches and its queued shards"
    )
    parser.add_argument("--yes", action="store_true", help="with --cancel: do not ask for confirmation")


def local_time(timestamp: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "-"


def batch_row(shard: ShardRecord) -> dict[str, Any]:
    batch = shard.batch
    counts = batch.request_counts if batch is not None else None
    errors = batch.errors.data if batch is not None and batch.errors else None
    return {
        "shard": shard.key,
        "batch_id": shard.batch_id,
        "status": shard.status,
        "created_at": batch.created_at if batch is not None else None,
        "in_progress_at": batch.in_progress_at if batch is not None else None,
        "completed": counts.completed if counts else 0,
        "failed": counts.failed if counts else 0,
        "total": (counts.total if counts else 0) or shard.rows,
        "expires_at": batch.expires_at if batch is not None else None,
        "errors": [{"code": e.code, "message": e.message, "line": e.line} for e in errors or []],
    }


def table_text(rows: list[dict[str, Any]]) -> str:
    cells = [
        [
            row["shard"],
            row["batch_id"] or "-",
            row["status"],
            local_time(row["created_at"]),
            local_time(row["in_progress_at"]),
            f"{row['completed']:,} / {row['failed']:,} / {row['total']:,}",
            local_time(row["expires_at"]),
        ]
        for row in rows
    ]
    return tabulate(cells, headers=HEADERS, tablefmt="simple")


def progress_line(progress: RunProgress) -> str:
    return (
        f"rows: {progress.rows_done:,} done, {progress.rows_failed:,} failed, {progress.rows_pending:,} pending "
        f"of {progress.rows:,}; batches: {progress.finished_shards} of {progress.shards} finished"
    )


def usage_totals(ledger: Ledger) -> tuple[int, int]:
    usage = [s.batch.usage for s in ledger.shards if s.batch is not None and s.batch.usage]
    return sum(u.input_tokens or 0 for u in usage), sum(u.output_tokens or 0 for u in usage)


def show_status(
    args: argparse.Namespace, config: Config, ledger: Ledger, failures: list, *, json_stream=None
) -> None:
    rows = [batch_row(s) for s in ledger.shards]
    progress = run_progress(ledger)
    input_tokens, output_tokens = usage_totals(ledger)
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": ledger.run_id,
                    "batches": rows,
                    "summary": {
                        "rows": progress.rows,
                        "done": progress.rows_done,
                        "failed": progress.rows_failed,
                        "pending": progress.rows_pending,
                        "batches": progress.shards,
                        "finished_batches": progress.finished_shards,
                        "input_tokens": input_tokens,
                        "output_tokens": output_tokens,
                    },
                    "failures": [vars(group) for group in failures],
                },
                indent=2,
                default=str,
            ),
            file=json_stream or sys.stdout,
        )
        return
    print(f"run {ledger.run_id}")
    print(table_text(rows))
    print(progress_line(progress))
    for line in batch_warnings(ledger, data_path=config.data_path) + failure_lines(failures):
        print(line)
    if input_tokens or output_tokens:
        print(
            actual_cost_line(
                model=config.model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                prices=config.prices,
            )
        )
    if progress.finished:
        print(f"next: {next_command('collate-output', args.config)}")
    elif in_doubt := in_doubt_shards(ledger):
        print(
            f"next: {next_command('status-jobs', args.config, '--wait')} (it settles the "
            f"{plural(len(in_doubt), 'shard')} an interrupted create-batch left uploading or creating: each is "
            "found on the API side or submitted, once)"
        )
    else:
        print(f"next: {next_command('status-jobs', args.config, '--wait')} (or run status-jobs again later)")


def failure_groups(api, store: RunStore, config: Config) -> list:
    """Why requests failed, from the error files of the finished batches (downloaded once)."""
    error_files = download_results(api, store, workers=config.concurrency, kinds=("errors",))
    if not error_files:
        return []
    return latest_failure_groups(store.ledger, config.data_path)


class WaitDisplay:
    """A live line on a terminal, plain periodic lines otherwise."""

    def __init__(self, stream=sys.stdout) -> None:
        self.stream = stream
        self.live = stream.isatty()

    def __call__(self, update: WaitUpdate) -> None:
        progress = update.progress
        statuses: dict[str, int] = {}
        for shard_status in update.statuses:
            statuses[shard_status] = statuses.get(shard_status, 0) + 1
        by_status = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        left = update.seconds_left
        line = (
            f"{progress.rows_done:,}/{progress.rows:,} rows done, {progress.rows_failed:,} failed | "
            f"batches: {by_status} | elapsed {clock(update.elapsed)}"
            + (f" | about {clock(left)} left" if left is not None and not progress.finished else "")
        )
        notes = []
        if update.submitted:
            notes.append(f"submitted {plural(update.submitted, 'queued shard')}")
        if update.requeued:
            notes.append(f"{plural(update.requeued, 'batch', 'batches')} back in the queue (token limit)")
        if update.retried_rows:
            notes.append(f"retrying {plural(update.retried_rows, 'failed row')}")
        if self.live:
            if notes:
                self.stream.write("\r\x1b[K" + "; ".join(notes) + "\n")
            self.stream.write("\r\x1b[K" + line + ("\n" if progress.finished else ""))
        else:
            self.stream.write(line + "".join(f"; {n}" for n in notes) + "\n")
        self.stream.flush()


def clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def cancel_run(args: argparse.Namespace, config: Config, store: RunStore, api) -> None:
    ledger = store.ledger
    running = [s for s in ledger.shards if s.batch_id and not s.finished]
    queued = waiting_shards(ledger)
    if not running and not queued:
        print(f"run {ledger.run_id}: nothing to cancel, every batch is finished")
        return
    question = (
        f"cancel {plural(len(running), 'running batch', 'running batches')} and "
        f"{plural(len(queued), 'queued shard')} of run {ledger.run_id}?"
    )
    if not confirm(question, assume_yes=args.yes):
        print("nothing was cancelled")
        return

    ledger.cancelled_at = int(time.time())
    store.save_run()
    for shard in queued:
        shard.state = CANCELLED
    store.save_shards(queued)
    for shard in running:
        shard.batch = api.cancel_batch(shard.batch_id)
        store.save_shard(shard)
    print(
        f"cancelling {plural(len(running), 'batch', 'batches')}; their finished rows are kept. "
        f"{plural(len(queued), 'queued shard')} will not be submitted"
    )


def handle(args: argparse.Namespace, config: Config) -> int:
    if not args.json:
        return show_run(args, config)
    # With --json, stdout holds the JSON document only: every other line goes to stderr.
    json_stream = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        return show_run(args, config, json_stream=json_stream)


def show_run(args: argparse.Namespace, config: Config, *, json_stream=None) -> int:
    if args.collate and not args.wait:
        raise BatchToolError("--collate goes with --wait: status-jobs --wait --collate")
    if args.interval is not None and args.interval <= 0:
        raise BatchToolError(f"--interval must be a positive number of seconds, got {args.interval:g}")
    require_run(config, config_arg=args.config)
    with ExitStack() as stack:
        if args.wait or args.cancel:
            stack.enter_context(run_lock(config.data_path, command="status-jobs"))
            writable = True
        else:
            # A plain look needs no lock; it saves what it learns only when nobody else holds it.
            try:
                stack.enter_context(run_lock(config.data_path, command="status-jobs"))
                writable = True
            except BatchToolError:
                writable = False
        store = stack.enter_context(open_run(config, config_arg=args.config, writable=writable))
        ledger = store.ledger
        api = stack.enter_context(open_api(config))
        display = WaitDisplay(sys.stderr if args.json else sys.stdout)

        def on_update(update: WaitUpdate) -> None:
            display(update)
            if args.debug:
                print(f"poll: {plural(update.api_calls, 'API call')}", file=sys.stderr)

        if args.cancel:
            reconcile(api, store)  # a batch an interrupted create-batch made is cancelled too
            cancel_run(args, config, store, api)
            refresh(api, store, workers=config.concurrency)
        elif args.wait:
            wait_for_run(
                api, store, config, interval=args.interval or config.poll_interval, on_update=on_update
            )
        else:
            refresh(api, store, workers=config.concurrency)
            if args.debug:
                print(f"poll: {plural(api.calls, 'API call')}", file=sys.stderr)
        failures = failure_groups(api, store, config)
    show_status(args, config, ledger, failures, json_stream=json_stream)
    if args.wait and args.collate:
        from .collate_output import collate_run

        collate_run(args, config)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `status-jobs`."""
    return run_command(
        prog="status-jobs", description=DESCRIPTION, add_arguments=add_arguments, handler=handle, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
