"""A million rows through every command, each measured against the floor and the naive approach.

Generates a reproducible table (id, ~300 characters of content, an image URL on ~5% of rows), runs the
local backend as its own process, and runs each command as its own process, measuring its wall time and
peak memory: create-batch --dry-run (build the task files), create-batch (build, upload and create),
status-jobs over every batch, collate-output once the batches are finished, and delete-tasks --yes.
In the same run it measures the references (see _references.py) and prints one table, with the memory
checks: create-batch's peak at 100,000 rows against N rows, and collate-output's peak against the input
table held as a DataFrame plus the interpreter with the libraries collate-output loads (the SDK,
pandas, pyarrow).

    python benchmarks/million_rows.py [--rows 1000000] [--format csv|parquet|jsonl] [--workdir DIR]
    python benchmarks/million_rows.py --quick      # 200,000 rows

--scaling measures how build, create and collate grow with the rows: each command and its floor at
100,000 and 1,000,000 rows (and 10,000,000 with --ten-million: about half an hour and 60 GB of disk; not
part of CI), then each command's time per row and peak memory against its figures at 100,000 rows.

    python benchmarks/million_rows.py --scaling [--ten-million] [--format csv|parquet|jsonl]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402 - a script beside its helpers
    BENCHMARKS,
    FORMATS,
    MODEL_PARAMS,
    PROMPT,
    PYTHON,
    Measurement,
    child_env,
    command,
    local_backend,
    machine,
    run_measured,
    sdk,
    wait_until_idle,
    write_config,
    write_input_table,
)

from openai_batch_api.utils.files.table import read_input_table  # noqa: E402
from openai_batch_api.utils.state.ledger import Ledger  # noqa: E402
from openai_batch_api.utils.state.run_store import load_run  # noqa: E402

SMALL_ROWS = 100_000
QUICK_ROWS = 200_000
SCALING_ROWS = (100_000, 1_000_000)
TEN_MILLION = 10_000_000
BATCH_SIZE = 50_000
# Targets: the tool's wall time / the reference's, or a ratio of peaks.
BUILD_TARGET = 1.2
CREATE_TARGET = 1.0
COLLATE_TARGET = 1.2
FLAT_MEMORY_TARGET = 1.2
COLLATE_MEMORY_TARGET = 3.0


def progress(text: str) -> None:
    print(f"{text} ...", file=sys.stderr, flush=True)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


@dataclass
class Phase:
    """A command's measurement and the references it is compared with."""

    name: str
    tool: Measurement
    references: list[tuple[str, float, float, float | None]] = field(default_factory=list)  # name, s, MB, target

    def add(self, name: str, *parts: Measurement, target: float | None = None) -> Phase:
        """A reference made of one or more processes run one after another: walls add up, the peak is the max."""
        self.references.append((name, sum(p.wall for p in parts), max(p.peak_mb for p in parts), target))
        return self

    def lines(self) -> list[str]:
        lines = [f"{self.name:<62} {self.tool.wall:>8.2f} {self.tool.peak_mb:>8.0f}"]
        for name, wall, peak, target in self.references:
            ratio = self.tool.wall / wall
            goal = f"<= {target:g}x: {verdict(ratio <= target)}" if target else ""
            lines.append(f"  {name:<60} {wall:>8.2f} {peak:>8.0f} {ratio:>6.2f}x  {goal}")
        return lines


