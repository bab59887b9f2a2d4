"""Why a run's rows failed: the failed requests of its error files, grouped by error code.

Light to import (orjson, no pandas): status-jobs reads the error files of thousands of batches with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..lifecycle.result_files import result_file_path
from ..providers.result_lines import read_result_file
from ..state.ledger import Ledger


@dataclass(frozen=True)
class FailureGroup:
    """The failed requests that share one error code."""

    code: str
    count: int
    retryable: bool  # True when every request of the group failed retryably
    example_id: str
    example_error: str


def error_file_failures(path: Path) -> dict[str, tuple[str, str, bool]]:
    """{custom_id: (error, code, retryable)} of the failed lines of one error file; a custom_id's last line wins."""
    failed: dict[str, tuple[str, str, bool]] = {}
    for custom_id, _, failure in read_result_file(path, answers=False):
        failed.pop(custom_id, None)  # kept in the order last seen
        if failure is not None:
            _, message, code, retryable = failure
            failed[custom_id] = (message, code, retryable)
    return failed


def latest_failure_groups(ledger: Ledger, data_path: Path) -> list[FailureGroup]:
    """Why rows failed, from the finished batches' error files on disk, each row by its latest attempt.

    Failed requests grouped by error code, most frequent first, each with an example row.
    """
    last: dict[str, int] = {}
    if ledger.attempts > 1:
        from .latest_attempts import last_attempts  # reads the retry shards' files

        last = last_attempts(ledger, data_path)
    groups: dict[str, list[Any]] = {}  # code -> [count, all retryable, example id, example error]
    for shard in sorted(ledger.shards, key=lambda s: (s.attempt, s.index)):
        if not shard.finished or shard.batch is None or not shard.batch.error_file_id:
            continue
        path = result_file_path(data_path, shard, "errors")
        for custom_id, (message, code, retryable) in error_file_failures(path).items():
            if last.get(custom_id, 0) > shard.attempt:
                continue  # sent again by a later attempt, which speaks for it
            group = groups.get(code)
            if group is None:
                groups[code] = [1, retryable, custom_id, message]
            else:
                group[0] += 1
                group[1] = group[1] and retryable
    found = [FailureGroup(code, *group) for code, group in groups.items()]
    found.sort(key=lambda group: (-group.count, group.code))
    return found
