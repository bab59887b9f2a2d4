"""delete-tasks: remove what the run created, in data_path and on the API side."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import run_command
from .confirm import confirm
from .reporting import plural

if TYPE_CHECKING:
    from ..step_results import Deleted
    from ..utils.config import Config

DESCRIPTION = (
    "Delete the files the run wrote into data_path (task files, downloaded results, its state; "
    "other files there stay), and its uploaded and result files on the API side."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--force",
        action="store_true",
        help="delete even before the results are collated; batches still running are cancelled first",
    )
    parser.add_argument(
        "--keep-remote",
        action="store_true",
        help="keep the run's files on the API side; delete only local ones",
    )


def handle(args: argparse.Namespace, config: Config) -> int:
    from ..run import STORE_NAME, Run

    # Anthropic keeps a batch's results with the batch: what the run deletes there is its ended batches.
    remote = ("ended batch", "ended batches") if config.provider == "anthropic" else ("file",)

    def ask(plan: Deleted) -> bool:
        where = "" if args.keep_remote else f" and {plural(plan.remote_files, *remote)} on the API side"
        cancel = f"cancel its {running(plan)}, then delete " if plan.cancelled_batches else ""
        question = f"delete run {plan.run_id}: {cancel}the task and result files it wrote in {config.data_path}{where}?"
        return confirm(question, assume_yes=args.yes)

    run = Run(config, config_arg=args.config, command="delete-tasks")
    deleted = run.delete(force=args.force, keep_remote=args.keep_remote, confirm=ask)
    if deleted.run_id is None:
        print(f"{config.data_path}: no run here (no {STORE_NAME}): nothing to delete")
    elif not deleted.deleted:
        print("nothing was deleted")
    else:
        remote_text = "" if args.keep_remote else f", and {plural(deleted.remote_files, *remote)} on the API side"
        cancelled = f"cancelled its {running(deleted)}; " if deleted.cancelled_batches else ""
        print(
            f"deleted run {deleted.run_id}: {cancelled}{plural(deleted.local_files, 'local file')}, "
            f"the run state{remote_text}"
        )
    return 0


def running(deleted: Deleted) -> str:
    return plural(deleted.cancelled_batches, "running batch", "running batches")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `delete-tasks`."""
    return run_command(
        prog="delete-tasks", description=DESCRIPTION, add_arguments=add_arguments, handler=handle, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
