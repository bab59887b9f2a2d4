"""create-batch: build the task files from the input table, upload them and create the batches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..utils.errors import UsageError
from .base import run_command

if TYPE_CHECKING:
    from ..run import Run
    from ..utils.config import Config

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
        "--pilot",
        type=int,
        metavar="N",
        help="answer N rows at once through the synchronous endpoint, at full price, and print their answers, "
        "the output tokens measured and the run's cost estimated from them; submits no batch, and the next "
        "create-batch does not send those rows again",
    )
    parser.add_argument(
        "--pilot-sample",
        type=int,
        metavar="SEED",
        help="with --pilot: a sample of N rows drawn with this seed, rather than the first N",
    )
    parser.add_argument(
        "--adopt",
        action="store_true",
        help="when the run state in data_path is lost but the API holds its batches, take that run up again "
        "(refused when none are found)",
    )
    parser.add_argument(
        "--settle",
        action="append",
        default=[],
        metavar="SHARD=BATCH_ID",
        help="a shard whose batch creation's answer was lost on a server that lists no batches: BATCH_ID is its "
        "batch (checked on the server), or none: it has none and is submitted again; repeat for each shard",
    )


def handle(args: argparse.Namespace, config: Config) -> int:
    from ..run import Run
    from ..utils.lifecycle.settling import parse_settlements
    from .reporting import continued_lines, created_lines, retried_lines, settled_lines, submitted_lines

    retry = args.retry or args.retry_all
    if args.dry_run and retry:
        raise UsageError("--dry-run cannot be combined with --retry; check the run with status-jobs")
    if args.pilot_sample is not None and args.pilot is None:
        raise UsageError("--pilot-sample needs --pilot N")
    if args.pilot is not None:
        if args.dry_run or retry or args.adopt or args.settle:
            raise UsageError("--pilot cannot be combined with --dry-run, --retry, --adopt or --settle")
        if args.pilot < 1:
            raise UsageError(f"--pilot needs a number of rows of at least 1, got {args.pilot}")
    settlements = parse_settlements(args.settle)
    if settlements and (args.dry_run or args.adopt):
        raise UsageError(f"--settle cannot be combined with {'--dry-run' if args.dry_run else '--adopt'}")
    run = Run(config, config_arg=args.config, command="create-batch")
    if args.pilot is not None:
        return pilot(run, args)
    if args.dry_run:
        print("\n".join(created_lines(run.create(dry_run=True), config)))
        return 0
    if not retry and not settlements:
        run.preload_estimator()  # the estimate's encoding loads on the other core while the SDK is imported
    run.check_api_settings()  # before any task file or run state is written
    with run.locked("create-batch"):
        if settlements:
            print("\n".join(settled_lines(run.settle(settlements))))
        if retry:
            retried = run.retry(include_all=args.retry_all)
            for found in retried.found:
                print(f"found again after an interrupted run: {found}")
            if not retried.rows:
                print(f"run {retried.run_id}: no row needs a retry")
                return 0
            print("\n".join(retried_lines(retried)))
        else:
            created = run.create(adopt=args.adopt)
            if created.new:
                print("\n".join(created_lines(created, config)))
            elif created.continued is not None:
                print("\n".join(continued_lines(created)))
        submitted = run.submit()
    print("\n".join(submitted_lines(submitted, config_arg=args.config)))
    return 0


def pilot(run: Run, args: argparse.Namespace) -> int:
    """The pilot: its answers and estimate are printed, also when the estimate refuses the run (max_cost)."""
    from ..utils.errors import CostOverLimitError
    from .reporting import pilot_lines

    try:
        piloted = run.pilot(args.pilot, sample_seed=args.pilot_sample)
    except CostOverLimitError as exc:
        piloted = getattr(exc, "piloted", None)
        if piloted is not None:
            print("\n".join(pilot_lines(piloted, config_arg=args.config)[:-1]))  # no "next": the run is refused
        raise
    print("\n".join(pilot_lines(piloted, config_arg=args.config)))
    return 0


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
