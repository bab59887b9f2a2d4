"""What a run was made from, kept beside its state, so that a refusal can name what changed.

The run keeps hashes of its table and of the request settings (`input_sha256`, `request_sha256`):
enough to refuse a changed input, not to say what changed. At create the settings themselves and
the table's columns are saved in the run's database too (a table of their own, which runs made by
earlier versions lack: their refusals list what may have changed).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ..config import Config

TABLE = "inputs"
# Values longer than this are named, not quoted (a prompt, a JSON schema).
MAX_SHOWN = 40
UNSET = object()


def table_columns(config: Config) -> list[str] | None:
    """The input table's columns where its header says them cheaply (CSV, Parquet), else None."""
    from ..files.table import input_format, iter_input_chunks

    if input_format(config.input_file) not in ("CSV", "Parquet"):
        return None  # a pickle or JSONL file would be read whole again for its column names
    columns: list[str] = []
    try:
        chunks = iter_input_chunks(config.input_file, columns=[config.id_column], chunk_rows=1, all_columns=columns)
        next(iter(chunks), None)
        chunks.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - only what a later refusal can say: the run does not depend on it
        return None
    return columns


def current_table(config: Config, path: Path) -> tuple[int, list[str]]:
    """The row count and columns of the table at `path`, read now (only when a run was refused)."""
    from ..files.table import iter_input_chunks

    if path != config.input_file:
        # A table batch() is about to save, under a temporary name: a Parquet file, whose footer says both.
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        return parquet.metadata.num_rows, parquet.schema_arrow.names
    columns: list[str] = []
    rows = sum(
        len(chunk[config.id_column])
        for chunk in iter_input_chunks(path, columns=[config.id_column], all_columns=columns)
    )
    return rows, columns


def record_inputs(db: sqlite3.Connection, config: Config, *, shape: dict[str, Any]) -> None:
    """Save the request settings and the table's columns in the run's database (in a step's transaction)."""
    inputs = {"request": shape, "columns": table_columns(config)}
    db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), inputs TEXT NOT NULL)")
    db.execute(f"INSERT OR REPLACE INTO {TABLE} (id, inputs) VALUES (1, ?)", (json.dumps(inputs, default=str),))


def recorded_inputs(database: Path) -> dict[str, Any] | None:
    """The inputs saved at create, or None (a run of an earlier version, or a database that cannot say)."""
    try:
        db = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute(f"SELECT inputs FROM {TABLE} WHERE id = 1").fetchone()
        finally:
            db.close()
        return json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError, OSError):
        return None


def _shown(value: Any) -> str:
    if value is UNSET:
        return "unset"
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= MAX_SHOWN and "\n" not in text else ""


def _change(name: str, new: Any, old: Any) -> str:
    """`batch_size 10 (was 4)`; a long value is only named (`prompt`)."""
    shown_new, shown_old = _shown(new), _shown(old)
    if not shown_new or not shown_old:
        return name
    return f"{name} {shown_new} (was {shown_old})"


def request_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two request settings, model_params field by field."""
    changes = []
    for key in dict.fromkeys([*new, *old]):
        before, after = old.get(key, UNSET), new.get(key, UNSET)
        if before == after:
            continue
        if key == "model_params" and isinstance(before, dict) and isinstance(after, dict):
            for field in dict.fromkeys([*after, *before]):
                was, now = before.get(field, UNSET), after.get(field, UNSET)
                if was != now:
                    changes.append(_change(f"model_params.{field}", now, was))
        else:
            changes.append(_change(key, after, before))
    return changes


def table_changes(config: Config, path: Path, *, old_rows: int, old_columns: list[str] | None) -> list[str]:
    """What differs in the table at `path` from the run's: its rows' count and its columns, or else its cells."""
    name = getattr(config.input_file, "name", str(config.input_file))
    try:
        rows, columns = current_table(config, path)
    except Exception:  # noqa: BLE001 - the table cannot be read now: say only that it changed
        return [f"the table {name}"]
    changes = []
    if old_columns is not None and old_columns != columns:
        added = [c for c in columns if c not in old_columns]
        removed = [c for c in old_columns if c not in columns]
        parts = [f"{', '.join(added)} added"] if added else []
        parts += [f"{', '.join(removed)} removed"] if removed else []
        changes.append(f"columns of {name}: {'; '.join(parts) or 'their order'}")
    if rows != old_rows:
        changes.append(f"rows of {name}: {rows} (was {old_rows})")
    return changes or [f"the cells of {name}"]
