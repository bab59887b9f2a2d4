"""Reading the input table (CSV, pickle, Parquet or JSONL, chosen by extension), whole or in chunks.

The table may be a local file, a folder or glob of Parquet files (one table, its files in sorted
order), or either in object storage (an s3://, gs:// or az:// URL, read through `storage`).

Ids keep exactly the text they have in the file: CSV cells are read as text (empty cells as "", never
NaN), and ids in typed formats go through str() on their original values, so `1` stays `1`.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import math
import pickle
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import BatchToolError, InputError
from . import storage
from .storage import Location, ObjectUrl

if TYPE_CHECKING:
    import pandas as pd

# extension -> format name used in messages
FORMATS = {".csv": "CSV", ".pkl": "pickle", ".pickle": "pickle", ".parquet": "Parquet", ".jsonl": "JSONL"}
CHUNK_ROWS = 20_000
# pyarrow parses CSV in blocks and reads dozens of blocks ahead, so small blocks keep memory flat. A row
# longer than a block makes pyarrow fail: the file is then read again with blocks 8 times larger.
CSV_BLOCK_BYTES = 1 << 20
CSV_MAX_BLOCK_BYTES = 1 << 30
# Parquet pages are read as they are needed: by default pyarrow first loads a whole row group, and a
# file written in one go (pandas.to_parquet) holds up to a million rows in one.
PARQUET_BUFFER_BYTES = 1 << 20
MAX_LISTED_COLUMNS = 20

Chunk = dict[str, list[Any]]  # column -> its values in this chunk; every list has the same length
# orjson reads an integer outside 64 bits as a float, which loses its digits: such a line is read again.
EXACT_INT_LIMIT = 2**63
FIRST_ROWS_LISTED = 5


@dataclass
class LineBreakCells:
    """CSV cells holding a line break: legal in a quoted cell, and also what a quote left open makes."""

    count: int = 0
    first_rows: list[int] = field(default_factory=list)  # 1-based data rows, the header not counted

    def add_batch(self, batch: pa.RecordBatch, columns: Sequence[str], *, first_row: int) -> None:
        searched = [column for column in (batch.column(name) for name in columns) if _may_hold_line_break(column)]
        if not searched:
            return  # nearly every block: neither byte is in its text
        import pyarrow.compute as pc  # a tenth of a second to import: only for a block that needs it

        spans = None
        for column in searched:
            # Empty cells match as null: sum and indices_nonzero skip them, or_kleene keeps a true.
            # (fill_null would make a scalar, which imports pandas.)
            found = pc.match_substring_regex(column, "[\r\n]")
            self.count += pc.sum(found).as_py() or 0
            spans = found if spans is None else pc.or_kleene(spans, found)
        if spans is not None and len(self.first_rows) < FIRST_ROWS_LISTED:
            rows = pc.indices_nonzero(spans)[: FIRST_ROWS_LISTED - len(self.first_rows)].to_pylist()
            self.first_rows.extend(first_row + index for index in rows)


def _may_hold_line_break(column: pa.Array) -> bool:
    """False when no cell of a text column can hold a line break: its bytes hold none (the regex per cell is
    slower than reading the block, and nearly every block has none); True for any other column."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return True
    data = column.buffers()[2]
    if data is None:
        return False  # every cell empty or null
    text = memoryview(data).tobytes()  # the bytes of the cells (a slice's neighbours too: a false alarm at most)
    return b"\n" in text or b"\r" in text


def is_missing(value: Any) -> bool:
    """Whether a cell is empty in the typed formats' sense: None, NaN, pd.NA or NaT."""
    if value is None:
        return True
    # pandas is imported only by the steps that need it (create-batch reads with pyarrow): a cell
    # can be pd.NA or NaT only when pandas made it.
    pd = sys.modules.get("pandas")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def id_text(value: Any) -> str:
    """The text of an id cell: strings as they are, other values through str(), missing cells as ""."""
    if isinstance(value, str):
        return value
    if is_missing(value):
        return ""
    return str(value)


def is_dataset(path: Location) -> bool:
    """Whether `path` names a folder or a glob of Parquet files rather than one file."""
    return (storage.has_glob(path) and not storage.exists(path)) or storage.is_folder(path)


