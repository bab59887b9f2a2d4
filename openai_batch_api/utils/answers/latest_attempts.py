"""Which attempt of each row speaks for it: a row sent again by a retry is no longer its earlier attempt's failure.

A retry holds only rows that failed (or had no result), so a row of attempt N that appears in a
shard of a later attempt succeeded there, is pending there, or failed there (and that attempt's
error file says why). Summaries count each row once, by its latest attempt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..lifecycle.collation import result_file_path, shard_ids
from ..state.ledger import Ledger, ShardRecord
from .results import FailureGroup, load_results, summarize_failures


def last_attempts(ledger: Ledger, data_path: Path) -> dict[str, int]:
    """The last attempt that sent each retried row; rows only ever sent by the first attempt are absent.

    Reads only the retry shards' files, which hold just the rows that were retried.
    """
    last: dict[str, int] = {}
    for shard in ledger.shards:
        if shard.attempt > 1:
            for custom_id in shard_ids(data_path / shard.path):
                if last.get(custom_id, 0) < shard.attempt:
                    last[custom_id] = shard.attempt
    return last


def superseded_rows(shard: ShardRecord, last: dict[str, int], data_path: Path) -> int:
    """How many of the shard's rows a later attempt sent again."""
    if not any(attempt > shard.attempt for attempt in last.values()):
        return 0
    return sum(last.get(custom_id, 0) > shard.attempt for custom_id in shard_ids(data_path / shard.path))


def latest_failure_groups(ledger: Ledger, data_path: Path) -> list[FailureGroup]:
    """Why rows failed, from the finished batches' error files on disk, each row by its latest attempt."""
    last = last_attempts(ledger, data_path)
    frames = []
    for shard in sorted(ledger.shards, key=lambda s: (s.attempt, s.index)):
        if not shard.finished or shard.batch is None or not shard.batch.error_file_id:
            continue
        failures = load_results([result_file_path(data_path, shard, "errors")])
        if last:
            # An array, not a list: an empty list would select no columns rather than no rows.
            latest = np.fromiter(
                (last.get(custom_id, 0) <= shard.attempt for custom_id in failures.index),
                dtype=bool,
                count=len(failures),
            )
            failures = failures[latest]
        frames.append(failures)
    if not frames:
        return []
    return summarize_failures(pd.concat(frames))
