"""collate-output: download the results and join them onto the input rows, into output_file."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .cli import run_command
from .reporting import actual_cost_line, batch_warnings, failure_lines, next_command, plural
from .utils.api import open_api
from .utils.collation import check_output_format, collate_results, download_results, write_table
from .utils.config import Config
from .utils.ledger import check_same_inputs
from .utils.planning import input_sha256
from .utils.run_lock import run_lock
from .utils.run_store import open_run
from .utils.submission import refresh

DESCRIPTION = (
    "Download the results of every finished batch and join them onto the input rows by id, "
    "into output_file. A run still going is collated as far as it goes."
)
STATUS_ORDER = ("ok", "error", "expired", "cancelled", "pending")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """collate-output takes only the common flags."""


def collate_run(args: argparse.Namespace, config: Config) -> int:
    check_output_format(config)
    with run_lock(config.data_path, command="collate-output"):
        with open_run(config, config_arg=args.config, writable=True) as store:
            ledger = store.ledger
            check_same_inputs(ledger, config, input_sha256=input_sha256(config))
            with open_api(config) as api:
                refresh(api, store, workers=config.concurrency)
                files = download_results(api, store, workers=config.concurrency)
            collation = collate_results(config, ledger, files)
            write_table(collation.table, config.output_file)
            counts = collation.status_counts()
            if not counts.get("pending"):
                ledger.collated_at = int(time.time())
                store.save_run()

    table = collation.table
    by_status = ", ".join(f"{counts[s]:,} {s}" for s in STATUS_ORDER if counts.get(s))
    print(f"collated {plural(len(table), 'row')} into {config.output_file}: {by_status}")
    for line in batch_warnings(ledger, data_path=config.data_path) + failure_lines(collation.failures):
        print(line)
    json_errors = table["api_json_error"].notna().sum() if "api_json_error" in table else 0
    if json_errors:
        print(f"{plural(int(json_errors), 'answer')} did not parse as the expected JSON: see api_json_error")
    for reason in ("length", "content_filter"):
        cut = int((table["api_finish_reason"] == reason).sum())
        if cut:
            print(f"{plural(cut, 'answer')} stopped with finish_reason '{reason}'")
    refusals = int(table["api_refusal"].notna().sum())
    if refusals:
        print(f"{plural(refusals, 'request')} refused by the model: see api_refusal")
    used_in = int(table["api_prompt_tokens"].fillna(0).sum())
    used_out = int(table["api_completion_tokens"].fillna(0).sum())
    if used_in or used_out:
        print(
            actual_cost_line(
                model=config.model, input_tokens=used_in, output_tokens=used_out, prices=config.prices
            )
        )
    if counts.get("pending"):
        print(
            f"{plural(counts['pending'], 'row')} still pending: run collate-output again once "
            f"{next_command('status-jobs', args.config)} shows every batch finished"
        )
    elif int(collation.retryable.sum()):
        retry = next_command("create-batch", args.config, "--retry")
        print(f"{plural(int(collation.retryable.sum()), 'failed row')} can be retried: {retry}")
    else:
        print(f"next, when you are done with the run: {next_command('delete-tasks', args.config)}")
    return 0


def handle(args: argparse.Namespace, config: Config) -> int:
    return collate_run(args, config)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `collate-output`."""
    return run_command(
        prog="collate-output", description=DESCRIPTION, add_arguments=add_arguments, handler=handle, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
