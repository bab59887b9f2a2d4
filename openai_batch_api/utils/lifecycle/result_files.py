"""The result files of a run's finished batches: where each lands in data_path, and fetching them once.

Light to import (no pandas): status-jobs downloads the error files to say why rows failed.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from ..files.atomic_files import write_atomically
from ..files.parallel import run_in_parallel
from ..layout import RESULTS_DIR as RESULTS_DIR
from ..layout import pilot_result_path as pilot_result_path
from ..layout import result_file_path as _result_file_path
from ..providers.base import Provider
from ..state.ledger import Ledger, ShardRecord
from ..state.row_requests import PILOT, pilot_answers
from ..state.run_store import RunStore
from .submission import Submissions

RESULT_KINDS = ("output", "errors")


def result_file_path(data_path: Path, shard: ShardRecord, kind: str) -> Path:
    return _result_file_path(data_path, shard.key, shard.batch_id, kind)


def finished_result_files(
    ledger: Ledger, data_path: Path, *, kinds: Collection[str] = RESULT_KINDS
) -> list[tuple[str, Path]]:
    """(file id, local path) of the result files of the finished batches, oldest attempt first.

    `kinds` chooses among "output" and "errors" files.
    """
    return [(file_id, path) for file_id, path, _ in _finished_result_files(ledger, data_path, kinds=kinds)]


def _finished_result_files(
    ledger: Ledger, data_path: Path, *, kinds: Collection[str]
) -> list[tuple[str, Path, ShardRecord]]:
    files = []
    for shard in sorted(ledger.shards, key=lambda s: (s.attempt, s.index)):
        if not shard.finished or shard.batch is None:
            continue
        for kind, file_id in (("output", shard.batch.output_file_id), ("errors", shard.batch.error_file_id)):
            if kind in kinds and file_id:
                files.append((file_id, result_file_path(data_path, shard, kind), shard))
    return files


def download_results(
    api: Provider, store: RunStore, *, workers: int, kinds: Collection[str] = RESULT_KINDS
) -> list[Path]:
    """Download what is not on disk yet, in parallel; result files never change, so each is fetched once.

    Each file is recorded in the run store as the run's own before it is written (delete-tasks
    removes only recorded files), and lands whole or not at all: a crash leaves the files
    downloaded so far, and the next call fetches the rest.
    `kinds=("errors",)` fetches only the error files: enough to say why requests failed, and a small
    part of the output files' size (hundreds of MB at a million rows).
    """
    ledger = store.ledger
    files = _finished_result_files(ledger, store.data_path, kinds=kinds)
    # All of them, not only the missing: a status-jobs without the run lock records nothing.
    store.record_local_files((path for _, path, _ in files), kind="result")
    missing = [item for item in files if not item[1].exists()]
    # The shards' creations: a provider that marks the requests by custom ids maps the results back by them.
    submissions = Submissions(ledger, store.data_path) if missing else None

    def fetch(item: tuple[str, Path, ShardRecord]) -> None:
        file_id, path, shard = item
        api.fetch_results(file_id, path, shard=submissions.of(shard))  # type: ignore[union-attr]

    run_in_parallel(fetch, missing, workers=workers)
    return [path for _, path, _ in files]


def result_sources(ledger: Ledger, data_path: Path) -> dict[Path, tuple[str, str]]:
    """Each result file of the run -> (its source: a shard key or PILOT, the batch id or "pilot")."""
    sources = {pilot_result_path(data_path): (PILOT, PILOT)}
    for shard in ledger.shards:
        if shard.batch_id:
            for kind in RESULT_KINDS:
                sources[result_file_path(data_path, shard, kind)] = (shard.key, shard.batch_id)
    return sources


def run_result_files(api: Provider, store: RunStore, *, workers: int) -> list[Path]:
    """The run's result files, oldest first: the pilot's answers (when it had a pilot), then the batches'."""
    files = download_results(api, store, workers=workers)
    answers = pilot_answers(store)
    if not answers:
        return files
    path = pilot_result_path(store.data_path)
    store.record_local_files([path], kind="result")  # before it is written: delete-tasks removes it
    if store.writable:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, (answer.line for answer in answers))
    return [path, *files] if path.exists() else files


def recorded_result_files(store: RunStore, *, kinds: Collection[str] = RESULT_KINDS) -> list[tuple[str, Path]]:
    """(file id, local path) of the finished batches' result files, each recorded in the run store as the run's own."""
    files = finished_result_files(store.ledger, store.data_path, kinds=kinds)
    # All of them, not only the missing: a status-jobs without the run lock records nothing.
    store.record_local_files((path for _, path in files), kind="result")
    return files


def results_on_disk(ledger: Ledger, data_path: Path, *, kinds: Collection[str] = RESULT_KINDS) -> bool:
    """Whether every finished batch's result files of `kinds` are downloaded already."""
    return all(path.exists() for _, path in finished_result_files(ledger, data_path, kinds=kinds))
