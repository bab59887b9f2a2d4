"""status-jobs: a table of the run's batches and their progress; --wait polls until done."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..utils.errors import UsageError
from .base import run_command
from .confirm import confirm
from .reporting import cancelled_lines, collated_lines, plural, status_json, status_lines
from .summary import is_compact, summary_lines, wait_line

if TYPE_CHECKING:
    from ..run import Run
    from ..step_results import Cancelled
    from ..utils.config import Config
    from ..utils.lifecycle.waiting import WaitUpdate

DESCRIPTION = (
    "Show the run's batches with their progress, why failed rows failed, and the tokens used: every batch, "
    "or on a run of more than 30 batches a summary that fits a screen (--all lists every batch). "
    "--wait polls until every batch is finished, submitting queued shards as room frees."
)


def interval_seconds(text: str) -> float:
    """The --interval flag: a finite number of seconds above 0, at most a day (a usage error otherwise)."""
    from ..utils.config import interval_problem

    try:
        value: float | None = float(text)
    except ValueError:
        value = None
    problem = interval_problem(value, shown=text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return float(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the same information as JSON, every batch")
    parser.add_argument(
        "--all", action="store_true", help="list every batch, however many (the default up to 30 batches)"
    )
    parser.add_argument("--wait", action="store_true", help="poll until every batch of the run is finished")
    parser.add_argument(
        "--interval",
        type=interval_seconds,
        metavar="SECONDS",
        help="seconds between the first polls of --wait (default: poll_interval of the config, 30); it backs off",
    )
    parser.add_argument("--collate", action="store_true", help="with --wait: run collate-output when done")
    parser.add_argument(
        "--cancel", action="store_true", help="cancel the run's unfinished batches and its queued shards"
    )
    parser.add_argument("--yes", action="store_true", help="with --cancel: do not ask for confirmation")


class WaitDisplay:
    """The run's summary in one line: redrawn in place on a terminal, a line per change otherwise (a log)."""

    def __init__(self, stream=sys.stdout) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.last: str | None = None  # what the last plain line said, bar the clock

    def __call__(self, update: WaitUpdate) -> None:
        line, moved = wait_line(update)
        notes = []
        if update.submitted:
            notes.append(f"submitted {plural(update.submitted, 'queued shard')}")
        if update.requeued:
            notes.append(f"{plural(update.requeued, 'batch', 'batches')} back in the queue (token limit)")
        if update.retried_rows:
            notes.append(f"retrying {plural(update.retried_rows, 'failed row')}")
        finished = update.progress.finished
        if self.live:
            if notes:
                self.stream.write("\r\x1b[K" + "; ".join(notes) + "\n")
            # A line wider than the terminal would wrap, and the next one would no longer replace it.
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r\x1b[K" + line[:width] + ("\n" if finished else ""))
        elif notes or moved != self.last:
            self.stream.write(line + "".join(f"; {n}" for n in notes) + "\n")
            self.last = moved
        self.stream.flush()


def handle(args: argparse.Namespace, config: Config) -> int:
    if not args.json:
        return show_run(args, config)
    # With --json, stdout holds the JSON document only: every other line goes to stderr.
    json_stream = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        return show_run(args, config, json_stream=json_stream)


def show_run(args: argparse.Namespace, config: Config, *, json_stream=None) -> int:
    from ..run import Run

    if args.collate and not args.wait:
        raise UsageError("--collate goes with --wait: status-jobs --wait --collate")
    run = Run(config, config_arg=args.config, command="status-jobs")
    run.require()
    with run.session():  # one API session, and one local backend, for every step below
        return show_steps(run, args, config, json_stream=json_stream)


def show_steps(run: Run, args: argparse.Namespace, config: Config, *, json_stream=None) -> int:
    if args.cancel:

        def ask(plan: Cancelled) -> bool:
            question = (
                f"cancel {plural(plan.running, 'running batch', 'running batches')} and "
                f"{plural(plan.queued, 'queued shard')} of run {plan.run_id}?"
            )
            return confirm(question, assume_yes=args.yes)

        with run.locked("status-jobs"):
            print("\n".join(cancelled_lines(run.cancel(confirm=ask))))
            status = run.status()
    elif args.wait:
        display = WaitDisplay(sys.stderr if args.json else sys.stdout)

        def on_update(update: WaitUpdate) -> None:
            display(update)
            if args.debug:
                print(f"poll: {plural(update.api_calls, 'API call')}", file=sys.stderr)

        status = run.wait(interval=args.interval, on_update=on_update)
    else:
        status = run.status()
        if args.debug:
            print(f"poll: {plural(status.api_calls, 'API call')}", file=sys.stderr)
    if args.json:
        print(status_json(status), file=json_stream or sys.stdout)
    elif args.all or not is_compact(status):
        print("\n".join(status_lines(status, config, config_arg=args.config)))
    else:
        print("\n".join(summary_lines(status, config, config_arg=args.config)))
    if args.wait and args.collate:
        print("\n".join(collated_lines(run.collate(table=False), config, config_arg=args.config)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `status-jobs`."""
    return run_command(
        prog="status-jobs", description=DESCRIPTION, add_arguments=add_arguments, handler=handle, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
