"""Thousands of batches: each command against a stateless SDK floor making the same calls.

For each size (batches of 20 rows, concurrency 8), the tool's commands run as their own processes
against the local backend run as its own process: create-batch, status-jobs (the batches finished,
their stored states stale), one status-jobs --wait poll, collate-output and delete-tasks --yes. Then a
second, fresh backend with the same options serves the floor: one process per step, a plain SDK
script in a pool of 8 threads that builds the same request lines, uploads and creates, learns the
batches' states from one paged listing, downloads and joins the output files, and deletes the files.
It prints each step's wall time, the ratio to the floor, the tool's time per batch, and the targets.
Last, status-jobs' summary of the finished run (read from the run store: no API call, neither the SDK
nor pandas imported; the best of three) and the full table (`--all`), each against the start of a bare
interpreter measured in the same run.

    python benchmarks/many_batches.py [--sizes 100,1000,5000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
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
    wait_until_idle,
    write_config,
    write_input_table,
)

ROWS_PER_BATCH = 20
CONCURRENCY = 8
STEPS = ("create-batch", "status-jobs", "status-jobs --wait (one poll)", "collate-output", "delete-tasks")
# Targets of the issue at 1,000 batches: the tool's wall time / the floor's.
TARGETS = {"create-batch": 1.5, "collate-output": 1.5}
STATUS_TARGET = 3.0  # status-jobs <= 3x the floor plus one command start
LINEAR_TARGET = 1.3  # time per batch at the largest size / at the smallest
SUMMARY_TARGET = 1.0  # seconds: status-jobs' default view of a finished run of 5,000 batches
SUMMARY = "status-jobs summary, finished"
EVERY_BATCH = "status-jobs --all, finished"


def progress(text: str) -> None:
    print(f"{text} ...", file=sys.stderr, flush=True)


# -- the floor: what a plain SDK script does, each step its own process ----------------------------


def floor_client(spec: dict[str, Any]):
    import openai

    return openai.OpenAI(base_url=spec["base_url"], api_key="local", max_retries=2)


def in_pool(work, items: list) -> list:
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        return list(pool.map(work, items))


def floor_create(spec: dict[str, Any]) -> None:
    from _references import ENDPOINT, floor_build

    floor_build(spec)
    paths = sorted(Path(spec["out_dir"]).glob("shard-*.jsonl"))
    with floor_client(spec) as api:

        def submit(path: Path) -> tuple[str, str]:
            with open(path, "rb") as fh:
                file = api.files.create(file=(path.name, fh, "application/jsonl"), purpose="batch")
            batch = api.batches.create(input_file_id=file.id, endpoint=ENDPOINT, completion_window="24h")
            return file.id, batch.id

        made = in_pool(submit, paths)
    Path(spec["record"]).write_text(json.dumps({"files": [f for f, _ in made], "batches": [b for _, b in made]}))


def floor_poll(spec: dict[str, Any]) -> None:
    """The states of the run's batches from one paged listing (100 a page, newest first)."""
    record = json.loads(Path(spec["record"]).read_text())
    wanted = set(record["batches"])
    outputs = []
    with floor_client(spec) as api:
        for batch in api.batches.list(limit=100):
            if batch.id in wanted:
                wanted.discard(batch.id)
                outputs.extend(f for f in (batch.output_file_id, batch.error_file_id) if f)
            if not wanted:
                break
    Path(spec["outputs"]).write_text(json.dumps(outputs))


def floor_collate(spec: dict[str, Any]) -> None:
    import orjson
    import pandas as pd
    from _references import read_pandas

    folder = Path(spec["out_dir"])
    folder.mkdir(parents=True)
    file_ids = json.loads(Path(spec["outputs"]).read_text())
    with floor_client(spec) as api:

        def download(item: tuple[int, str]) -> Path:
            number, file_id = item
            path = folder / f"{number}.jsonl"
            with api.files.with_streaming_response.content(file_id) as response, open(path, "wb") as fh:
                for chunk in response.iter_bytes(1 << 20):
                    fh.write(chunk)
            return path

        paths = in_pool(download, list(enumerate(file_ids)))
    ids, outputs = [], []
    for path in paths:
        with open(path, "rb") as fh:
            for line in fh:
                record = orjson.loads(line)
                body = (record["response"] or {}).get("body") or {}
                ids.append(record["custom_id"])
                outputs.append(((body.get("choices") or [{}])[0].get("message") or {}).get("content"))
    table = read_pandas(Path(spec["input_file"]))
    joined = table.merge(pd.DataFrame({"custom_id": ids, "api_output": outputs}), left_on="id", right_on="custom_id")
    joined.to_parquet(spec["output_file"], index=False)


def floor_delete(spec: dict[str, Any]) -> None:
    files = json.loads(Path(spec["record"]).read_text())["files"] + json.loads(Path(spec["outputs"]).read_text())
    with floor_client(spec) as api:
        in_pool(lambda file_id: api.files.delete(file_id), files)
    # The same local files as the tool's: the task files and the downloaded results.
    for folder in spec["local_dirs"]:
        shutil.rmtree(folder)


FLOOR = {"create": floor_create, "poll": floor_poll, "collate": floor_collate, "delete": floor_delete}


# -- one size ------------------------------------------------------------------------------------------


