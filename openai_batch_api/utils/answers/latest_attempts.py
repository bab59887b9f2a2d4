"""Which attempt of each row speaks for it: a row sent again by a retry is no longer its earlier attempt's failure.

A retry holds only rows that failed (or had no result), so a row of attempt N that appears in a
shard of a later attempt succeeded there, is pending there, or failed there (and that attempt's
error file says why). Summaries count each row once, by its latest attempt.
"""

from __future__ import annotations

from pathlib import Path

from ..lifecycle.collation import shard_ids
from ..state.ledger import Ledger, ShardRecord


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
