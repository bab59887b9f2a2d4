"""A run's fixed cost: `create-batch` against a stateless SDK script making the same calls.

The script reads the same table with pyarrow, writes the same request lines with orjson, uploads
each shard and creates its batch with the openai SDK, and keeps no state: none of the tool's
guarantees (no cost estimate, no run state, no search for a lost run, nothing settled after a crash).
Both run as their own processes, each against a fresh local backend run as its own process with the
same options; the figure is the median of `--repeat` runs of each, and the ratio tool / script.

    python benchmarks/stateless_sdk.py [--rows 20000] [--repeat 5] [--latency 0] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402 - a script beside its helpers
    MODEL_PARAMS,
    PROMPT,
    PYTHON,
    Measurement,
    child_env,
    command,
    local_backend,
    machine,
    run_measured,
    write_config,
    write_input_table,
)

TARGET = 1.2  # create-batch within 1.2x of the stateless script
CONCURRENCY = 4  # the tool's default concurrency, used by the script's pool too


def stateless_create(spec: dict[str, Any]) -> None:
    """The stateless script: build the lines, then upload and create in a pool as the tool does."""
    import openai
    from _references import ENDPOINT, floor_build

    floor_build(spec)
    paths = sorted(Path(spec["out_dir"]).glob("shard-*.jsonl"))
    with openai.OpenAI(base_url=spec["base_url"], api_key="local", max_retries=2) as api:

        def submit(path: Path) -> str:
            with open(path, "rb") as fh:
                file = api.files.create(file=(path.name, fh, "application/jsonl"), purpose="batch")
            return api.batches.create(input_file_id=file.id, endpoint=ENDPOINT, completion_window="24h").id

        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            list(pool.map(submit, paths))


def measure(
    rows: int, batch_size: int, repeat: int, latency: float, work: Path
) -> tuple[list[Measurement], list[Measurement]]:
    env = child_env()
    table = write_input_table(work / "input.csv", rows)
    options = ("--api-latency", str(latency)) if latency else ()
    tool, script = [], []
    for trial in range(repeat):
        folder = work / f"trial-{trial}"
        folder.mkdir()
        with local_backend(folder / "tool-backend", *options) as url:
            config = write_config(
                folder / "config.yaml",
                input_file=table,
                data_path=folder / "data",
                output_file=folder / "output.parquet",
                base_url=url,
                batch_size=batch_size,
            )
            tool.append(run_measured(command("create-batch", config), env=env))
        with local_backend(folder / "script-backend", *options) as url:
            spec = {
                "base_url": url,
                "input_file": str(table),
                "prompt": PROMPT,
                "model_params": MODEL_PARAMS,
                "image_detail": "low",
                "batch_size": batch_size,
                "out_dir": str(folder / "script-tasks"),
            }
            spec_path = folder / "script.spec.json"
            spec_path.write_text(json.dumps(spec))
            script.append(run_measured([PYTHON, __file__, "--script", str(spec_path)], env=env))
        shutil.rmtree(folder)
    return tool, script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows in the table (default 20,000)")
    parser.add_argument("--batch-size", type=int, default=50_000, help="rows per shard (default 50,000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each, the median reported (default 5)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the backend takes per API call")
    parser.add_argument("--workdir", type=Path, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--script", type=Path, help=argparse.SUPPRESS)  # one run of the stateless script
    args = parser.parse_args()
    if args.script:
        stateless_create(json.loads(args.script.read_text()))
        return
    work = Path(tempfile.mkdtemp(prefix="stateless-sdk-", dir=args.workdir))
    try:
        tool, script = measure(args.rows, args.batch_size, args.repeat, args.latency, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tool_s, script_s = statistics.median(m.wall for m in tool), statistics.median(m.wall for m in script)
    ratio = tool_s / script_s
    tool_cpu, script_cpu = statistics.median(m.cpu for m in tool), statistics.median(m.cpu for m in script)
    print(machine())
    print(
        f"{args.rows:,} rows, {args.batch_size:,} a shard, {args.latency:g} s an API call, median of {args.repeat}: "
        f"create-batch {tool_s:.2f} s, stateless SDK script {script_s:.2f} s: {ratio:.2f}x "
        f"(target within {TARGET}x: {'met' if ratio <= TARGET else 'not met'})"
    )
    print(
        f"  CPU (user + system), less sensitive to a loaded machine: create-batch {tool_cpu:.2f} s, "
        f"script {script_cpu:.2f} s: {tool_cpu / script_cpu:.2f}x"
    )
    print(f"  create-batch runs: {', '.join(f'{m.wall:.2f}' for m in tool)}")
    print(f"  script runs:       {', '.join(f'{m.wall:.2f}' for m in script)}")


if __name__ == "__main__":
    main()
