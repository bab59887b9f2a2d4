"""Concurrency where the network waits: 20 shards against a server whose every API call takes 200 ms.

Runs the local backend as its own process with --api-latency, and for each concurrency (1, the default,
8) builds a run of 20 shards and times, through the package's core functions, what create-batch and
collate-output spend on the API: uploading the shards and creating their batches, then (once the batches
are finished) polling them and downloading their result files. A second poll shows that finished batches
are not fetched again.

    python benchmarks/concurrency.py [--latency 0.2] [--shards 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import local_backend, machine, wait_until_idle, write_config, write_input_table  # noqa: E402

from openai_batch_api.utils.config import Config, load_config  # noqa: E402
from openai_batch_api.utils.lifecycle.collation import download_results  # noqa: E402
from openai_batch_api.utils.lifecycle.planning import attempt_dir, input_sha256, new_ledger, plan_attempt  # noqa: E402
from openai_batch_api.utils.lifecycle.submission import refresh, submit_waiting  # noqa: E402
from openai_batch_api.utils.providers.openai import open_api  # noqa: E402
from openai_batch_api.utils.state.run_store import RunStore  # noqa: E402

ROWS_PER_SHARD = 50
DEFAULT = Config.__dataclass_fields__["concurrency"].default


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run_at(concurrency: int, *, table: Path, url: str, work: Path) -> dict[str, float]:
    """Seconds spent on the API by one run at this concurrency, step by step."""
    folder = work / f"concurrency-{concurrency}"
    folder.mkdir()
    path = write_config(
        folder / "config.yaml",
        input_file=table,
        data_path=folder / "data",
        output_file=folder / "output.parquet",
        base_url=url,
        batch_size=ROWS_PER_SHARD,
        concurrency=concurrency,
    )
    config = load_config(path)
    plan, _ = plan_attempt(config, out_dir=attempt_dir(config.data_path, 1))
    store = RunStore.create(config.data_path, new_ledger(config, plan, input_hash=input_sha256(config)))
    with store, open_api(config) as api:
        submit = timed(lambda: submit_waiting(api, store, config))
        wait_until_idle(url)
        poll = timed(lambda: refresh(api, store, workers=concurrency))
        download = timed(lambda: download_results(api, store, workers=concurrency))
        poll_again = timed(lambda: refresh(api, store, workers=concurrency))
    return {"submit": submit, "poll": poll, "download": download, "poll_again": poll_again}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per API call (default 0.2)")
    parser.add_argument("--shards", type=int, default=20, help="shards in the run (default 20)")
    parser.add_argument("--levels", default=f"1,{DEFAULT},8", help=f"concurrencies to compare (default 1,{DEFAULT},8)")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    os.environ["OPENAI_API_KEY"] = "local"  # the local backend wants a key; never send a real one to it
    with tempfile.TemporaryDirectory(prefix="concurrency-") as scratch:
        work = Path(scratch)
        table = write_input_table(work / "input.csv", args.shards * ROWS_PER_SHARD)
        with local_backend(work / "server", "--api-latency", str(args.latency)) as url:
            figures = {level: run_at(level, table=table, url=url, work=work) for level in levels}
    first = figures[levels[0]]
    print(f"{args.shards} shards, {args.latency * 1000:g} ms per files/batches API call; {machine()}")
    print(
        f"{'concurrency':<14} {'upload+create s':>15} {'poll s':>8} {'download s':>11} "
        f"{'poll again s':>13} {'upload+create':>14} {'download':>9}"
    )
    for level in levels:
        row = figures[level]
        name = f"{level}{' (default)' if level == DEFAULT else ''}"
        print(
            f"{name:<14} {row['submit']:>15.2f} {row['poll']:>8.2f} {row['download']:>11.2f} "
            f"{row['poll_again']:>13.2f} {first['submit'] / row['submit']:>13.1f}x "
            f"{first['download'] / row['download']:>8.1f}x"
        )
    print(
        f"ratios: time at concurrency {levels[0]} / time at each; sequential would be about "
        f"{2 * args.shards * args.latency:.1f} s for uploads + creations and "
        f"{args.shards * args.latency:.1f} s for downloads; finished batches are not polled again"
    )


if __name__ == "__main__":
    main()
