"""Deleting what a run made: only the files it recorded as its own, and its files on the API side."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

from ..files.atomic_files import TEMP_NAME
from ..files.parallel import run_in_parallel
from ..providers.base import Provider
from ..state.ledger import Ledger
from ..state.run_store import FETCH_ROWS, RunStore
from .result_files import finished_result_files


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


def delete_remote_files(api: Provider, store: RunStore, *, workers: int) -> int:
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
            named = TEMP_NAME.fullmatch(leftover.name)  # only names temp_path_for gives: never a user's file
            if named and store.is_recorded(folder / named["name"]):
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


def remove_if_empty(folder: Path) -> bool:
    try:
        folder.rmdir()
        return True
    except OSError:
        return False  # the user keeps other files there
