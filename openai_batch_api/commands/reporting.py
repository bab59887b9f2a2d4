"""Text the commands print: counts, costs, the results of `Run`'s steps and the next command to run.

Light to import (the run's types are only annotations here): a command's `--help` loads this.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..utils.words import next_command, plural

if TYPE_CHECKING:
    from ..step_results import Cancelled, Collated, Created, Piloted, PilotUsage, Retried, RunStatus, Submitted
    from ..utils.config import Config
    from ..utils.files.table import LineBreakCells
    from ..utils.lifecycle.planning import CostReport
    from ..utils.lifecycle.settling import Settled
    from ..utils.lifecycle.submission import RunProgress
    from ..utils.state.ledger import Ledger, ShardRecord

STATUS_ORDER = ("ok", "error", "expired", "cancelled", "pending")


def format_bytes(size: int) -> str:
    for unit in ("bytes", "kB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


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
    from ..utils.costs.pricing import format_usd

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
    from ..utils.costs.pricing import estimate_cost, format_usd

    estimate = estimate_cost(
        model=model, input_tokens=input_tokens, output_tokens=output_tokens, overrides=prices
    )
    cost = (
        f"{format_usd(estimate.total_usd)} at batch prices" if estimate else f"no known price for '{model}'"
    )
    return f"tokens used: {input_tokens:,} input, {output_tokens:,} output; cost {cost}"


def pilot_usage_lines(pilot: PilotUsage | None) -> list[str]:
    """What the pilot used and cost, apart from the batches: it was bought at the full price."""
    if pilot is None:
        return []
    from ..utils.costs.pricing import format_usd

    cost = f"{format_usd(pilot.cost.total_usd)} at full price" if pilot.cost else "no known price"
    return [
        f"the pilot's {plural(pilot.rows, 'answer')}: {pilot.input_tokens:,} input, {pilot.output_tokens:,} output "
        f"tokens; cost {cost}"
    ]


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
        failed, completed = (batch.failed, batch.completed) if batch is not None else (0, 0)
        if not (shard.status == "failed" or (shard.finished and failed > completed)):
            continue
        if last is None:
            # Reading which rows were retried takes pandas: only for a run with a batch to warn about.
            from ..utils.answers.latest_attempts import last_attempts, superseded_rows

            last = last_attempts(ledger, data_path)
        retried = superseded_rows(shard, last, data_path)
        if shard.status == "failed":
            if retried >= shard.rows:
                continue
            errors = batch.errors if batch is not None else None
            reasons = "; ".join(
                (f"line {e.line}: " if e.line else "") + f"{e.code}: {e.message}" for e in errors or []
            )
            lines.append(f"batch {shard.batch_id} (shard {shard.key}) failed: {reasons or 'no reason given'}")
        elif failed - retried > completed:
            lines.append(
                f"warning: batch {shard.batch_id} (shard {shard.key}) {shard.status} but "
                f"{failed - retried:,} of {(batch.total if batch is not None else 0) or shard.rows:,} requests failed"
            )
    return lines


def created_lines(created: Created, config: Config) -> list[str]:
    """What create made (or, on a dry run, would make), its notes and its cost estimate."""
    if created.dry_run:
        size = format_bytes(created.bytes)
        head = [f"dry run: {plural(created.rows, 'row')} valid, {plural(created.shards, 'shard')} ({size})"]
    else:
        head = [
            f"run {created.run_id}: {plural(created.rows, 'row')} in {plural(created.shards, 'shard')} "
            f"({created.task_dir})"
        ]
        head += [f"note: {notice}" for notice in created.notices]
        if created.adopted_batches:
            head.append(
                f"taken up again from the API: {plural(created.adopted_batches, 'batch', 'batches')} of run "
                f"{created.run_id} found; only shards with no batch are submitted"
            )
    notes = line_break_lines(created.line_breaks, config.input_file.name) if created.line_breaks else []
    lines = head + notes + missing_cells_lines(created.missing_cells)
    lines += cost_lines(created.cost) if created.cost is not None else []
    if created.dry_run:
        lines += whole_output_lines(config, rows=created.rows)
    return lines + (["nothing was uploaded"] if created.dry_run else [])


def continued_lines(created: Created) -> list[str]:
    """How a run took up its changed table: rows reused, new, edited and removed, and the attempt sending them."""
    continued = created.continued
    assert continued is not None
    changes = continued.changes
    lines = [
        f"run {created.run_id} continues with the table as it is now: {plural(continued.rows, 'row')}: "
        f"{changes.reused:,} reused, {changes.new:,} new, {changes.edited:,} edited; {changes.removed:,} removed"
    ]
    if continued.attempt is None:
        return lines + ["no row needs a request: nothing new to send"]
    sent = changes.new + changes.edited
    lines.append(
        f"attempt {continued.attempt}: {plural(sent, 'new or edited row')} in {plural(continued.shards, 'shard')} "
        f"({continued.task_dir})"
    )
    return lines + (cost_lines(continued.cost) if continued.cost is not None else [])


def pilot_lines(piloted: Piloted, *, config_arg: str) -> list[str]:
    """A pilot's answers, the output it measured, and the run's cost estimated again from it."""
    import pandas as pd

    from ..utils.costs.pricing import format_usd

    lines = [f"run {piloted.run_id}: made for the pilot; no batch submitted"] if piloted.new_run else []
    held = f"; {plural(piloted.held, 'row')} of the pilot answered or in a batch already" if piloted.held else ""
    lines.append(
        f"pilot: {plural(piloted.answered, 'row')} answered at once at full price ({piloted.endpoint}){held}; "
        "no batch submitted"
    )
    if piloted.answered:
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            lines += piloted.table.to_string(index=False).splitlines()
    lines += [f"not answered: {failure.custom_id}: {failure.message}" for failure in piloted.failures]
    estimate = piloted.estimate
    if estimate.measured_rows:
        lines.append(
            f"output tokens measured: {estimate.measured_output_tokens:,} in "
            f"{plural(estimate.measured_rows, 'answer')}, {estimate.output_tokens_per_row:,.1f} a row"
        )
    if piloted.cost is not None and piloted.answered:
        lines.append(f"the pilot cost {format_usd(piloted.cost.total_usd)} at full price")
    if estimate.estimate is None:
        lines.append(f"cost: model '{piloted.model}' has no known price; add it under `prices:` in the config")
    elif estimate.measured_rows:
        cost = estimate.estimate
        lines.append(
            f"estimate for the run's {plural(estimate.rows, 'row')} at batch prices, by the measured output: "
            f"input {format_usd(cost.input_usd)} ({cost.input_tokens:,} tokens) + output {format_usd(cost.output_usd)} "
            f"(about {cost.output_tokens:,} tokens) = about {format_usd(cost.total_usd)}"
        )
    lines.append(f"next: {next_command('create-batch', config_arg)} (the pilot's rows are not sent again)")
    return lines


# From this many rows a dry run says that a pickle output_file is held whole in memory to be written.
LARGE_TABLE_ROWS = 1_000_000


def whole_output_lines(config: Config, *, rows: int) -> list[str]:
    """A note when output_file is a pickle of a large table: collate holds it all, where other formats stream."""
    output = config.output_file
    if output is None or output.suffix.lower() not in (".pkl", ".pickle") or rows < LARGE_TABLE_ROWS:
        return []
    return [
        f"note: output_file {output.name} is a pickle, one object: collate-output holds all {rows:,} rows in "
        "memory to write it; a .parquet, .csv or .jsonl output_file is written a shard at a time"
    ]


def retried_lines(retried: Retried) -> list[str]:
    """The attempt a retry added, and its cost estimate."""
    lines = [f"attempt {retried.attempt}: retrying {plural(retried.rows, 'row')} in {plural(retried.shards, 'shard')}"]
    return lines + (cost_lines(retried.cost) if retried.cost is not None else [])


def submitted_lines(submitted: Submitted, *, config_arg: str) -> list[str]:
    """What submit found again, created and left queued, and the next command."""
    lines = [f"found again after an interrupted run: {found}" for found in submitted.found]
    lines += [f"note: {notice}" for notice in submitted.notices]
    lines.append(
        f"run {submitted.run_id}: {plural(submitted.rows, 'row')}, {plural(submitted.shards, 'shard')}, "
        f"{plural(submitted.batches, 'batch', 'batches')} on the API side"
    )
    if submitted.submitted:
        lines.append(f"submitted {plural(submitted.submitted, 'batch', 'batches')} now")
    elif not submitted.was_waiting:
        lines.append("every shard already has its batch: nothing was submitted again")
    if submitted.requeued:
        lines.append(
            f"{plural(submitted.requeued, 'batch', 'batches')} hit the enqueued-token limit and went back to the queue"
        )
    if submitted.queued:
        lines.append(
            f"{plural(submitted.queued, 'shard')} queued until earlier batches finish (enqueued-token limit); "
            f"status-jobs --wait submits them as room frees"
        )
    lines.append(f"next: {next_command('status-jobs', config_arg)}")
    return lines


def collated_lines(collated: Collated, config: Config, *, config_arg: str) -> list[str]:
    """The summary of a collated table: rows by status, warnings, the cost, and what to do next."""
    counts = collated.status_counts
    by_status = ", ".join(f"{counts[s]:,} {s}" for s in STATUS_ORDER if counts.get(s))
    lines = [f"collated {plural(collated.rows, 'row')} into {collated.output_file}: {by_status}"]
    lines += batch_warnings(collated.ledger, data_path=config.data_path) + failure_lines(collated.failures)
    if collated.json_errors:
        lines.append(f"{plural(collated.json_errors, 'answer')} did not parse as the expected JSON: see api_json_error")
    for reason in ("length", "content_filter"):
        cut = collated.finish_reasons.get(reason, 0)
        if cut:
            lines.append(f"{plural(cut, 'answer')} stopped with finish_reason '{reason}'")
    if collated.refusals:
        lines.append(f"{plural(collated.refusals, 'request')} refused by the model: see api_refusal")
    used_in, used_out = collated.input_tokens, collated.output_tokens
    if used_in or used_out:
        lines.append(
            actual_cost_line(model=config.model, input_tokens=used_in, output_tokens=used_out, prices=config.prices)
        )
        lines += estimate_check_lines(collated, used_in)
    lines += pilot_usage_lines(collated.pilot)
    if collated.pending:
        lines.append(
            f"{plural(collated.pending, 'row')} still pending: run collate-output again once "
            f"{next_command('status-jobs', config_arg)} shows every batch finished"
        )
    elif collated.retryable_rows:
        retry = next_command("create-batch", config_arg, "--retry")
        lines.append(f"{plural(collated.retryable_rows, 'failed row')} can be retried: {retry}")
    else:
        lines.append(f"next, when you are done with the run: {next_command('delete-tasks', config_arg)}")
    return lines


def estimate_check_lines(collated: Collated, reported: int) -> list[str]:
    """An approximate estimate (Claude's) beside the input tokens the API reported for the same rows."""
    ledger = collated.ledger
    if not ledger.token_method.startswith("approximate") or collated.pending or not reported:
        return []
    estimated = sum(shard.prompt_tokens for shard in ledger.shards if shard.attempt == 1)
    off = (estimated - reported) / reported
    return [f"the input estimate before submitting was about {estimated:,} tokens ({ledger.token_method}): {off:+.0%}"]


BATCH_HEADERS = ["shard", "batch id", "status", "created", "in progress since", "done / failed / total", "expires"]


def local_time(timestamp: int | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "-"


def batch_row(shard: ShardRecord) -> dict[str, Any]:
    """One shard and its batch, as status-jobs shows it (and as its --json holds it)."""
    batch = shard.batch
    return {
        "shard": shard.key,
        "batch_id": shard.batch_id,
        "status": shard.status,
        "created_at": batch.created_at if batch is not None else None,
        "in_progress_at": batch.in_progress_at if batch is not None else None,
        "completed": batch.completed if batch is not None else 0,
        "failed": batch.failed if batch is not None else 0,
        "total": (batch.total if batch is not None else 0) or shard.rows,
        "expires_at": batch.expires_at if batch is not None else None,
        "errors": [{"code": e.code, "message": e.message, "line": e.line} for e in batch.errors] if batch else [],
    }


def batch_table(rows: list[dict[str, Any]]) -> str:
    from tabulate import tabulate

    cells = [
        [
            row["shard"],
            row["batch_id"] or "-",
            row["status"],
            local_time(row["created_at"]),
            local_time(row["in_progress_at"]),
            f"{row['completed']:,} / {row['failed']:,} / {row['total']:,}",
            local_time(row["expires_at"]),
        ]
        for row in rows
    ]
    return tabulate(cells, headers=BATCH_HEADERS, tablefmt="simple")


def progress_line(progress: RunProgress) -> str:
    return (
        f"rows: {progress.rows_done:,} done, {progress.rows_failed:,} failed, {progress.rows_pending:,} pending "
        f"of {progress.rows:,}; batches: {progress.finished_shards:,} of {progress.shards:,} finished"
    )


def status_json(status: RunStatus) -> str:
    """status-jobs --json: the batches, the counts and the failures as one JSON document."""
    import json

    progress = status.progress
    return json.dumps(
        {
            "run_id": status.run_id,
            "batches": [batch_row(s) for s in status.ledger.shards],
            "summary": {
                "rows": progress.rows,
                "done": progress.rows_done,
                "failed": progress.rows_failed,
                "pending": progress.rows_pending,
                "batches": progress.shards,
                "finished_batches": progress.finished_shards,
                "input_tokens": status.input_tokens,
                "output_tokens": status.output_tokens,
            },
            "failures": [vars(group) for group in status.failures],
        },
        indent=2,
        default=str,
    )


def status_lines(status: RunStatus, config: Config, *, config_arg: str) -> list[str]:
    """status-jobs: the table of batches, the counts, warnings, the cost so far and the next command."""
    progress = status.progress
    lines = [f"run {status.run_id}", batch_table([batch_row(s) for s in status.ledger.shards]), progress_line(progress)]
    lines += batch_warnings(status.ledger, data_path=config.data_path) + failure_lines(status.failures)
    return lines + closing_lines(status, config=config, config_arg=config_arg)


def closing_lines(status: RunStatus, *, config: Config, config_arg: str) -> list[str]:
    """The tokens the run used and what they cost, when it used any, then what to do next."""
    lines = []
    if status.input_tokens or status.output_tokens:
        lines.append(
            actual_cost_line(
                model=config.model,
                input_tokens=status.input_tokens,
                output_tokens=status.output_tokens,
                prices=config.prices,
            )
        )
    return lines + pilot_usage_lines(status.pilot) + next_lines(status, config_arg=config_arg)


def next_lines(status: RunStatus, *, config_arg: str) -> list[str]:
    """The command to run next, as status-jobs ends."""
    if status.progress.finished and status.ledger.collated_at:
        return [f"next, when you are done with the run: {next_command('delete-tasks', config_arg)}"]
    if status.progress.finished:
        return [f"next: {next_command('collate-output', config_arg)}"]
    if in_doubt := status.ledger.in_doubt_shards():
        return [
            f"next: {next_command('status-jobs', config_arg, '--wait')} (it settles the "
            f"{plural(len(in_doubt), 'shard')} an interrupted create-batch left uploading or creating: each is "
            "found on the API side or submitted, once)"
        ]
    return [f"next: {next_command('status-jobs', config_arg, '--wait')} (or run status-jobs again later)"]


def cancelled_lines(cancelled: Cancelled) -> list[str]:
    if not cancelled.running and not cancelled.queued:
        return [f"run {cancelled.run_id}: nothing to cancel, every batch is finished"]
    if not cancelled.cancelled:
        return ["nothing was cancelled"]
    return [
        f"cancelling {plural(cancelled.running, 'batch', 'batches')}; their finished rows are kept. "
        f"{plural(cancelled.queued, 'queued shard')} will not be submitted"
    ]


def settled_lines(settled: Settled) -> list[str]:
    """What create-batch --settle recorded, a line per shard."""
    lines = [f"shard {key}: batch {batch_id} taken up as its batch" for key, batch_id in settled.taken_up.items()]
    lines += [f"shard {key}: no batch was made; it is submitted again" for key in settled.resubmitted]
    return lines
