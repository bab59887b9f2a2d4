"""A run at a glance: what status-jobs prints for a run of many batches, and the line --wait redraws.

Light to import, like `reporting`: it reads the run's stored state and formats it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .reporting import closing_lines, failure_lines, local_time, plural

if TYPE_CHECKING:
    from ..step_results import RunStatus
    from ..utils.config import Config
    from ..utils.lifecycle.overview import Attention
    from ..utils.lifecycle.submission import RunProgress
    from ..utils.lifecycle.waiting import WaitUpdate

# A run of more batches gets the summary by default (status-jobs --all prints every batch): the
# summary fits a screen, at most SUMMARY_LINES lines however many batches the run has.
COMPACT_ABOVE = 30
SUMMARY_LINES = 25
MAX_ATTENTION = 10  # batches listed as needing attention; the rest are counted
MAX_REASONS = 3  # groups of failed requests listed; the rest are counted
BAR_WIDTH = 30
WAIT_BAR_WIDTH = 20  # the line --wait redraws holds more than the bar
ERROR_CHARS = 70  # of a failed batch's first error


def is_compact(status: RunStatus) -> bool:
    """Whether the run has too many batches for the full table to be the default."""
    return len(status.ledger.shards) > COMPACT_ABOVE


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {state}" for state, count in counts.items())


def progress_bar(answered: int, total: int, *, width: int = BAR_WIDTH) -> str:
    """`[#####-----] 50%`; full, and 100%, only when every row is answered."""
    share = answered / total if total else 1.0
    filled = min(int(share * width), width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {int(share * 100)}%"


def clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def rate_text(rows_per_second: float) -> str:
    if rows_per_second >= 1:
        return f"{rows_per_second:,.0f} rows/s"
    if rows_per_second * 60 >= 1:
        return f"{rows_per_second * 60:,.0f} rows/min"
    return f"{rows_per_second * 3600:,.1f} rows/h"


def bar_line(progress: RunProgress, rate: float | None) -> str:
    """The progress bar of rows answered, with the rate and the time left once there is a rate."""
    line = progress_bar(progress.rows - progress.rows_pending, progress.rows)
    if rate:
        line += f" at {rate_text(rate)}"
        if not progress.finished and progress.rows_pending:
            line += f", about {clock(progress.rows_pending / rate)} left"
    return line


def attention_cells(item: Attention) -> list[str]:
    shard = item.shard
    batch = shard.batch
    done, failed = (batch.completed, batch.failed) if batch is not None else (0, 0)
    total = (batch.total if batch is not None else 0) or shard.rows
    if batch is None:
        detail = "never submitted"
    elif item.reason == "failed":
        first = batch.errors[0] if batch.errors else None
        detail = f"{first.code}: {first.message}" if first is not None else "no reason given"
        if len(detail) > ERROR_CHARS:
            detail = detail[: ERROR_CHARS - 3] + "..."
    elif item.reason == "expired":
        detail = f"expired {local_time(batch.expired_at or batch.expires_at)}"
    elif item.reason == "cancelled":
        detail = f"cancelled {local_time(batch.cancelled_at)}"
    elif item.reason == "expiring":
        detail = f"{batch.status}, expires {local_time(batch.expires_at)}"
    else:
        detail = f"in progress since {local_time(batch.in_progress_at)}"
    return [item.reason, shard.key, shard.batch_id or "-", f"{done:,} / {failed:,} / {total:,}", detail]


def attention_lines(attention: list[Attention]) -> list[str]:
    """The batches that need a person, at most MAX_ATTENTION of them, and how many more by reason."""
    if not attention:
        return []
    from tabulate import tabulate

    shown, rest = attention[:MAX_ATTENTION], attention[MAX_ATTENTION:]
    table = tabulate([attention_cells(item) for item in shown], tablefmt="plain", disable_numparse=True)
    lines = ["batches that need attention (done / failed / total):"]
    lines += ["  " + line.rstrip() for line in table.splitlines()]
    if rest:
        by_reason: dict[str, int] = {}
        for item in rest:
            by_reason[item.reason] = by_reason.get(item.reason, 0) + 1
        lines.append(f"  ... and {len(rest):,} more ({counts_text(by_reason)}); status-jobs --all lists every batch")
    return lines


def summary_lines(status: RunStatus, config: Config, *, config_arg: str, now: float | None = None) -> list[str]:
    """status-jobs on a run of many batches: counts, the progress bar, the batches that need attention,
    the cost and the next command, in at most SUMMARY_LINES lines."""
    from ..utils.lifecycle.overview import answer_rate, batch_counts, needs_attention

    now = time.time() if now is None else now
    ledger, progress = status.ledger, status.progress
    lines = [
        f"run {status.run_id}: {plural(progress.shards, 'batch', 'batches')}, "
        f"{progress.finished_shards:,} of them finished",
        f"batches: {counts_text(batch_counts(ledger))}",
        f"rows: {progress.rows_done:,} done, {progress.rows_failed:,} failed, {progress.rows_pending:,} pending "
        f"of {progress.rows:,}",
        bar_line(progress, answer_rate(ledger, progress, now=now)),
    ]
    lines += attention_lines(needs_attention(ledger, now=now))
    reasons = failure_lines(status.failures[:MAX_REASONS])
    if len(status.failures) > MAX_REASONS:
        rest = status.failures[MAX_REASONS:]
        more = sum(group.count for group in rest)
        reasons.append(
            f"  ... and {plural(len(rest), 'other reason')} ({plural(more, 'row')}); status-jobs --json lists them all"
        )
    lines += reasons
    return lines + closing_lines(status, config=config, config_arg=config_arg)


def wait_line(update: WaitUpdate) -> tuple[str, str]:
    """The one line --wait redraws, and the part of it that changes only when the run moves.

    What matters most comes first: a terminal narrower than the line cuts its end.
    """
    from ..utils.lifecycle.overview import state_counts

    progress = update.progress
    bar = progress_bar(progress.rows - progress.rows_pending, progress.rows, width=WAIT_BAR_WIDTH)
    rows = f"{progress.rows_done:,}/{progress.rows:,} rows done, {progress.rows_failed:,} failed"
    batches = f"batches: {counts_text(state_counts(update.statuses))}"
    timing = ""
    rate = update.rows_per_second
    if rate and not progress.finished:
        timing = f" | about {clock(progress.rows_pending / rate)} left at {rate_text(rate)}"
    line = f"{bar} | {rows}{timing} | elapsed {clock(update.elapsed)} | {batches}"
    return line, f"{bar} | {rows} | {batches}"
