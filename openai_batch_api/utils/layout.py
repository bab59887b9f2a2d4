"""Every name inside data_path, spelled here once: the run's files and folders, and the scratch folders of steps.

```
data_path/
  run.sqlite3                         the run store (and SQLite's sidecars beside it)
  .lock                               one command at a time on the run
  ledger.json, ledger.json.imported   an old run's state, and the same once imported into the store
  tasks/attempt-N/shard-NNNN.jsonl    each attempt's request files, a line per row
  results/<shard>-<batch>-output.jsonl, <shard>-<batch>-errors.jsonl, pilot-output.jsonl
                                      the downloaded results, and the pilot's answers
  local_backend/                      the local backend's state, for `base_url: local`
  batch_input.parquet                 the table given to batch(), the run's input
  .dry-run-*/ .table-*/ .pilot-*/     a step's scratch folder, removed when it ends
```

Light to import: paths only.
"""

from __future__ import annotations

import re
from pathlib import Path

STORE_NAME = "run.sqlite3"
LOCK_NAME = ".lock"
# A run state of an older version, read once into the store and then kept under the suffix.
LEDGER_NAME = "ledger.json"
IMPORTED_SUFFIX = ".imported"
TASKS_DIR = "tasks"
RESULTS_DIR = "results"
LOCAL_BACKEND_DIR = "local_backend"
# The folders of data_path the tool writes and removes files in (task files, downloaded results, the
# local backend's state): a table or an output file in one of them could be overwritten or deleted.
OWNED_FOLDERS = (TASKS_DIR, RESULTS_DIR, LOCAL_BACKEND_DIR)
# The name a DataFrame given to batch() is saved under in data_path: the run's input file. A name of
# the tool's own, so that a user's `input.parquet` (or any table) in data_path is never the one written.
BATCH_INPUT_NAME = "batch_input.parquet"
# The pilot's answers, as one output file: written from the run store each time the run is collated.
PILOT_RESULTS = "pilot-output.jsonl"
# Scratch folders a step makes in data_path (tempfile prefixes) and removes when it ends: a dry run's
# task files, the table's requests checked against a run's, the requests a pilot sends.
DRY_RUN_PREFIX = ".dry-run-"
TABLE_CHECK_PREFIX = ".table-"
PILOT_PREFIX = ".pilot-"


def store_path(data_path: Path) -> Path:
    return data_path / STORE_NAME


def lock_path(data_path: Path) -> Path:
    return data_path / LOCK_NAME


def legacy_ledger_path(data_path: Path) -> Path:
    return data_path / LEDGER_NAME


def imported_ledger_path(data_path: Path) -> Path:
    return data_path / (LEDGER_NAME + IMPORTED_SUFFIX)


def tasks_dir(data_path: Path) -> Path:
    return data_path / TASKS_DIR


def attempt_dir(data_path: Path, attempt: int) -> Path:
    """The folder of an attempt's request files (below a step's scratch folder too: `data_path` is where)."""
    return tasks_dir(data_path) / f"attempt-{attempt}"


def shard_file_name(index: int) -> str:
    """The request file of shard `index` (from 1) in its attempt's folder."""
    return f"shard-{index:04d}.jsonl"


# Any shard_file_name: the files a rebuild of an attempt's folder may replace.
SHARD_NAME = re.compile(r"shard-[0-9]{4,}\.jsonl")


def results_dir(data_path: Path) -> Path:
    return data_path / RESULTS_DIR


def result_file_path(data_path: Path, shard_key: str, batch_id: str | None, kind: str) -> Path:
    """Where a batch's result file of `kind` ("output" or "errors") lands."""
    return results_dir(data_path) / f"{shard_key}-{batch_id}-{kind}.jsonl"


def pilot_result_path(data_path: Path) -> Path:
    return results_dir(data_path) / PILOT_RESULTS


def local_backend_dir(data_path: Path) -> Path:
    return data_path / LOCAL_BACKEND_DIR