def measure_size(batches: int, work: Path, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """{step: (tool seconds, floor seconds)} for a run of `batches` batches."""
    folder = work / f"{batches}-batches"
    folder.mkdir()
    table = write_input_table(folder / "input.csv", batches * ROWS_PER_BATCH)
    tool: dict[str, Measurement] = {}
    with local_backend(folder / "tool-backend") as url:
        config = write_config(
            folder / "config.yaml",
            input_file=table,
            data_path=folder / "data",
            output_file=folder / "output.parquet",
            base_url=url,
            batch_size=ROWS_PER_BATCH,
            concurrency=CONCURRENCY,
        )
        progress(f"{batches:,} batches: the tool")
        tool["create-batch"] = run_measured(command("create-batch", config), env=env)
        wait_until_idle(url)
        tool["status-jobs"] = run_measured(command("status-jobs", config), env=env)
        tool["status-jobs --wait (one poll)"] = run_measured(command("status-jobs", config, "--wait"), env=env)
        looks = {
            name: min((run_measured(command("status-jobs", config, *extra), env=env) for _ in range(3)),
                      key=lambda m: m.wall).wall
            for name, extra in ((SUMMARY, ()), (EVERY_BATCH, ("--all",)))
        }
        tool["collate-output"] = run_measured(command("collate-output", config), env=env)
        tool["delete-tasks"] = run_measured(command("delete-tasks", config, "--yes"), env=env)
    floor: dict[str, float] = {}
    with local_backend(folder / "floor-backend") as url:
        progress(f"{batches:,} batches: the floor")
        spec = {
            "base_url": url,
            "input_file": str(table),
            "prompt": PROMPT,
            "model_params": MODEL_PARAMS,
            "image_detail": "low",
            "batch_size": ROWS_PER_BATCH,
            "out_dir": str(folder / "floor-tasks"),
            "record": str(folder / "floor-record.json"),
            "outputs": str(folder / "floor-outputs.json"),
            "output_file": str(folder / "floor-output.parquet"),
        }
        spec_path = folder / "floor.spec.json"

        def step(name: str, **changes: Any) -> float:
            spec_path.write_text(json.dumps({**spec, **changes}))
            return run_measured([PYTHON, __file__, "--floor", name, str(spec_path)], env=env).wall

        floor["create-batch"] = step("create")
        wait_until_idle(url)
        floor["status-jobs"] = step("poll")
        floor["status-jobs --wait (one poll)"] = step("poll")
        floor["collate-output"] = step("collate", out_dir=str(folder / "floor-results"))
        floor["delete-tasks"] = step("delete", local_dirs=[str(folder / "floor-tasks"), str(folder / "floor-results")])
    shutil.rmtree(folder)
    steps = {name: (tool[name].wall, floor[name]) for name in STEPS}
    start = interpreter_start(env)
    steps.update({name: (wall, start) for name, wall in looks.items()})
    return steps


def interpreter_start(env: dict[str, str]) -> float:
    """A Python process that does nothing: the least any command costs."""
    return min(run_measured([PYTHON, "-c", "pass"], env=env).wall for _ in range(3))


def command_start(env: dict[str, str], work: Path) -> float:
    """One start of a command: the interpreter with the package imported, no work."""
    config = write_config(
        work / "start.yaml", input_file=work / "none.csv", data_path=work, output_file=work / "o.pkl", base_url=None
    )
    return min(run_measured(command("status-jobs", config, "--version"), env=env).wall for _ in range(3))


def report(results: dict[int, dict[str, tuple[float, float]]], start: float) -> None:
    print(f"machine: {machine()}")
    print(f"{ROWS_PER_BATCH} rows a batch, concurrency {CONCURRENCY}; one command start: {start:.2f} s")
    header = f"{'batches':>8}  {'step':<30} {'tool s':>8} {'floor s':>8} {'ratio':>7} {'ms/batch':>9}  target"
    print(header)
    for batches, steps in results.items():
        for name, (tool, floor) in steps.items():
            goal = ""
            if batches == 1000 and name in TARGETS:
                goal = f"<= {TARGETS[name]:g}x: {'met' if tool / floor <= TARGETS[name] else 'NOT met'}"
            if name == SUMMARY:
                met = "met" if tool < SUMMARY_TARGET else "NOT met"
                goal = f"under {SUMMARY_TARGET:g} s: {met} (floor: a bare python start)"
            if batches == 1000 and name == "status-jobs":
                bound = STATUS_TARGET * floor + start
                goal = f"<= 3x floor + start ({bound:.2f} s): {'met' if tool <= bound else 'NOT met'}"
            print(
                f"{batches:>8,}  {name:<30} {tool:>8.2f} {floor:>8.2f} {tool / floor:>6.2f}x "
                f"{1000 * tool / batches:>9.2f}  {goal}"
            )
        total = sum(tool for name, (tool, _) in steps.items() if name in STEPS)
        floors = sum(floor for name, (_, floor) in steps.items() if name in STEPS)
        print(f"{batches:>8,}  {'all five steps':<30} {total:>8.2f} {floors:>8.2f}")
    sizes = sorted(results)
    if len(sizes) > 1:
        per_batch = {n: sum(results[n][name][0] for name in STEPS) / n for n in sizes}
        growth = per_batch[sizes[-1]] / per_batch[sizes[0]]
        print(
            f"time per batch at {sizes[-1]:,} / at {sizes[0]:,}: {growth:.2f} "
            f"(<= {LINEAR_TARGET:g}: {'met' if growth <= LINEAR_TARGET else 'NOT met'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="batch counts to run (default 100,1000,5000)")
    parser.add_argument("--workdir", type=Path, help="where the runs are made (default: a temporary folder)")
    parser.add_argument("--floor", nargs=2, metavar=("STEP", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        FLOOR[args.floor[0]](json.loads(Path(args.floor[1]).read_text()))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    env = child_env()
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        work = Path(scratch)
        start = command_start(env, work)
        results = {batches: measure_size(batches, work, env) for batches in sizes}
    report(results, start)


if __name__ == "__main__":
    main()
