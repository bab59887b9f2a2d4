"""A run's status as HTML, which a notebook shows for the `RunStatus` that `Run.status()` returns.

The same summary status-jobs prints for a run of many batches: batches per state, a progress bar, and
the batches that need a person.
"""

from __future__ import annotations

import time
from html import escape
from typing import TYPE_CHECKING

from .utils.lifecycle.overview import answer_rate, batch_counts, needs_attention

if TYPE_CHECKING:
    from .step_results import RunStatus

MAX_ATTENTION = 10  # batches listed; the rest are counted


def status_html(status: RunStatus, *, now: float | None = None) -> str:
    """An HTML fragment: the run, its batches per state, a progress bar and the batches that need attention."""
    from .commands.summary import attention_cells, counts_text, rate_text

    now = time.time() if now is None else now
    ledger, progress = status.ledger, status.progress
    answered = progress.rows - progress.rows_pending
    share = answered / progress.rows if progress.rows else 1.0
    rate = answer_rate(ledger, progress, now=now)
    pace = f" at {rate_text(rate)}" if rate else ""
    parts = [
        f"<div><b>run {escape(status.run_id)}</b>: {progress.shards:,} batches, "
        f"{progress.finished_shards:,} finished</div>",
        f"<div>batches: {escape(counts_text(batch_counts(ledger)))}</div>",
        f"<div>rows: {progress.rows_done:,} done, {progress.rows_failed:,} failed, "
        f"{progress.rows_pending:,} pending of {progress.rows:,}</div>",
        f'<div><progress value="{answered}" max="{max(progress.rows, 1)}" style="width: 20em"></progress> '
        f"{int(share * 100)}%{escape(pace)}</div>",
    ]
    attention = needs_attention(ledger, now=now)
    if attention:
        head = ("why", "shard", "batch id", "done / failed / total", "")
        rows = [attention_cells(item) for item in attention[:MAX_ATTENTION]]
        cells = "".join(
            "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
        )
        parts.append(
            "<div>batches that need attention:</div><table><tr>"
            + "".join(f"<th>{escape(name)}</th>" for name in head)
            + f"</tr>{cells}</table>"
        )
        if len(attention) > MAX_ATTENTION:
            parts.append(f"<div>... and {len(attention) - MAX_ATTENTION:,} more</div>")
    return "<div>" + "".join(parts) + "</div>"
