"""How quickly the commands start: `create-batch --help`, and `status-jobs` on a finished small run.

`create-batch --help` imports no SDK, pandas or pyarrow, so it is measured against the start of
`python -c "import argparse"` (target: within 8x). `status-jobs` on a finished run of 3 batches
talks to the local backend (its own process) and is measured in seconds (target: within 1 s).
Each figure is the median of several runs, each its own process.

    python benchmarks/cli_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PYTHON,
    child_env,
    local_backend,
    machine,
    run_measured,
    wait_until_idle,
    write_config,
    write_input_table,
)

ROWS, BATCH_SIZE = 12, 4  # three batches
TARGET_HELP_RATIO, TARGET_STATUS_SECONDS = 8.0, 1.0


def console_script(name: str) -> str:
    script = shutil.which(name, path=str(Path(PYTHON).parent))
    if script is None:
        sys.exit(f"{name} is not installed beside {PYTHON}: pip install -e . first")
    return script


def median_wall(args: list[str], *, runs: int, cwd: Path | None = None) -> float:
    return statistics.median(run_measured(args, cwd=cwd, env=child_env()).wall for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each measurement (the median is shown)")
    args = parser.parse_args()

    reference = median_wall([PYTHON, "-c", "import argparse"], runs=args.runs)
    help_wall = median_wall([console_script("create-batch"), "--help"], runs=args.runs)

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with local_backend(work / "server") as url:
            config = write_config(
                work / "config.yaml",
                input_file=write_input_table(work / "input.csv", ROWS),
                data_path=work / "data",
                output_file=work / "output.parquet",
                base_url=url,
                batch_size=BATCH_SIZE,
            )
            status = [console_script("status-jobs"), "--config", str(config)]
            run_measured([console_script("create-batch"), "--config", str(config)], cwd=work, env=child_env())
            wait_until_idle(url)
            run_measured(status, cwd=work, env=child_env())  # learns that the batches finished
            status_wall = median_wall(status, runs=args.runs, cwd=work)

    ratio = help_wall / reference
    print(machine())
    print(f"python -c 'import argparse': {reference:.3f} s (median of {args.runs})")
    print(
        f"create-batch --help: {help_wall:.3f} s, {ratio:.2f}x the reference "
        f"(target within {TARGET_HELP_RATIO:g}x: {'met' if ratio <= TARGET_HELP_RATIO else 'NOT met'})"
    )
    print(
        f"status-jobs on a finished run of 3 batches: {status_wall:.3f} s "
        f"(target within {TARGET_STATUS_SECONDS:g} s: {'met' if status_wall <= TARGET_STATUS_SECONDS else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
