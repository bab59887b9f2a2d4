"""delete-tasks: remove what the run created, in data_path and on the API side."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

from .cli import run_command
from .confirm import confirm
from .reporting import next_command, plural
from .utils.api import open_api, remove_local_backend_state
from .utils.collation import finished_result_files
from .utils.config import Config
from .utils.errors import BatchToolError
from .utils.ledger import LEDGER_NAME, Ledger
from .utils.run_lock import LOCK_NAME, run_lock
from .utils.run_store import (
    FETCH_ROWS,
    IMPORTED_SUFFIX,
    STORE_NAME,
    RunStore,
    has_run,
    open_run,
    sidecars,
    store_path,
)
from .utils.submission import refresh, run_in_parallel

DESCRIPTION = (
    "Delete the files the run wrote into data_path (task files, downloaded results, its state; "
    "other files there stay), and its uploaded and result files on the API side."
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
    ids: dict[str, None] = {}
    for shard in ledger.shards:
        batch = shard.batch
        outputs = (batch.output_file_id, batch.error_file_id) if batch is not None else ()
        for file_id in (shard.file_id, *outputs):
            if file_id:
                ids[file_id] = None
    return list(ids)


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


def delete_remote_files(api, store: RunStore, *, workers: int) -> int:
    """Delete the run's files on the API side in parallel; each deletion is recorded, so a re-run skips it."""
    done = store.remote_deleted()
    todo = [file_id for file_id in remote_file_ids(store.ledger) if file_id not in done]
    deleted: list[str] = []

    def delete(file_id: str) -> None:
        if api.delete_file(file_id):
            deleted.append(file_id)
        store.record_remote_deleted(file_id)

    run_in_parallel(delete, todo, workers=workers)
    return len(deleted)


def delete_local_files(store: RunStore, *, workers: int) -> int:
    """Delete the files the run recorded as its own, a page at a time in parallel; then each folder
    that leaves empty, up to data_path. Returns how many files were deleted."""
    data_path = store.data_path
    # The result files of the finished batches are the run's by name, whoever downloaded them.
    store.record_local_files((path for _, path in finished_result_files(store.ledger, data_path)), kind="result")
    deleted = 0
    folders: set[Path] = set()
    files = store.local_files()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while page := list(islice(files, FETCH_ROWS)):
            deleted += sum(pool.map(unlink, page))
            folders.update(path.parent for path in page)
    for folder in folders:
        # A download killed halfway leaves `.<name>.<random>.part` beside the file it was to become.
        for leftover in folder.glob(".*.part"):
            if store.is_recorded(folder / leftover.name[1:].rsplit(".", 2)[0]):
                unlink(leftover)
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        while folder != data_path and data_path in folder.parents:
            if not remove_if_empty(folder):
                break
            folder = folder.parent
    return deleted


def unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def handle(args: argparse.Namespace, config: Config) -> int:
    if not has_run(config.data_path):
        print(f"{config.data_path}: no run here (no {STORE_NAME}): nothing to delete")
        return 0
    with run_lock(config.data_path, command="delete-tasks"):
        with open_run(config, config_arg=args.config, writable=True) as store:
            ledger = store.ledger
            with open_api(config) as api:
                refresh(api, store, workers=config.concurrency)
                check_deletable(args, config, ledger)
                remote = 0 if args.keep_remote else len(remote_file_ids(ledger))
                where = "" if args.keep_remote else f" and {plural(remote, 'file')} on the API side"
                question = (
                    f"delete run {ledger.run_id}: the task and result files it wrote in {config.data_path}{where}?"
                )
                if not confirm(question, assume_yes=args.yes):
                    print("nothing was deleted")
                    return 0
                deleted_remote = (
                    0 if args.keep_remote else delete_remote_files(api, store, workers=config.concurrency)
                )
            local_files = delete_local_files(store, workers=config.concurrency)
        if config.is_local:
            remove_local_backend_state(config)
        # The run's state goes last: a crash before this line leaves a run delete-tasks can finish.
        database = store_path(config.data_path)
        backup = config.data_path / (LEDGER_NAME + IMPORTED_SUFFIX)
        for path in (backup, *sidecars(database), database):
            path.unlink(missing_ok=True)
    (config.data_path / LOCK_NAME).unlink(missing_ok=True)
    remove_if_empty(config.data_path)
    remote_text = "" if args.keep_remote else f", and {plural(deleted_remote, 'file')} on the API side"
    print(f"deleted run {ledger.run_id}: {plural(local_files, 'local file')}, the run state{remote_text}")
    return 0


def remove_if_empty(folder: Path) -> bool:
    try:
        folder.rmdir()
        return True
    except OSError:
        return False  # the user keeps other files there


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `delete-tasks`."""
    return run_command(
        prog="delete-tasks", description=DESCRIPTION, add_arguments=add_arguments, handler=handle, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