class Benchmark:
    """One run of every phase in `work`, in an order where no phase shares the cores with another's batches."""

    def __init__(self, rows: int, fmt: str, work: Path, *, naive: bool = True) -> None:
        self.rows = rows
        self.work = work
        self.naive = naive  # also the naive references, the small dry run, status and delete (the full table)
        self.env = child_env()
        self.phases: list[Phase] = []
        progress(f"writing {rows:,} rows as {fmt}")
        self.table = write_input_table(work / f"input.{fmt}", rows)
        if naive:
            self.small_table = write_input_table(work / f"input-{SMALL_ROWS}.{fmt}", SMALL_ROWS)
        self.spec: dict[str, Any] = {
            "input_file": str(self.table),
            "prompt": PROMPT,
            "model_params": MODEL_PARAMS,
            "image_detail": "low",
            "batch_size": BATCH_SIZE,
        }

    def record(self, phase: Phase) -> None:
        """Keep a phase, and print it at once: a long run that fails later keeps what it measured."""
        self.phases.append(phase)
        print("\n".join(phase.lines()), file=sys.stderr, flush=True)

    def tool(self, name: str, config: Path, *extra: str) -> Measurement:
        return run_measured(command(name, config, *extra), env=self.env)

    def reference(self, step: str, **spec: Any) -> Measurement:
        path = self.work / f"{step}.spec.json"
        path.write_text(json.dumps({**self.spec, **spec}))
        return run_measured([PYTHON, str(BENCHMARKS / "_references.py"), step, str(path)], env=self.env)

    def config(self, name: str, table: Path, base_url: str | None) -> Path:
        return write_config(
            self.work / f"{name}.yaml",
            input_file=table,
            data_path=self.work / f"{name}-data",
            output_file=self.work / f"{name}-output.parquet",
            base_url=base_url,
        )

    def ledger(self) -> Ledger:
        ledger = load_run(self.work / "run-data")
        assert ledger is not None, "create-batch left no run state"
        return ledger

    def builds(self) -> None:
        """Task files without the server: the dry run at both sizes, the floor's and the naive build."""
        progress("create-batch --dry-run")
        if self.naive:
            self.dry_small = self.tool("create-batch", self.config("small", self.small_table, None), "--dry-run")
        self.dry = self.tool("create-batch", self.config("dry", self.table, None), "--dry-run")
        progress("the floor's build")
        self.floor_build = self.reference("floor_build", out_dir=str(self.work / "floor"))
        phase = Phase("build task files: create-batch --dry-run", self.dry)
        phase.add("floor: pyarrow read, orjson each line, write", self.floor_build, target=BUILD_TARGET)
        if self.naive:
            progress("the naive build")
            self.naive_build = self.reference("naive_build", out_dir=str(self.work / "naive"))
            phase.add("naive: pandas iterrows, json.dumps each line, write", self.naive_build)
        # The floor's shard files are compared with the tool's by their hashes: the files can go (at 10,000,000
        # rows they take 6 GB).
        floor_files = sorted(self.work.glob("floor/*.jsonl"))
        self.floor_hashes = [hashlib.sha256(path.read_bytes()).hexdigest() for path in floor_files]
        shutil.rmtree(self.work / "floor", ignore_errors=True)
        self.record(phase)

    def uploads(self, url: str) -> None:
        """The references' uploads, one after another; their batches are cancelled and the server settles."""
        progress("the floor's build and uploads")
        self.floor_create = self.reference(
            "floor_create", out_dir=str(self.work / "floor-create"), record=str(self.work / "floor-uploads.json")
        )
        self.cancel_batches(url, self.work / "floor-uploads.json")
        # The floor's shard files and their uploads are not needed again (at 10,000,000 rows, 12 GB of disk).
        shutil.rmtree(self.work / "floor-create", ignore_errors=True)
        self.delete_files(url, self.work / "floor-uploads.json")
        if not self.naive:
            return
        progress("the naive uploads")
        self.naive_upload = self.reference(
            "upload_one_by_one", out_dir=str(self.work / "naive"), record=str(self.work / "naive-uploads.json")
        )
        self.cancel_batches(url, self.work / "naive-uploads.json")

    def cancel_batches(self, url: str, record: Path) -> None:
        with sdk(url) as client:
            for batch_id in json.loads(record.read_text())["batches"]:
                client.batches.cancel(batch_id)
        wait_until_idle(url)

    def delete_files(self, url: str, record: Path) -> None:
        with sdk(url) as client:
            for file_id in json.loads(record.read_text())["files"]:
                client.files.delete(file_id)

    def create(self, url: str) -> None:
        progress("create-batch")
        self.run_config = self.config("run", self.table, url)
        phase = Phase("upload and create: create-batch", self.tool("create-batch", self.run_config))
        phase.add("floor: build, then upload and create one by one", self.floor_create, target=CREATE_TARGET)
        if self.naive:
            phase.add("naive: build, then upload and create one by one", self.naive_build, self.naive_upload)
        self.record(phase)
        shards = self.ledger().shards
        self.shards = len(shards)
        self.same_lines = [shard.sha256 for shard in shards] == self.floor_hashes

    def status(self) -> None:
        progress("status-jobs")
        shards = self.ledger().shards
        phase = Phase(f"status of {len(shards)} batches: status-jobs", self.tool("status-jobs", self.run_config))
        phase.add(
            "naive: retrieve every batch one by one",
            self.reference("naive_poll", batch_ids=[s.batch_id for s in shards]),
        )
        self.record(phase)

    def collate(self, url: str) -> None:
        progress("waiting for the batches")
        wait_until_idle(url)
        # status-jobs may have downloaded the result files of batches that finished early: collate from
        # nothing, so it is measured with every download, like its references.
        shutil.rmtree(self.work / "run-data" / "results", ignore_errors=True)
        progress("collate-output")
        self.collated = self.tool("collate-output", self.run_config)
        ledger = self.ledger()
        self.result_files = [
            file_id
            for s in ledger.shards
            for file_id in (s.batch.output_file_id, s.batch.error_file_id)
            if file_id
        ]
        (self.work / "run-output.parquet").unlink(missing_ok=True)  # measured: the floor needs the disk
        progress("the floor's collate")
        try:
            floor = self.reference(
                "floor_collate",
                file_ids=self.result_files,
                out_dir=str(self.work / "floor-results"),
                output_file=str(self.work / "floor-output.parquet"),
            )
        except RuntimeError as exc:  # the floor holds the whole table: at 10,000,000 rows it may not fit
            progress(f"the floor's collate failed: {str(exc).strip().splitlines()[-1]}")
            floor = Measurement(wall=float("nan"), peak_mb=float("nan"), stdout="")
        shutil.rmtree(self.work / "floor-results", ignore_errors=True)
        (self.work / "floor-output.parquet").unlink(missing_ok=True)
        phase = Phase("collate: collate-output", self.collated)
        phase.add("floor: download one by one, orjson, pandas merge", floor, target=COLLATE_TARGET)
        if self.naive:
            progress("the naive collate")
            naive = self.reference(
                "naive_collate", file_ids=self.result_files, output_file=str(self.work / "naive-output.parquet")
            )
            phase.add("naive: download whole, json.loads into a list, merge", naive)
        self.record(phase)

    def delete(self, url: str) -> None:
        progress("delete-tasks")
        remote = len({s.file_id for s in self.ledger().shards} | set(self.result_files))
        delete = self.tool("delete-tasks", self.run_config, "--yes")
        # The reference deletes as many of the files left on the server (the references' uploads) as the
        # tool deleted there.
        with sdk(url) as client:
            files = [file.id for file in client.files.list()][:remote]
        phase = Phase(f"delete {remote} remote files and the local ones: delete-tasks --yes", delete)
        phase.add(f"naive: delete {len(files)} files one by one", self.reference("delete_one_by_one", file_ids=files))
        self.record(phase)

    def memory_lines(self) -> list[str]:
        # The libraries collate-output loads before it reads a row (the package itself imports them lazily).
        loaded = (
            "import openai_batch_api.commands.collate_output, openai_batch_api.run, "
            "openai_batch_api.utils.lifecycle.collation"
        )
        interpreter = run_measured([PYTHON, "-c", f"{loaded}, openai, pandas, pyarrow.parquet"], env=self.env)
        table = read_input_table(self.table, id_column="id")
        table_mb = table.memory_usage(deep=True).sum() / (1 << 20)
        del table
        gc.collect()
        flat = self.dry.peak_mb / self.dry_small.peak_mb
        base = table_mb + interpreter.peak_mb
        share = self.collated.peak_mb / base
        return [
            f"create-batch --dry-run peak: {self.dry.peak_mb:.0f} MB at {self.rows:,} rows, "
            f"{self.dry_small.peak_mb:.0f} MB at {SMALL_ROWS:,}: {flat:.2f}x "
            f"(target <= {FLAT_MEMORY_TARGET:g}x: {verdict(flat <= FLAT_MEMORY_TARGET)})",
            f"collate-output peak: {self.collated.peak_mb:.0f} MB; the table as a DataFrame {table_mb:.0f} MB + the "
            f"interpreter with the SDK, pandas and pyarrow {interpreter.peak_mb:.0f} MB = {base:.0f} MB: {share:.2f}x "
            f"(target < {COLLATE_MEMORY_TARGET:g}x: {verdict(share < COLLATE_MEMORY_TARGET)})",
        ]

    def run(self) -> str:
        started = time.perf_counter()
        self.builds()
        with local_backend(self.work / "server") as url:
            self.spec["base_url"] = url
            self.uploads(url)
            self.create(url)
            if self.naive:
                self.status()
            self.collate(url)
            if self.naive:
                self.delete(url)
        lines = [
            f"{self.rows:,} rows ({self.table.suffix[1:]}, {self.table.stat().st_size / 1e6:.0f} MB), "
            f"{self.shards} shards of up to {BATCH_SIZE:,} rows; {machine()}",
            "ratio = the tool's wall time / the reference's; the floor's request lines are byte for byte the "
            f"tool's: {'yes' if self.same_lines else 'NO'}",
            "",
            f"{'phase / reference':<62} {'wall s':>8} {'peak MB':>8} {'ratio':>7}  target",
        ]
        for phase in self.phases:
            lines.extend(phase.lines())
        lines.append("")
        if self.naive:
            lines.extend(self.memory_lines())
        lines.append(f"(whole benchmark: {time.perf_counter() - started:.0f} s)")
        return "\n".join(lines)


