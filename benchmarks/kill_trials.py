"""Kill create-batch at many random moments and count duplicate and missing batches.

The longer companion of tests/test_exactly_once.py: every trial starts create-batch in a forked
child against a local backend, kills it with SIGKILL at a random moment of its run (sometimes twice),
runs create-batch again to completion, and counts the batches each shard has on the server side.
The bar is 0 duplicates and 0 missing over every trial. Optional transient faults (including
connections dropped after the server acted) make the reconciling paths work harder. With
`--continued`, each trial's run is first submitted whole, then its table grows by half and one row is
edited, and the kills land in the create-batch that continues the run; a request (same row, same
body) in two batches of the run counts as paid twice.

    python benchmarks/kill_trials.py --trials 200 --http-error-rate 0.1
    python benchmarks/kill_trials.py --trials 200 --continued
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import random
import signal
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import openai
import pandas as pd
import yaml

from openai_batch_api.commands import create_batch
from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.state.ledger import CREATING, UPLOADING
from openai_batch_api.utils.state.run_store import load_run as load_ledger


def write_table(folder: Path, rows: int, *, edited: int | None = None) -> None:
    contents = [f"row {i}" if i != edited else f"row {i}, edited" for i in range(rows)]
    pd.DataFrame({"id": [str(i) for i in range(rows)], "content": contents}).to_csv(folder / "input.csv", index=False)


def write_project(folder: Path, base_url: str, *, rows: int, batch_size: int) -> Path:
    folder.mkdir(parents=True)
    write_table(folder, rows)
    config = {
        "input_file": "input.csv",
        "id_column": "id",
        "content_column": "content",
        "prompt": "Answer.",
        "batch_size": batch_size,
        "model_params": {"model": "gpt-4o-mini", "max_tokens": 20},
        "output_file": "output.pkl",
        "data_path": "data",
        "base_url": base_url,
        "concurrency": 2,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _child(config_path: str) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    code = 1
    try:
        code = create_batch.main(["--config", config_path])
    finally:
        os._exit(code)


def start_child(config_path: Path) -> multiprocessing.Process:
    child = multiprocessing.get_context("fork").Process(target=_child, args=(str(config_path),))
    child.start()
    return child


def run_to_completion(config_path: Path) -> tuple[int, str]:
    """Run create-batch in this process; its exit code and what it printed on stderr."""
    errors = io.StringIO()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(errors):
        code = create_batch.main(["--config", str(config_path)])
    return code, errors.getvalue()


def grown(config: Path, rows: int) -> Path:
    """The project's run submitted whole, then its table grown by half with its first row edited."""
    code, error = run_to_completion(config)
    if code != 0:
        raise SystemExit(f"the first create-batch failed: {error}")
    write_table(config.parent, rows + max(rows // 2, 1), edited=0)
    return config


def requests_paid_twice(client: openai.OpenAI, batches: list) -> int:
    """Requests (same custom_id, same body) that are in more than one of the batches' input files."""
    sent: Counter = Counter()
    for batch in batches:
        for line in client.files.content(batch.input_file_id).content.splitlines():
            request = json.loads(line)
            sent[(request["custom_id"], json.dumps(request["body"], sort_keys=True))] += 1
    return sum(n - 1 for n in sent.values() if n > 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rows", type=int, default=8, help="rows per trial (one shard each by default)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--http-error-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--continued", action="store_true", help="kill the create-batch that continues a run with a grown, edited table"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # fork() beside the server's threads
    os.environ.setdefault("OPENAI_API_KEY", "benchmark")
    rng = random.Random(args.seed)
    options = ServerOptions(
        seed=args.seed,
        http_error_rate=args.http_error_rate,
        http_error_kinds=("429", "500", "drop", "drop_after"),
        retry_after=0.01,
    )
    with tempfile.TemporaryDirectory() as scratch, LocalServer(
        state_dir=Path(scratch) / "server", options=options
    ) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="benchmark", max_retries=5)
        warm = write_project(Path(scratch) / "warm", server.base_url, rows=args.rows, batch_size=args.batch_size)
        run_to_completion(warm)  # loads the tokenizer once, before the children fork
        probe = write_project(Path(scratch) / "probe", server.base_url, rows=args.rows, batch_size=args.batch_size)
        if args.continued:
            grown(probe, args.rows)
        started = time.monotonic()
        start_child(probe).join()
        full_run = time.monotonic() - started

        duplicates = missing = mid_call = paid_twice = 0
        failures: list[str] = []
        began = time.monotonic()
        for trial in range(args.trials):
            config = write_project(
                Path(scratch) / f"t{trial}", server.base_url, rows=args.rows, batch_size=args.batch_size
            )
            if args.continued:
                grown(config, args.rows)
            for _ in range(rng.choice((1, 1, 2))):
                child = start_child(config)
                time.sleep(rng.uniform(0, full_run))
                os.kill(child.pid, signal.SIGKILL)
                child.join()
            killed = load_ledger(config.parent / "data")
            mid_call += bool(killed and any(s.state in (UPLOADING, CREATING) for s in killed.shards))
            code, error = run_to_completion(config)
            if code != 0:
                failures.append(error.strip())
                continue
            ledger = load_ledger(config.parent / "data")
            batches = [
                b for b in client.batches.list(limit=100)
                if (b.metadata or {}).get("openai_batch_api_run") == ledger.run_id
            ]
            counts = Counter((b.metadata or {}).get("shard") for b in batches)
            duplicates += sum(n - 1 for n in counts.values() if n > 1)
            missing += sum(1 for s in ledger.shards if counts.get(s.key, 0) == 0)
            if args.continued:
                paid_twice += requests_paid_twice(client, batches)
        elapsed = time.monotonic() - began

    continued = f"; continued with {args.rows + max(args.rows // 2, 1)} rows, 1 edited" if args.continued else ""
    print(
        f"trials: {args.trials} ({args.rows} rows, batch_size {args.batch_size}, "
        f"http error rate {args.http_error_rate}{continued})"
    )
    print(f"uninterrupted run: {full_run:.2f} s; all trials: {elapsed:.1f} s")
    print(f"kills that left an upload or a batch creation in doubt: {mid_call}")
    print(f"duplicate batches: {duplicates}")
    print(f"missing batches: {missing}")
    if args.continued:
        print(f"requests paid twice (the same row and body in two batches): {paid_twice}")
    print(f"trials whose final create-batch failed: {len(failures)}")
    for error in sorted(set(failures)):
        print(f"  {error}")


if __name__ == "__main__":
    main()