def input_format(path: Location) -> str:
    """The format named by `path`'s extension: "CSV", "pickle", "Parquet" or "JSONL" (a dataset is Parquet)."""
    if is_dataset(path):
        return "Parquet"
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        got = f"extension '{path.suffix}'" if path.suffix else "no extension"
        raise InputError(
            f"{path}: unknown input format ({got}); input_file must end in .csv, .pkl, .pickle, .parquet or .jsonl"
        )
    return fmt


def _check_is_file(path: Location) -> None:
    if is_dataset(path):
        if not storage.dataset_files(path):
            raise InputError(
                f"{path}: holds no .parquet files; input_file must name a table file, or a folder or glob of "
                "Parquet files"
            )
        return
    if not storage.exists(path):
        raise InputError(f"{path}: no such input file; fix input_file in the config")


def input_digest(path: Location) -> str:
    """A digest that changes when the table does: of a local file's bytes (of each file of a local dataset,
    with its name), or of an object's key, size and ETag in object storage (see storage.fingerprint)."""
    dataset = is_dataset(path)
    files = storage.dataset_files(path) if dataset else [path]
    if isinstance(path, ObjectUrl):
        return storage.fingerprint(path, files)
    if not dataset:
        return _file_sha256(path)
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{Path(file).relative_to(_dataset_root(path))}\n{_file_sha256(Path(file))}\n".encode())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _dataset_root(path: Location) -> Location:
    """The folder a dataset's files are named from: the folder itself, or the one before a glob's first pattern."""
    if not storage.has_glob(path):
        return path
    if isinstance(path, ObjectUrl):
        return path.with_key(storage.folder_before_glob(path.key))
    parts = []
    for part in Path(path).parts:
        if any(character in part for character in storage.GLOB_CHARACTERS):
            break
        parts.append(part)
    return Path(*parts)