def scaling(sizes: list[int], fmt: str, root: Path) -> str:
    """Build, create and collate at each size against their floors; then time per row and peak memory."""
    runs: list[Benchmark] = []
    reports = []
    for rows in sizes:
        work = root / f"scaling-{rows}-{fmt}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        bench = Benchmark(rows, fmt, work, naive=False)
        reports.append(bench.run())
        print(reports[-1] + "\n", flush=True)  # each size as soon as it is measured: the largest takes long
        runs.append(bench)
        progress(f"{rows:,} rows done; removing its files")
        shutil.rmtree(work, ignore_errors=True)  # the next size needs the disk
    first = runs[0]
    lines = [f"scaling from {first.rows:,} rows ({fmt}); time per row and peak memory against it"]
    lines.append(f"{'rows':>12} {'phase':<28} {'wall s':>8} {'floor s':>8} {'ratio':>6} {'us/row':>7} "
                 f"{'x/row':>6} {'peak MB':>8} {'x peak':>7}")
    for bench in runs:
        for phase, base in zip(bench.phases, first.phases, strict=True):
            floor = phase.references[0][1]
            per_row = phase.tool.wall / bench.rows * 1e6
            base_per_row = base.tool.wall / first.rows * 1e6
            lines.append(
                f"{bench.rows:>12,} {phase.name.split(': ')[-1]:<28} {phase.tool.wall:>8.1f} {floor:>8.1f} "
                f"{phase.tool.wall / floor:>5.2f}x {per_row:>7.1f} {per_row / base_per_row:>5.2f}x "
                f"{phase.tool.peak_mb:>8.0f} {phase.tool.peak_mb / base.tool.peak_mb:>6.2f}x"
            )
    lines.append(f"targets: peak memory <= {FLAT_MEMORY_TARGET:g}x of its figure at {first.rows:,} rows for create "
                 "and collate; build and collate within 1.2x of the floor")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, for a fast check")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="format of the input table (default csv)")
    parser.add_argument("--workdir", type=Path, help="scratch folder, kept afterwards (default: a temporary one)")
    parser.add_argument(
        "--scaling", action="store_true", help="build, create and collate at 100,000 and 1,000,000 rows, and the growth"
    )
    parser.add_argument(
        "--ten-million", action="store_true", help="with --scaling: 10,000,000 rows too (half an hour, 60 GB of disk)"
    )
    args = parser.parse_args()
    if args.scaling:
        sizes = [*SCALING_ROWS, *([TEN_MILLION] if args.ten_million else [])]
        if args.workdir:
            print(scaling(sizes, args.format, args.workdir.resolve()))
            return
        with tempfile.TemporaryDirectory(prefix="million-rows-") as scratch:
            print(scaling(sizes, args.format, Path(scratch)))
        return
    rows = QUICK_ROWS if args.quick else args.rows
    if args.workdir:
        work = args.workdir.resolve() / f"million-rows-{rows}-{args.format}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        print(Benchmark(rows, args.format, work).run())
        return
    with tempfile.TemporaryDirectory(prefix="million-rows-") as scratch:
        print(Benchmark(rows, args.format, Path(scratch)).run())


if __name__ == "__main__":
    main()
