"""delete-tasks: remove what the run created, in data_path and on the API side."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import run_command
from .confirm import confirm
from .reporting import next_command, plural
from .utils.api import local_state_dir, open_api
from .utils.collation import RESULTS_DIR
from .utils.config import Config
from .utils.errors import BatchToolError
from .utils.ledger import LEDGER_NAME, Ledger, load_ledger, require_ledger
from .utils.planning import TASKS_DIR
from .utils.run_lock import LOCK_NAME, run_lock
from .utils.submission import LedgerWriter, refresh, run_in_parallel

DESCRIPTION = (
    "Delete the run's task files, downloaded results and ledger from data_path (other files there "
    "stay), and its uploaded and result files on the API side."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--force", action="store_true", help="delete even while batches run or results are not collated"
    )
    parser.add_argument(
        "--keep-remote",
        action="store_true",
        help="keep the run's files on the API side; delete only local ones",
    )


def remote_file_ids(ledger: Ledger) -> list[str]:
    """The run's input files and its batches' output and error files."""
    ids: list[str] = []
    for shard in ledger.shards:
        batch = shard.batch or {}
        for file_id in (shard.file_id, batch.get("output_file_id"), batch.get("error_file_id")):
            if file_id and file_id not in ids:
                ids.append(file_id)
    return ids


def check_deletable(args: argparse.Namespace, config: Config, ledger: Ledger) -> None:
    if args.force:
        return
    running = [s for s in ledger.shards if s.batch_id and not s.finished]
    if running:
        raise BatchToolError(
            f"{config.data_path}: {plural(len(running), 'batch', 'batches')} of run {ledger.run_id} still "
            f"running; wait for them ({next_command('status-jobs', args.config, '--wait')}), cancel them "
            f"({next_command('status-jobs', args.config, '--cancel')}), or pass --force"
        )
    if ledger.collated_at is None:
        raise BatchToolError(
            f"{config.data_path}: the results of run {ledger.run_id} are not collated yet; run "
            f"{next_command('collate-output', args.config)} first, or pass --force"
        )


def handle(args: argparse.Namespace, config: Config) -> int:
    if load_ledger(config.data_path) is None:
        print(f"{config.data_path}: no run here (no {LEDGER_NAME}): nothing to delete")
        return 0
    ledger = require_ledger(config, config_arg=args.config)
    with run_lock(config.data_path, command="delete-tasks"):
        ledger = require_ledger(config, config_arg=args.config)
        writer = LedgerWriter(config.data_path, ledger)
        with open_api(config) as api:
            refresh(api, writer, workers=config.concurrency)
            check_deletable(args, config, ledger)
            remote = [] if args.keep_remote else remote_file_ids(ledger)
            local = [p for p in (config.data_path / TASKS_DIR, config.data_path / RESULTS_DIR) if p.exists()]
            where = "" if args.keep_remote else f" and {plural(len(remote), 'file')} on the API side"
            question = f"delete run {ledger.run_id}: {config.data_path}'s task and result files{where}?"
            if not confirm(question, assume_yes=args.yes):
                print("nothing was deleted")
                return 0
            deleted: list[str] = []
            run_in_parallel(
                lambda file_id: deleted.append(file_id) if api.delete_file(file_id) else None,
                remote,
                workers=config.concurrency,
            )
            deleted_remote = len(deleted)
        local_files = sum(sum(1 for p in folder.rglob("*") if p.is_file()) for folder in local)
        for folder in local:
            shutil.rmtree(folder)
        if config.is_local:
            shutil.rmtree(local_state_dir(config), ignore_errors=True)
        (config.data_path / LEDGER_NAME).unlink(missing_ok=True)
    (config.data_path / LOCK_NAME).unlink(missing_ok=True)
    remove_if_empty(config.data_path)
    remote_text = "" if args.keep_remote else f", and {plural(deleted_remote, 'file')} on the API side"
    print(f"deleted run {ledger.run_id}: {plural(local_files, 'local file')}, the ledger{remote_text}")
    return 0


def remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # the user keeps other files there


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `delete-tasks`."""
    return run_command(
        prog="delete-tasks", description=DESCRIPTION, add_arguments=add_arguments, handler=handle, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
