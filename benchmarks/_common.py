"""What the benchmarks share: a reproducible input table, the local backend as its own process, a
config for a run, and each command run as a separate process with its wall time and peak memory.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openai
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

PYTHON = sys.executable
BENCHMARKS = Path(__file__).resolve().parent
MODEL_PARAMS = {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 50}
PROMPT = "Classify the sentiment of the review as positive, negative or neutral, and say why in one sentence."
IMAGE_SHARE = 0.05
CONTENT_CHARS = 300
FORMATS = ("csv", "parquet", "jsonl")
# Some words need quoting in a CSV (commas, quotes) or more than one byte in UTF-8.
EXTRA_WORDS = ["café", "naïve", "Zürich", "déjà-vu", "東京", "emoji🙂", '"quoted"', "a,b", "it's"]
TERMINAL = {"completed", "failed", "expired", "cancelled"}


# -- the input table ---------------------------------------------------------------------------


def table_columns(rows: int, *, seed: int = 1) -> dict[str, list[Any]]:
    """`rows` rows of id, content (~300 characters of words) and image (a URL on ~5% of rows, else None).

    The same `rows` and `seed` always give the same table. Contents are slices of one long random text
    at random offsets, so making a million of them takes a second.
    """
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, size=rng.integers(2, 10))) for _ in range(3000)] + EXTRA_WORDS
    text = " ".join(rng.choice(np.array(words, dtype=object), size=400_000).tolist()) + "."
    lengths = rng.integers(CONTENT_CHARS - 50, CONTENT_CHARS + 51, size=rows)
    starts = rng.integers(0, len(text) - CONTENT_CHARS - 51, size=rows)
    with_image = rng.random(rows) < IMAGE_SHARE
    return {
        "id": [f"row-{i:07d}" for i in range(rows)],
        "content": [text[start : start + n] for start, n in zip(starts.tolist(), lengths.tolist(), strict=True)],
        "image": [f"https://images.example.com/{seed}/{i}.jpg" if has else None for i, has in enumerate(with_image)],
    }


def write_input_table(path: Path, rows: int, *, seed: int = 1) -> Path:
    """Write the table of `table_columns` in the format `path`'s extension names (.csv, .parquet, .jsonl)."""
    columns = table_columns(rows, seed=seed)
    fmt = path.suffix.lstrip(".")
    if fmt == "jsonl":
        dumps = orjson.dumps
        with open(path, "wb") as fh:
            for row_id, content, image in zip(columns["id"], columns["content"], columns["image"], strict=True):
                fh.write(dumps({"id": row_id, "content": content, "image": image}) + b"\n")
        return path
    table = pa.table({name: pa.array(values, type=pa.string()) for name, values in columns.items()})
    if fmt == "csv":
        # CSV has no nulls: an image-less row has an empty cell.
        table = table.set_column(2, "image", pa.array([image or "" for image in columns["image"]], pa.string()))
        pacsv.write_csv(table, path)
    elif fmt == "parquet":
        pq.write_table(table, path)
    else:
        raise ValueError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    return path


# -- one process, measured ---------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    wall: float  # seconds
    peak_mb: float  # the process's peak resident memory (ru_maxrss), in MB
    stdout: str
    cpu: float = 0.0  # user + system seconds of the process (less sensitive than wall to a loaded machine)


# Linux keeps a process's peak RSS across exec, so a process forked from a big one (this benchmark)
# would report at least the benchmark's own size. A small launcher process forks the measured one
# instead and reports its wall time and peak RSS.
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as fh:
    json.dump({"wall": wall, "maxrss": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}, fh)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(args: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> Measurement:
    """Run a process to its end; its wall time and its own peak RSS (ru_maxrss from wait4).

    Files written before it (a table of gigabytes, the last process's task files) are flushed to disk
    first: the kernel writes them back in the background, and a process measured meanwhile would
    share the disk with that, and the one measured after it would not.
    """
    if hasattr(os, "sync"):
        os.sync()
    with tempfile.TemporaryDirectory() as scratch:
        figures = Path(scratch) / "figures.json"
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            code = subprocess.call(
                [PYTHON, "-c", LAUNCHER, str(figures), *args], cwd=cwd, env=env, stdout=stdout, stderr=stderr
            )
        text = out.read_text(errors="replace")
        if code != 0:
            raise RuntimeError(f"{' '.join(args)} exited with {code}:\n{text}\n{err.read_text(errors='replace')}")
        measured = json.loads(figures.read_text())
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    peak = measured["maxrss"] / (1 << 20 if sys.platform == "darwin" else 1 << 10)
    return Measurement(wall=measured["wall"], peak_mb=peak, stdout=text, cpu=measured["cpu"])


def command(name: str, config: Path, *extra: str) -> list[str]:
    """A console script of the package as a process, e.g. command("create-batch", config, "--dry-run")."""
    module = {
        "create-batch": "create_batch",
        "status-jobs": "status_jobs",
        "collate-output": "collate_output",
        "delete-tasks": "delete_tasks",
    }[name]
    return [PYTHON, "-m", f"openai_batch_api.commands.{module}", "--config", str(config), *extra]


# Compiled bytecode of the measured processes, kept between runs as an installed package keeps it
# (pip compiles it at install); outside the source tree, and also where PYTHONDONTWRITEBYTECODE is set.
PYCACHE = Path(tempfile.gettempdir()) / "openai-batch-api-benchmarks-pycache"


def child_env() -> dict[str, str]:
    """The environment of the measured processes: a key for the local backend, and bytecode kept."""
    env = {**os.environ, "OPENAI_API_KEY": "local", "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# -- the local backend as its own process -------------------------------------------------------


@contextmanager
def local_backend(state_dir: Path, *options: str) -> Iterator[str]:
    """Run `python -m openai_batch_api.local_server` on a free port; yields its base URL.

    A separate process, so its CPU and memory are not counted in the figures of the process measured
    (both still share the machine's cores).
    """
    args = [PYTHON, "-m", "openai_batch_api.local_server", "--port", "0", "--state-dir", str(state_dir), *options]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        found = re.search(r"https?://\S+", line)
        if not found:
            raise RuntimeError(f"the local backend did not start: {line!r}")
        yield found.group(0)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="local", max_retries=2)


def wait_until_idle(base_url: str, *, timeout: float = 3600) -> None:
    """Return when no batch on the server is still running."""
    deadline = time.monotonic() + timeout
    with sdk(base_url) as client:
        while time.monotonic() < deadline:
            if all(batch.status in TERMINAL for batch in client.batches.list(limit=100)):
                return
            time.sleep(0.5)
    raise TimeoutError(f"batches on {base_url} still running after {timeout:g} s")


# -- a run's config ----------------------------------------------------------------------------


def write_config(
    path: Path,
    *,
    input_file: Path,
    data_path: Path,
    output_file: Path,
    base_url: str | None,
    **extra: Any,
) -> Path:
    config = {
        "input_file": str(input_file),
        "id_column": "id",
        "content_column": "content",
        "image_url_column": "image",
        "prompt": PROMPT,
        "model_params": MODEL_PARAMS,
        "output_file": str(output_file),
        "data_path": str(data_path),
        **({"base_url": base_url} if base_url else {}),
        **extra,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def machine() -> str:
    """One line on the machine the figures come from."""
    model = platform.processor() or "unknown CPU"
    memory = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / (1 << 20):.1f} GB memory"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}){memory}, Python {platform.python_version()}, {platform.system()}"