def _parquet_batches(
    path: Location, *, columns: Sequence[str] | None = None, batch_size: int = CHUNK_ROWS
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The Parquet table's schema, and its record batches in order, read a page at a time.

    A dataset's files are read one after another in sorted order, its columns those of the first file
    plus the folders' `key=value` partitions.
    """
    if not is_dataset(path):
        parquet = pq.ParquetFile(storage.arrow_source(path), pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
        return parquet.schema_arrow, parquet.iter_batches(batch_size=batch_size, columns=columns)
    import pyarrow.dataset as ds

    files = storage.dataset_files(path)
    root = _dataset_root(path)
    if isinstance(path, ObjectUrl):
        store = storage.filesystem(path)
        dataset = ds.dataset(
            [storage.path_in_store(f) for f in files],  # type: ignore[arg-type]
            filesystem=store,
            format="parquet",
            partitioning="hive",
            partition_base_dir=storage.path_in_store(root),  # type: ignore[arg-type]
        )
    else:
        dataset = ds.dataset(
            [str(f) for f in files], format="parquet", partitioning="hive", partition_base_dir=str(root)
        )
    options = ds.ParquetFragmentScanOptions(
        pre_buffer=False, use_buffered_stream=True, buffer_size=PARQUET_BUFFER_BYTES
    )
    schema = dataset.schema

    def batches() -> Iterator[pa.RecordBatch]:
        for fragment in dataset.get_fragments():  # in the order of `files`
            yield from fragment.to_batches(
                schema=schema, columns=columns, batch_size=batch_size, fragment_scan_options=options
            )

    return schema, batches()


@contextmanager
def _reading(path: Path, fmt: str) -> Iterator[None]:
    """Turn the many ways a broken file fails into one line naming the file and the fix."""
    try:
        yield
    except (BatchToolError, MemoryError):
        raise
    except PermissionError:
        raise InputError(f"{path}: cannot read the input (permission denied); check its permissions") from None
    except Exception as exc:  # pickle alone can raise anything a module import can
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        detail = lines[0] if len(lines[0]) <= 200 else lines[0][:200] + "..."
        raise InputError(
            f"{path}: cannot read it as {fmt} ({detail}); fix the file, or give it the extension of the format it is in"
        ) from None


def _closest(name: str, available: Sequence[str]) -> str | None:
    for candidate in available:
        if candidate.casefold() == name.casefold():
            return candidate
    # A high cutoff: a loose match ('text' -> 'extra') points at the wrong column with confidence.
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.8)
    return close[0] if close else None


def _check_columns(
    path: Path | str,
    available: Sequence[str],
    columns: Sequence[str],
    column_keys: Mapping[str, str],
    *,
    keywords: bool = False,
) -> None:
    """Raise naming every missing column, the config key that names it and its closest match.

    With `keywords`, the columns were named by a function's keyword arguments (`batch()`), not a config file.
    """
    missing = [column for column in columns if column not in available]
    if not missing:
        return
    parts = []
    for column in missing:
        details = []
        if column in column_keys:
            key = column_keys[column]
            details.append((f"named by {key}" if key.isidentifier() else key) if keywords else f"{key} in the config")
        close = _closest(column, available)
        if close is not None:
            details.append(f"did you mean '{close}'?")
        parts.append(f"no column '{column}'" + (f" ({', '.join(details)})" if details else ""))
    listed = ", ".join(f"'{name}'" for name in available[:MAX_LISTED_COLUMNS])
    if len(available) > MAX_LISTED_COLUMNS:
        listed += f" and {len(available) - MAX_LISTED_COLUMNS} more"
    what = "the table" if keywords else "the file"
    has = f"{what} has columns {listed}" if available else f"{what} has no columns"
    fix = "fix the keyword argument" if keywords else "fix the config"
    raise InputError(f"{path}: {'; '.join(parts)}; {has}: {fix} or rename the column")


def check_named_columns(label: str, available: Sequence[str], column_keys: Mapping[str, str]) -> None:
    """Raise, naming the keyword arguments, when a table given from Python lacks a column they name."""
    _check_columns(label, available, list(column_keys), column_keys, keywords=True)


def check_unique_columns(path: Path | str, names: Sequence[Any]) -> None:
    """Raise naming the columns that appear more than once: a repeated name would send one, collate another."""
    counts: dict[str, int] = {}
    for name in names:
        counts[str(name)] = counts.get(str(name), 0) + 1
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        listed = ", ".join(f"'{name}'" for name in repeated)
        noun = "column" if len(repeated) == 1 else "columns"
        raise InputError(
            f"{path}: the {noun} {listed} appear{'s' if len(repeated) == 1 else ''} more than once; "
            "give every column its own name"
        )


def _csv_header(path: Path) -> list[str]:
    with _reading(path, "CSV"), io.TextIOWrapper(storage.open_input(path), encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise InputError(f"{path}: the file is empty; a CSV input needs a header row naming its columns")
    check_unique_columns(path, header)
    return header


def _csv_options(header: Sequence[str], *, block_size: int, include: Sequence[str] | None = None) -> dict[str, Any]:
    """pyarrow options that read every cell as text: empty cells "" (not null), quoted newlines kept."""
    return {
        "read_options": pacsv.ReadOptions(block_size=block_size),
        "parse_options": pacsv.ParseOptions(newlines_in_values=True),
        "convert_options": pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=False,
            include_columns=list(include) if include is not None else None,
        ),
    }


def _is_row_longer_than_block(exc: Exception, block_size: int) -> bool:
    return isinstance(exc, pa.ArrowInvalid) and "straddl" in str(exc) and block_size < CSV_MAX_BLOCK_BYTES


def _read_csv(path: Path) -> pa.Table:
    header = _csv_header(path)
    block_size = CSV_BLOCK_BYTES
    while True:
        try:
            return pacsv.read_csv(storage.arrow_source(path), **_csv_options(header, block_size=block_size))
        except pa.ArrowInvalid as exc:
            if not _is_row_longer_than_block(exc, block_size):
                raise
            block_size *= 8


def _jsonl_records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-blank line."""
    with _reading(path, "JSONL"), storage.open_input(path) as f:
        for line_number, line in enumerate(f, 1):
            if line_number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            try:
                record = orjson.loads(line.rstrip(b"\r\n"))
                if isinstance(record, dict) and _has_inexact_number(record):
                    record = json.loads(line, parse_int=int)  # Python ints keep every digit
            except orjson.JSONDecodeError as exc:
                raise InputError(
                    f"{path}: line {line_number} is not valid JSON ({exc.msg} at column {exc.colno}); "
                    "each line must hold one JSON object"
                ) from None
            if not isinstance(record, dict):
                raise InputError(
                    f"{path}: line {line_number} holds a JSON {type(record).__name__}, not an object; "
                    "each line must hold one JSON object of column: value"
                )
            yield record


def _has_inexact_number(record: dict[str, Any]) -> bool:
    """Whether a top-level value may be an integer orjson read as a float, losing digits (an id's text)."""
    for value in record.values():
        if type(value) is float and abs(value) >= EXACT_INT_LIMIT and value.is_integer():
            return True
    return False


def _load_pickle(path: Path) -> pd.DataFrame:
    import pandas as pd

    with _reading(path, "pickle"), storage.open_input(path) as f:
        table = pickle.load(f)
    if not isinstance(table, pd.DataFrame):
        raise InputError(
            f"{path}: the pickle holds a {type(table).__name__}, not a pandas DataFrame; "
            "save the table with DataFrame.to_pickle"
        )
    check_unique_columns(path, list(table.columns))
    return table


def _read_jsonl(path: Path, raw_ids: list[Any] | None = None, id_column: str = "") -> pd.DataFrame:
    """The JSONL table, as pandas makes it of the list of every record, built a slice of records at a time.

    `raw_ids` gets each record's `id_column` value as the file has it (pandas would make 1 and 1.0 both
    1.0 in a float column).

    A million records as dicts take about four times the memory of the frame pandas makes of them.
    Each slice infers its columns' types from its own rows: where the slices disagree (a column empty
    throughout one slice, numbers in one and text in another), only the whole column can say, so the
    file is read again the plain way.
    """
    import pandas as pd

    records = _jsonl_records(path)
    slices = []
    while chunk := list(islice(records, CHUNK_ROWS)):
        if raw_ids is not None:
            raw_ids.extend(record.get(id_column) for record in chunk)
        slices.append(pd.DataFrame(chunk))
    if len(slices) <= 1:
        return slices[0] if slices else pd.DataFrame()
    if all(part.dtypes.equals(slices[0].dtypes) for part in slices):
        return pd.concat(slices, ignore_index=True)
    del slices
    return pd.DataFrame(list(_jsonl_records(path)))


def _frame_column(path: Path, table: pd.DataFrame, column: str, key: str) -> Any:
    """The label of `column` in a DataFrame whose labels may be non-strings (e.g. 0, 1 from a pickle)."""
    names = [str(label) for label in table.columns]
    _check_columns(path, names, [column], {column: key})
    return table.columns[names.index(column)]


def read_input_table(path: Path, *, id_column: str | None = None) -> pd.DataFrame:
    """The whole input table, every column as the file has it (CSV: all text, empty cells "").

    With `id_column`, that column must exist and becomes text: str() of each original value, "" where
    the cell is missing.
    """
    path = as_location(path)
    fmt = input_format(path)
    _check_is_file(path)
    # The id cells as iter_input_chunks gives them to create-batch, where pandas would change them (a
    # Parquet duration, JSONL's 1 beside 1.0): the custom ids are made of these, by id_text, both times.
    raw_ids: list[Any] | None = None
    if fmt == "CSV":
        with _reading(path, fmt):
            table = _read_csv(path).to_pandas()
    elif fmt == "Parquet":
        with _reading(path, fmt):
            if is_dataset(path):
                schema, batches = _parquet_batches(path)
                arrow = pa.Table.from_batches(list(batches), schema=schema)
            else:
                arrow = pq.read_table(storage.arrow_source(path), pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
            check_unique_columns(path, arrow.column_names)
            raw_ids = _raw_ids(arrow, id_column)
            table = arrow.to_pandas()
            del arrow
    elif fmt == "pickle":
        table = _load_pickle(path)
    else:
        raw_ids = [] if id_column is not None else None
        table = _read_jsonl(path, raw_ids, id_column or "")
    if id_column is not None:
        _ids_as_text(path, table, id_column, raw_ids)
    return table


# The formats whose id cells have a type of their own, which the collated table gives back.
_TYPED = ("Parquet", "pickle")


def typed_id_column(path: Location, *, id_column: str) -> pd.Series | None:
    """The id column as a typed format holds it (Parquet, pickle: int64 stays int64), by position; else None.

    The run matches rows by the ids' text (their custom_id); the collated table gives the column back
    in the input's own dtype, so it joins back onto the caller's. CSV ids are text already; JSONL ids
    stay their text, since pandas would read `1` and `1.0` as one float. Only the id column of a
    Parquet table is read again; a pickle is loaded again whole.
    """
    path = as_location(path)
    fmt = input_format(path)
    if fmt == "pickle":
        table = _load_pickle(path)  # type: ignore[arg-type]
        return table[_frame_column(path, table, id_column, "id_column")].reset_index(drop=True)
    if fmt not in _TYPED:
        return None
    with _reading(path, fmt):
        schema, batches = _parquet_batches(path, columns=[id_column])
        field = pa.schema([schema.field(id_column)], metadata=schema.metadata)
        table = pa.Table.from_batches(list(batches), schema=field)
        return table.to_pandas()[id_column]


def as_location(path: Location | str) -> Location:
    """A table's place: an ObjectUrl for an object store's URL, else a local Path."""
    if isinstance(path, ObjectUrl):
        return path
    return ObjectUrl(path) if storage.is_url(path) else Path(path)


def _raw_ids(table: pa.Table, id_column: str | None) -> list[Any] | None:
    """The id cells of a Parquet table as iter_input_chunks gives them to create-batch (pandas would change
    some: a duration becomes a Timedelta), or None when the table has no such column."""
    if id_column is None or id_column not in table.column_names:
        return None
    return table.column(id_column).to_pylist()


def _ids_as_text(path: Path, table: pd.DataFrame, id_column: str, raw_ids: list[Any] | None = None) -> None:
    """Make `id_column` of `table` text in place: str() of each original value, "" where the cell is missing.

    `raw_ids` are the cells as create-batch read them, where pandas would read them otherwise (JSONL's 1
    beside 1.0, a Parquet duration): the custom ids are made of these, by id_text, both times.
    """
    import pandas as pd

    label = _frame_column(path, table, id_column, "id_column")
    column = table[label]
    if raw_ids is not None:
        table[label] = pd.Series([id_text(value) for value in raw_ids], index=table.index, dtype=str)
    elif isinstance(column.dtype, pd.StringDtype):
        # Already text (a CSV read by pandas 3, a string column): only missing cells change. Going
        # through id_text would make a Python string of every id, seconds at a million rows.
        table[label] = column.fillna("").astype(str)
    else:
        table[label] = pd.Series([id_text(value) for value in column.tolist()], index=table.index, dtype=str)


def iter_input_frames(path: Path, *, id_column: str, sizes: Sequence[int]) -> Iterator[pd.DataFrame]:
    """The whole input table as DataFrames of consecutive rows, `sizes[0]` rows, then `sizes[1]`, ...

    Every column is read as read_input_table reads it, and `id_column` becomes text. Rows left after
    the last size come as one more frame; a table shorter than the sizes ends early. CSV, JSONL and
    Parquet are streamed, so memory follows the largest size, not the table; a pickle is loaded whole.
    Each frame's index continues the previous one's (0, 1, ... over the table), except a pickle's or
    a Parquet file's own index, which is kept.
    """
    for frame, _ in iter_frames_with_typed_ids(path, id_column=id_column, sizes=sizes):
        yield frame


def iter_frames_with_typed_ids(
    path: Path, *, id_column: str, sizes: Sequence[int]
) -> Iterator[tuple[pd.DataFrame, pd.Series | None]]:
    """As iter_input_frames, each frame with its id column as typed_id_column gives it (None for CSV, JSONL).

    The typed ids come with their frame, so a Parquet table's are never read whole.
    """
    import pandas as pd

    path = as_location(path)
    fmt = input_format(path)
    _check_is_file(path)
    # Each frame with its id cells as create-batch read them, where pandas reads them otherwise.
    if fmt == "pickle":
        frames: Iterator[tuple[pd.DataFrame, list[Any] | None]] = ((f, None) for f in _pickle_frames(path, sizes))
    elif fmt == "JSONL":
        frames = _jsonl_frames(path, sizes, id_column)
    else:
        raw = fmt == "Parquet"  # CSV cells are text both times
        frames = (
            (table.to_pandas(), _raw_ids(table, id_column) if raw else None)
            for table in _sized_tables(path, fmt, sizes)
        )
    offset = 0
    with _reading(path, fmt):
        for frame, raw_ids in frames:
            if fmt != "pickle" and isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0:
                frame.index = pd.RangeIndex(offset, offset + len(frame))
            offset += len(frame)
            typed = frame[_frame_column(path, frame, id_column, "id_column")] if fmt in _TYPED else None
            _ids_as_text(path, frame, id_column, raw_ids)  # replaces the column: `typed` keeps the cells as read
            yield frame, typed


def _sizes_then_rest(sizes: Sequence[int]) -> Iterator[int | None]:
    yield from sizes
    yield None  # whatever is left


def _sized_tables(path: Path, fmt: str, sizes: Sequence[int]) -> Iterator[pa.Table]:
    """Arrow tables of `sizes` rows each (then the rest), cut from the file's record batches as they stream."""
    if fmt == "CSV":
        header = _csv_header(path)
        schema = pa.schema([(name, pa.string()) for name in header])
        batches = _csv_batches(path, header)
    else:
        schema, batches = _parquet_batches(path)
        check_unique_columns(path, schema.names)
    buffer: list[pa.RecordBatch] = []
    buffered = 0
    for size in _sizes_then_rest(sizes):
        for batch in batches:
            buffer.append(batch)
            buffered += batch.num_rows
            if size is not None and buffered >= size:
                break
        if not buffered:
            return
        table = pa.Table.from_batches(buffer, schema=schema)
        if size is not None and buffered > size:
            table, rest = table.slice(0, size), table.slice(size)
            buffer, buffered = rest.to_batches(), rest.num_rows
        else:
            buffer, buffered = [], 0
        yield table


def _csv_batches(path: Path, header: list[str]) -> Iterator[pa.RecordBatch]:
    """Every column of the CSV as text, a block at a time; read again with larger blocks when a row is longer."""
    block_size = CSV_BLOCK_BYTES
    rows_done = 0
    while True:
        try:
            skip = rows_done  # after a re-read, the rows already given out
            for batch in pacsv.open_csv(storage.arrow_source(path), **_csv_options(header, block_size=block_size)):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                rows_done += batch.num_rows - skip
                yield batch.slice(skip)
                skip = 0
            return
        except pa.ArrowInvalid as exc:
            if not _is_row_longer_than_block(exc, block_size):
                raise
            block_size *= 8


def _jsonl_frames(path: Path, sizes: Sequence[int], id_column: str) -> Iterator[tuple[pd.DataFrame, list[Any]]]:
    """Frames of the JSONL records, each made by pandas of its own records (their types are its own)."""
    import pandas as pd

    records = _jsonl_records(path)
    for size in _sizes_then_rest(sizes):
        chunk = list(islice(records, size))
        if not chunk:
            return
        yield pd.DataFrame(chunk), [record.get(id_column) for record in chunk]


def _pickle_frames(path: Path, sizes: Sequence[int]) -> Iterator[pd.DataFrame]:
    table = _load_pickle(path)
    start = 0
    for size in _sizes_then_rest(sizes):
        if start >= len(table):
            return
        stop = len(table) if size is None else start + size
        yield table.iloc[start:stop].copy()
        start = stop


def _arrow_chunks(batches: Iterable[pa.RecordBatch], columns: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
    for batch in batches:
        for start in range(0, batch.num_rows, chunk_rows):
            part = batch.slice(start, chunk_rows)
            yield {name: part.column(name).to_pylist() for name in columns}


def _csv_chunks(
    path: Path,
    columns: list[str],
    column_keys: Mapping[str, str],
    chunk_rows: int,
    line_breaks: LineBreakCells | None = None,
    all_columns: list[str] | None = None,
) -> Iterator[Chunk]:
    header = _csv_header(path)
    _check_columns(path, header, columns, column_keys)
    if all_columns is not None:
        all_columns.extend(header)
    block_size = CSV_BLOCK_BYTES
    rows_done = 0
    with _reading(path, "CSV"):
        while True:
            try:
                reader = pacsv.open_csv(
                    storage.arrow_source(path), **_csv_options(header, block_size=block_size, include=columns)
                )
                skip = rows_done  # after a re-read, the rows already given out
                for batch in reader:
                    if skip >= batch.num_rows:
                        skip -= batch.num_rows
                        continue
                    if line_breaks is not None:
                        line_breaks.add_batch(batch.slice(skip), columns, first_row=rows_done + 1)
                    for chunk in _arrow_chunks([batch.slice(skip)], columns, chunk_rows):
                        rows_done += len(chunk[columns[0]])
                        yield chunk
                    skip = 0
                return
            except pa.ArrowInvalid as exc:
                if not _is_row_longer_than_block(exc, block_size):
                    raise
                block_size *= 8


def _parquet_chunks(
    path: Path, columns: list[str], column_keys: Mapping[str, str], chunk_rows: int, all_columns: list[str]
) -> Iterator[Chunk]:
    with _reading(path, "Parquet"):
        schema, _ = _parquet_batches(path, columns=[])
        check_unique_columns(path, schema.names)
        _check_columns(path, schema.names, columns, column_keys)
        all_columns.extend(schema.names)
        _, batches = _parquet_batches(path, columns=columns, batch_size=chunk_rows)
        yield from _arrow_chunks(batches, columns, chunk_rows)


def _pickle_chunks(
    path: Path, columns: list[str], column_keys: Mapping[str, str], chunk_rows: int, all_columns: list[str]
) -> Iterator[Chunk]:
    table = _load_pickle(path)
    names = [str(label) for label in table.columns]
    _check_columns(path, names, columns, column_keys)
    all_columns.extend(names)
    values = {name: table.iloc[:, names.index(name)].tolist() for name in columns}
    del table
    for start in range(0, len(values[columns[0]]), chunk_rows):
        yield {name: column[start : start + chunk_rows] for name, column in values.items()}


def _jsonl_chunks(
    path: Path, columns: list[str], column_keys: Mapping[str, str], chunk_rows: int, all_columns: list[str]
) -> Iterator[Chunk]:
    records: list[dict[str, Any]] = []
    checked = False
    keys: dict[str, None] = {}  # every key of every record, in the order first seen

    def chunk() -> Chunk:
        nonlocal checked
        if not checked:
            # A JSONL file has no header: a column counts as present if any record of the first chunk
            # has it (later records missing a key just have an empty cell).
            seen = list(dict.fromkeys(key for record in records for key in record))
            _check_columns(path, seen, columns, column_keys)
            checked = True
        return {name: [record.get(name) for record in records] for name in columns}

    for record in _jsonl_records(path):
        if not keys.keys() >= record.keys():
            keys.update(dict.fromkeys(record))
        records.append(record)
        if len(records) == chunk_rows:
            yield chunk()
            records = []
    if records:
        yield chunk()
    all_columns.extend(keys)


def iter_input_chunks(
    path: Path,
    *,
    columns: Sequence[str],
    chunk_rows: int = CHUNK_ROWS,
    column_keys: Mapping[str, str] | None = None,
    line_breaks: LineBreakCells | None = None,
    all_columns: list[str] | None = None,
) -> Iterator[Chunk]:
    """Stream `columns` of the input table as chunks of at most `chunk_rows` rows, in file order.

    Each chunk maps a column to a list of its raw values: str for CSV (empty cells ""), the file's own
    Python values for the typed formats (missing ones None or NaN). CSV, JSONL and Parquet are streamed
    so memory does not grow with the row count; a pickle is loaded whole. `column_keys` maps a column to
    the config key that names it, for the message when the column is missing. For a CSV, `line_breaks`
    counts the cells of `columns` that span lines as the chunks are read. `all_columns` gets the name of
    every column of the file (of a JSONL file, once the last chunk is read).
    """
    path = as_location(path)
    fmt = input_format(path)
    _check_is_file(path)
    columns = list(dict.fromkeys(columns))
    if fmt == "CSV":
        return _csv_chunks(path, columns, column_keys or {}, chunk_rows, line_breaks, all_columns)
    read = {"Parquet": _parquet_chunks, "pickle": _pickle_chunks, "JSONL": _jsonl_chunks}[fmt]
    return read(path, columns, column_keys or {}, chunk_rows, all_columns if all_columns is not None else [])
