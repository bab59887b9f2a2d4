"""Text the commands print: counts, costs and the next command to run."""

from __future__ import annotations

import shlex
from pathlib import Path

from .utils.latest_attempts import last_attempts, superseded_rows
from .utils.ledger import Ledger
from .utils.planning import CostReport
from .utils.pricing import estimate_cost, format_usd
from .utils.table import LineBreakCells


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {word}"


def format_bytes(size: int) -> str:
    for unit in ("bytes", "kB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def next_command(command: str, config_arg: str, *extra: str) -> str:
    return shlex.join([command, "--config", config_arg, *extra])


def missing_cells_lines(missing_cells: dict[str, int]) -> list[str]:
    """content_template's placeholders whose cells were missing, sent as empty text."""
    if not missing_cells:
        return []
    counts = ", ".join(f"{{{column}}} in {plural(count, 'row')}" for column, count in missing_cells.items())
    return [f"content_template: empty or missing cells sent as empty text: {counts}"]


def line_break_lines(cells: LineBreakCells, input_name: str) -> list[str]:
    """A note on CSV cells that span lines: legal when quoted, and also what a quote left open makes."""
    if not cells.count:
        return []
    rows = [f"{row:,}" for row in cells.first_rows]
    listed = rows[0] if len(rows) == 1 else f"{', '.join(rows[:-1])} and {rows[-1]}"
    where = f"{'row' if len(rows) == 1 else 'rows'} {listed}"
    if cells.count > len(rows):
        where = f"first at {where}"
    spans = "cell spans" if cells.count == 1 else "cells span"
    check = "that row" if len(rows) == 1 else "those rows"
    return [
        f"note: {input_name}: {cells.count:,} {spans} lines ({where}); a quoted cell may hold line breaks, "
        f"but a quote left open makes one too, swallowing the rows after it: check {check}"
    ]


def cost_lines(cost: CostReport) -> list[str]:
    """The estimate before submitting: requests, tokens, and the cost at batch prices."""
    if cost.output_tokens_max is None:
        output = (
            "output tokens unbounded (set max_tokens or max_completion_tokens in model_params to bound them)"
        )
    else:
        output = f"at most {cost.output_tokens_max:,} output tokens"
    lines = [
        f"estimate: {plural(cost.requests, 'request')}, about {cost.input_tokens:,} input tokens "
        f"({cost.token_method}), {output}"
    ]
    if cost.estimate is None:
        lines.append(f"cost: model '{cost.model}' has no known price; add it under `prices:` in the config")
    elif cost.output_tokens_max is None:
        lines.append(
            f"cost at batch prices ({cost.model}): input {format_usd(cost.estimate.input_usd)} "
            "plus the output, which is unbounded"
        )
    else:
        lines.append(
            f"cost at batch prices ({cost.model}): input {format_usd(cost.estimate.input_usd)} + output at most "
            f"{format_usd(cost.estimate.output_usd)} = at most {format_usd(cost.estimate.total_usd)}"
        )
    return lines


def actual_cost_line(*, model: str, input_tokens: int, output_tokens: int, prices: dict) -> str:
    """The cost after the fact, from the usage the API reported."""
    estimate = estimate_cost(
        model=model, input_tokens=input_tokens, output_tokens=output_tokens, overrides=prices
    )
    cost = (
        f"{format_usd(estimate.total_usd)} at batch prices" if estimate else f"no known price for '{model}'"
    )
    return f"tokens used: {input_tokens:,} input, {output_tokens:,} output; cost {cost}"


def failure_lines(failures: list) -> list[str]:
    """Why requests failed, grouped by error code, most common first."""
    if not failures:
        return []
    lines = ["failed requests by reason:"]
    for group in failures:
        kind = "retryable" if group.retryable else "not retryable"
        lines.append(
            f"  {group.code}: {plural(group.count, 'row')} ({kind}), e.g. id {group.example_id}"
            + (f": {group.example_error}" if group.example_error else "")
        )
    return lines


def batch_warnings(ledger: Ledger, *, data_path: Path) -> list[str]:
    """Failed batches with the API's reasons, and finished batches whose requests mostly failed.

    Rows a later attempt sent again are left out: they are counted by their latest attempt.
    """
    lines = []
    last = None
    for shard in ledger.shards:
        batch = shard.batch
        counts = batch.request_counts if batch is not None else None
        failed, completed = (counts.failed, counts.completed) if counts else (0, 0)
        if not (shard.status == "failed" or (shard.finished and failed > completed)):
            continue
        if last is None:
            last = last_attempts(ledger, data_path)
        retried = superseded_rows(shard, last, data_path)
        if shard.status == "failed":
            if retried >= shard.rows:
                continue
            errors = batch.errors.data if batch is not None and batch.errors else None
            reasons = "; ".join(
                (f"line {e.line}: " if e.line else "") + f"{e.code}: {e.message}" for e in errors or []
            )
            lines.append(f"batch {shard.batch_id} (shard {shard.key}) failed: {reasons or 'no reason given'}")
        elif failed - retried > completed:
            lines.append(
                f"warning: batch {shard.batch_id} (shard {shard.key}) {shard.status} but "
                f"{failed - retried:,} of {(counts.total if counts else 0) or shard.rows:,} requests failed"
            )
    return lines
