"""Downloading a run's results and joining them back onto the input rows."""

from __future__ import annotations

import errno
import io
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..answers import result_columns as columns
from ..answers.added_columns import added_columns, answer_format, column_clash_message, result_columns, schema_of
from ..answers.results import (
    FailureGroup,
    expand_structured_answers,
    load_results,
    summarize_failures,
)
from ..config import OUTPUT_FORMATS, Config
from ..endpoints import EMBEDDINGS, MODERATIONS
from ..errors import BatchToolError, ConfigError, with_filename
from ..files import storage
from ..files.atomic_files import atomic_path
from ..files.storage import ObjectUrl
from ..files.table import iter_frames_with_typed_ids, read_input_table, typed_id_column
from ..state.ledger import Ledger, ShardRecord
from .result_files import (  # noqa: F401 - where callers have found them
    RESULT_KINDS,
    RESULTS_DIR,
    download_results,
    finished_result_files,
    result_file_path,
    result_sources,
)

JSONL_SLICE_ROWS = 10_000
# Collate joins the results onto at least this many input rows at a time (several shards when batches
# are small, one shard when they are larger): its memory follows a chunk of rows, not the table.
COLLATE_CHUNK_ROWS = 50_000
# ... and joins them onto the rows, and writes them, at most this many rows at a time (a Parquet row group each).
COLLATE_SLICE_ROWS = 10_000
# What happened to a row that has no line in any result file, by its batch's final status.
UNANSWERED = {
    "failed": ("error", "batch_failed", "the batch failed before this request ran"),
    "expired": ("expired", "batch_expired", "batch_expired: the batch expired before this request ran"),
    "cancelled": (
        "cancelled",
        "batch_cancelled",
        "batch_cancelled: the batch was cancelled before this request ran",
    ),
    "completed": ("error", "no_result", "the batch completed without a result for this request"),
}


def check_output_format(config: Config) -> None:
    if config.output_file is not None and config.output_file.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(
            f"{config.name}: output_file {config.output_file.name} has an unknown format; "
            f"end it with one of {', '.join(OUTPUT_FORMATS)}"
        )


def shard_ids(path: Path) -> list[str]:
    """The custom_ids of a shard file, in order."""
    with open(path, "rb") as fh:
        return [orjson.loads(line)["custom_id"] for line in fh if line.strip()]


def unanswered_outcomes(
    ledger: Ledger,
    data_path: Path,
    *,
    shards: Iterable[ShardRecord] | None = None,
    stale: Mapping[str, Collection[str]] | None = None,
) -> dict[str, tuple[str, str | None, str | None]]:
    """Status, error code and error of rows that may have no result line, from their shards' batches.

    Only shards (of `shards`, by default all the run's) that are unfinished or did not answer every
    row are read; later attempts override earlier ones. A shard's `stale` requests (the table no
    longer asks them) speak for no row.
    """
    outcomes: dict[str, tuple[str, str | None, str | None]] = {}
    for shard in sorted(ledger.shards if shards is None else shards, key=lambda s: (s.attempt, s.index)):
        answered = shard.batch.completed + shard.batch.failed if shard.batch is not None else 0
        if shard.finished and shard.status == "completed" and answered >= shard.rows:
            continue
        if not shard.finished:
            outcome: tuple[str, str | None, str | None] = ("pending", None, None)
        else:
            status, code, error = UNANSWERED[shard.status]
            reasons = [e.message for e in shard.batch.errors] if shard.batch is not None else []
            if shard.status == "failed" and reasons:
                error = f"the batch failed: {reasons[0]}"
            outcome = (status, code, error)
        skipped = stale.get(shard.key, ()) if stale else ()
        for custom_id in shard_ids(data_path / shard.path):
            if custom_id not in skipped:
                outcomes[custom_id] = outcome
    return outcomes


def retry_attempt_counts(ledger: Ledger, data_path: Path) -> dict[str, int]:
    """How many later attempts included each retried row."""
    counts: dict[str, int] = {}
    for shard in ledger.shards:
        if shard.attempt > 1:
            for custom_id in shard_ids(data_path / shard.path):
                counts[custom_id] = counts.get(custom_id, 0) + 1
    return counts


def attempt_counts(
    ledger: Ledger, data_path: Path, *, stale: Mapping[str, Collection[str]], pilot_ids: Collection[str]
) -> dict[str, int]:
    """How many attempts (the pilot counts as one) sent each row as the table has it now.

    For a run whose table changed or that had a pilot: a row's first attempt is not always attempt 1,
    so every shard is read.
    """
    counts = dict.fromkeys(pilot_ids, 1)
    for shard in ledger.shards:
        skipped = stale.get(shard.key, ())
        for custom_id in shard_ids(data_path / shard.path):
            if custom_id not in skipped:
                counts[custom_id] = counts.get(custom_id, 0) + 1
    return counts


@dataclass
class CollationSummary:
    """What the summary of a collated table needs, added up a chunk of rows at a time."""

    rows: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)  # rows per api_status
    retryable_rows: int = 0  # failed rows a retry may answer
    json_errors: int = 0  # answers that are not the JSON asked for
    finish_reasons: dict[str, int] = field(default_factory=dict)  # answers per api_finish_reason
    refusals: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    failure_groups: dict[str, FailureGroup] = field(default_factory=dict)  # by error code, first seen first

    @property
    def failures(self) -> list[FailureGroup]:
        """Failed rows grouped by error code, most frequent first, each with its first row as the example."""
        return sorted(self.failure_groups.values(), key=lambda group: (-group.count, group.code))

    def add(self, chunk: CollatedChunk) -> None:
        table = chunk.table
        self.rows += len(table)
        # Most rows are ok, as the chunk counted: only the other statuses are compared and counted here.
        if chunk.ok_rows:
            self.status_counts["ok"] = self.status_counts.get("ok", 0) + chunk.ok_rows
        statuses = table[columns.STATUS]
        not_ok = statuses[statuses != "ok"] if chunk.ok_rows < len(table) else statuses.iloc[:0]
        for counts, values in ((self.status_counts, not_ok), (self.finish_reasons, table[columns.FINISH_REASON])):
            for value, count in values.value_counts().items():
                counts[str(value)] = counts.get(str(value), 0) + int(count)
        self.retryable_rows += int(chunk.retryable.sum())
        if columns.JSON_ERROR in table:
            self.json_errors += int(table[columns.JSON_ERROR].notna().sum())
        self.refusals += int(table[columns.REFUSAL].notna().sum())
        self.input_tokens += int(table[columns.PROMPT_TOKENS].fillna(0).sum())
        self.output_tokens += int(table[columns.COMPLETION_TOKENS].fillna(0).sum())
        for group in chunk.failures:
            seen = self.failure_groups.get(group.code)
            if seen is not None:  # the example stays the first row, in input order
                group = replace(seen, count=seen.count + group.count, retryable=seen.retryable and group.retryable)
            self.failure_groups[group.code] = group


@dataclass
class CollatedChunk:
    """Consecutive input rows with their results."""

    table: pd.DataFrame
    retryable: pd.Series  # per row: whether a retry may succeed
    failures: list[FailureGroup]
    ids: pd.Series  # per row: the text of its id, as its requests were sent (custom_id)
    ok_rows: int  # rows whose api_status is ok


@dataclass
class Collation:
    """The input rows with their results (`table`, None when they were only written), and the summary."""

    table: pd.DataFrame | None
    retryable: pd.Series | None  # per row of `table`: whether a retry may succeed
    failures: list[FailureGroup]
    summary: CollationSummary = field(default_factory=CollationSummary)

    def status_counts(self) -> dict[str, int]:
        if self.table is None:
            return dict(self.summary.status_counts)
        return {str(k): int(v) for k, v in self.table[columns.STATUS].value_counts().items()}


def _shard_groups(ledger: Ledger, *, whole: bool) -> list[list[ShardRecord]]:
    """The first attempt's shards, in input order, in groups of at least COLLATE_CHUNK_ROWS rows (one, `whole`).

    The first attempt holds every row, its shards contiguous slices of the input in order: a group
    is the input rows its shards hold, and the only result files of the first attempt they need.
    """
    groups: list[list[ShardRecord]] = []
    group: list[ShardRecord] = []
    rows = 0
    for shard in sorted((s for s in ledger.shards if s.attempt == 1), key=lambda s: s.index):
        group.append(shard)
        rows += shard.rows
        if rows >= COLLATE_CHUNK_ROWS and not whole:
            groups.append(group)
            group, rows = [], 0
    return [*groups, group] if group else groups


def _files_of(shards: Iterable[ShardRecord], data_path: Path, available: Collection[Path]) -> list[Path]:
    """The result files of `shards` among `available`, in the order load_results needs (oldest attempt first)."""
    files = []
    for shard in sorted(shards, key=lambda s: (s.attempt, s.index)):
        files.extend(p for kind in RESULT_KINDS if (p := result_file_path(data_path, shard, kind)) in available)
    return files


class _LaterAttempts:
    """What the attempts after the first say about the rows they sent again.

    Held whole: a retry holds only rows that failed, so this grows with the failures, not the table.
    """

    def __init__(self, ledger: Ledger, data_path: Path, available: Collection[Path]) -> None:
        shards = [s for s in ledger.shards if s.attempt > 1]
        self.files = _files_of(shards, data_path, available)
        self.results = load_results(self.files) if self.files else None
        self.unanswered = unanswered_outcomes(ledger, data_path, shards=shards) if shards else {}
        self.attempts = retry_attempt_counts(ledger, data_path)


@dataclass
class _GroupResults:
    """What a group of the first attempt's shards answered: read once, joined onto its rows a slice at a time."""

    files: list[Path]
    results: pd.DataFrame  # by custom_id
    unanswered: dict[str, tuple[str, str | None, str | None]]

    @classmethod
    def read(
        cls, ledger: Ledger, data_path: Path, shards: list[ShardRecord], available: Collection[Path]
    ) -> _GroupResults:
        files = _files_of(shards, data_path, available)
        return cls(files, load_results(files), unanswered_outcomes(ledger, data_path, shards=shards))


def _slices(rows: int) -> list[int]:
    """`rows` cut into near-equal slices of at most COLLATE_SLICE_ROWS (one slice of 0 rows for 0)."""
    count = max(1, -(-rows // COLLATE_SLICE_ROWS))
    return [rows // count + (1 if number < rows % count else 0) for number in range(count)]


def _collate_chunk(
    config: Config,
    ledger: Ledger,
    table: pd.DataFrame,
    group: _GroupResults,
    later: _LaterAttempts,
) -> CollatedChunk:
    """Join the results of `group` onto `table`, input rows that its shards of the first attempt hold."""
    ids = table[config.id_column]
    index = pd.Index(ids)
    # Reindexing by an Index of the ids, not by an array of them, saves making a Python string of each.
    joined = group.results.reindex(index)
    if later.results is not None and len(later.results):
        again = later.results.reindex(index)
        sent_again = again[columns.STATUS].notna().to_numpy()
        if sent_again.any():  # a later attempt's line wins, as the last line of a custom_id does
            for column in joined.columns:
                joined[column] = joined[column].where(~sent_again, again[column])
    joined.index = table.index

    unanswered = group.unanswered
    outcome = ids.map(unanswered) if unanswered else None
    if later.unanswered:
        again_outcome = ids.map(later.unanswered)
        outcome = again_outcome if outcome is None else again_outcome.where(again_outcome.notna(), outcome)
    retries = later.attempts
    attempts = 1 + (ids.map(retries).fillna(0).astype(int) if retries else 0)
    return _with_results(config, ledger, table, joined, outcome, attempts, [*group.files, *later.files], stale={})


def _collate_continued(
    config: Config,
    ledger: Ledger,
    table: pd.DataFrame,
    result_files: list[Path],
    *,
    stale: Mapping[str, Collection[str]],
    pilot_ids: Collection[str],
) -> CollatedChunk:
    """Join the results onto every input row of a run whose table changed or that had a pilot, as one chunk.

    Its rows are not the first attempt's shards in order (a row's first attempt may be a later one,
    or the pilot), so every result file is read at once; stale requests' lines are left out.
    """
    ids = table[config.id_column]
    sources = result_sources(ledger, config.data_path)
    skip = {path: stale[source] for path, (source, _) in sources.items() if source in stale}
    results = load_results(result_files, skip=skip)
    # Reindexing by an Index of the ids, not by an array of them, saves making a Python string of each.
    joined = results.reindex(pd.Index(ids))
    del results
    joined.index = table.index
    unanswered = unanswered_outcomes(ledger, config.data_path, stale=stale)
    outcome = ids.map(unanswered) if unanswered else None
    counts = attempt_counts(ledger, config.data_path, stale=stale, pilot_ids=pilot_ids)
    attempts = ids.map(counts).fillna(0).astype(int)
    return _with_results(config, ledger, table, joined, outcome, attempts, result_files, stale=stale)


def _with_results(
    config: Config,
    ledger: Ledger,
    table: pd.DataFrame,
    joined: pd.DataFrame,
    outcome: pd.Series | None,
    attempts: pd.Series | int,
    result_files: list[Path],
    *,
    stale: Mapping[str, Collection[str]],
) -> CollatedChunk:
    """`table` with the result columns of `joined` (its results, by row), `outcome` (what happened to rows
    that may have no result line) and `attempts`; `result_files` are those `joined` was read from."""
    ids = table[config.id_column]
    if outcome is not None:
        has_outcome = outcome.notna()
        is_pending = has_outcome & outcome.map(lambda o: isinstance(o, tuple) and o[0] == "pending")
        status = joined[columns.STATUS]
        # A row waiting on a later attempt is pending unless it already succeeded; other
        # outcomes only speak for rows that have no result line at all.
        override = (is_pending & (status != "ok")) | (has_outcome & ~is_pending & status.isna())
        for position, column in enumerate((columns.STATUS, columns.ERROR_CODE, columns.ERROR)):
            joined.loc[override, column] = outcome[override].map(lambda o, i=position: o[i])
        joined.loc[override, [columns.OUTPUT, columns.FINISH_REASON, columns.REFUSAL, columns.CATEGORIES]] = None
        joined.loc[override, columns.RETRYABLE] = ~is_pending[override]
    missing = joined[columns.STATUS].isna()
    if missing.any():  # most chunks have none: a masked assignment costs milliseconds even so
        joined.loc[missing, [columns.STATUS, columns.ERROR_CODE, columns.ERROR]] = (
            "error",
            "no_result",
            "no result for this row in any batch of the run",
        )
        joined.loc[missing, columns.RETRYABLE] = True
    joined[columns.ATTEMPTS] = attempts

    out = table  # the chunk is ours alone: its columns are added in place
    for column in result_columns(config):
        out[column] = joined[column] if column in joined else None
    ok = out[columns.STATUS] == "ok"
    structured = expand_structured_answers(
        out[columns.OUTPUT].where(ok),
        response_format=answer_format(config),
        prefix=config.answer_column_prefix,
    )
    for column in structured.columns:
        out[column] = structured[column].to_numpy()
    if config.provenance:
        from ..answers.provenance import provenance_columns

        shard_paths = {shard.key: shard.path for shard in ledger.shards}
        sources = result_sources(ledger, config.data_path)
        where = provenance_columns(result_files, sources, config.data_path, stale=stale, shard_paths=shard_paths)
        for column, values in where.items():
            out[column] = pd.Series([values.get(i) for i in ids], index=out.index, dtype=object)
    # Most rows succeed: what the failures say is read from the failed rows alone.
    failed = ~ok.to_numpy()
    retryable = pd.Series(False, index=out.index)
    failures: list[FailureGroup] = []
    if failed.any():
        failed_rows = joined[failed]
        # A cancelled row has no answer: an explicit retry sends it again (wait mode never retries a cancelled run).
        again = failed_rows[columns.RETRYABLE].fillna(True).astype(bool) | (failed_rows[columns.STATUS] == "cancelled")
        retryable[failed] = again.to_numpy()
        failures = summarize_failures(failed_rows.set_axis(pd.Index(ids[failed])))
    ok_rows = len(out) - int(failed.sum())
    return CollatedChunk(table=out, retryable=retryable, failures=failures, ids=ids, ok_rows=ok_rows)


def collated_chunks(
    config: Config,
    ledger: Ledger,
    result_files: list[Path],
    *,
    whole: bool = False,
    stale: Mapping[str, Collection[str]] | None = None,
    pilot_ids: Collection[str] = (),
) -> Iterator[CollatedChunk]:
    """Join the results in `result_files` onto every input row, in input order, a group of shards at a time.

    A group's result lines (about COLLATE_CHUNK_ROWS rows, or one shard when shards are larger) are
    read once and joined onto its rows in chunks of at most COLLATE_SLICE_ROWS, so memory follows a
    group's results and a slice, not the table; `whole=True` makes it one chunk of every row. A run whose table changed
    (`stale`: per source, a shard key or the pilot, the requests the table no longer asks) or that
    had a pilot (`pilot_ids`: the rows it answered) is always one chunk.
    """
    continued = bool(stale) or bool(pilot_ids)
    available = set(result_files)
    groups: list[list[ShardRecord]] = []
    in_group: list[int] = []  # per frame, the group of shards whose rows it holds
    later = None
    # Each frame of input rows with its id column as a typed format holds it: the rows are matched by the
    # ids' text, and the output gives a typed format's id column back as it was.
    if continued:
        frames: Iterable[tuple[pd.DataFrame, pd.Series | None]] = [_whole_input(config)]
    else:
        groups = _shard_groups(ledger, whole=whole)
        later = _LaterAttempts(ledger, config.data_path, available)
        if whole:
            frames = [_whole_input(config)]
            in_group = [0]
        else:
            # A group's results are read once and joined onto its rows a slice at a time: the frames made
            # for a slice (the input rows, the joined results, the output and its Arrow table) follow
            # COLLATE_SLICE_ROWS, and only the group's result lines follow its shards.
            sizes: list[int] = []
            for number, group in enumerate(groups):
                slices = _slices(sum(s.rows for s in group))
                sizes.extend(slices)
                in_group.extend([number] * len(slices))
            frames = iter_frames_with_typed_ids(config.input_file, id_column=config.id_column, sizes=sizes)
    results: _GroupResults | None = None
    results_of = -1
    for number, (table, typed_ids) in enumerate(frames):
        if number == 0:
            # create-batch refuses such a table; a run begun before it did is refused here, before anything is lost.
            clashes = [c for c in added_columns(config) if c in table.columns]
            if clashes:
                raise BatchToolError(column_clash_message(config, clashes))
        if later is None:
            chunk = _collate_continued(config, ledger, table, result_files, stale=stale or {}, pilot_ids=pilot_ids)
        else:
            group = in_group[number] if number < len(in_group) else len(groups)  # rows after the shards': none
            if group != results_of:
                results = None  # the last group's results go before the next group's are read
                shards = groups[group] if group < len(groups) else []
                results, results_of = _GroupResults.read(ledger, config.data_path, shards, available), group
            assert results is not None
            chunk = _collate_chunk(config, ledger, table, results, later)
        if typed_ids is not None:
            label = next(c for c in chunk.table.columns if str(c) == config.id_column)
            chunk.table[label] = typed_ids.set_axis(chunk.table.index)
        yield chunk


def _whole_input(config: Config) -> tuple[pd.DataFrame, pd.Series | None]:
    """The input table read whole, with its id column as a typed format holds it (None for CSV, JSONL)."""
    table = read_input_table(config.input_file, id_column=config.id_column)
    return table, typed_id_column(config.input_file, id_column=config.id_column)


def collate_results(
    config: Config,
    ledger: Ledger,
    result_files: list[Path],
    *,
    stale: Mapping[str, Collection[str]] | None = None,
    pilot_ids: Collection[str] = (),
) -> Collation:
    """Join the results in `result_files` (oldest first) onto every input row, in input order, as one table.

    `stale`: per source (a shard key, or the pilot), the requests the table no longer asks (its rows
    were edited or removed), whose answers are left out; `pilot_ids`: the rows the pilot answered.
    """
    chunk = next(collated_chunks(config, ledger, result_files, whole=True, stale=stale, pilot_ids=pilot_ids))
    summary = CollationSummary()
    summary.add(chunk)
    return Collation(table=chunk.table, retryable=chunk.retryable, failures=summary.failures, summary=summary)


def collate_to_file(
    config: Config,
    ledger: Ledger,
    result_files: list[Path],
    *,
    path: Path | ObjectUrl,
    keep_table: bool = True,
    stale: Mapping[str, Collection[str]] | None = None,
    pilot_ids: Collection[str] = (),
) -> Collation:
    """Join the results onto every input row and write the table to `path`, a group of shards at a time.

    Parquet (a row group a chunk), CSV and JSONL are written as the chunks are made, so memory
    follows a chunk, not the table; a pickle is one object, written whole. The file is written under
    a temporary name and renamed when complete. `keep_table=False` returns no table: the summary only.
    A chunk whose columns or types cannot join the ones written before (a JSONL key that first
    appears late, an answer whose type changes) starts the table again, as one chunk. `stale` and
    `pilot_ids` as for collate_results (such a run is one chunk).
    """
    answered = {"stale": stale, "pilot_ids": pilot_ids}
    try:
        return _collate_to_file(config, ledger, result_files, path=path, keep_table=keep_table, whole=False, **answered)
    except _ShapeChanged:
        return _collate_to_file(config, ledger, result_files, path=path, keep_table=keep_table, whole=True, **answered)


def _collate_to_file(
    config: Config,
    ledger: Ledger,
    result_files: list[Path],
    *,
    path: Path | ObjectUrl,
    keep_table: bool,
    whole: bool,
    stale: Mapping[str, Collection[str]] | None,
    pilot_ids: Collection[str],
) -> Collation:
    summary = CollationSummary()
    kept: list[CollatedChunk] = []

    def tables() -> Iterator[pd.DataFrame]:
        chunks = collated_chunks(config, ledger, result_files, whole=whole, stale=stale, pilot_ids=pilot_ids)
        for chunk in chunks:
            summary.add(chunk)
            if keep_table:
                kept.append(chunk)
            yield chunk.table

    write_tables(tables(), path, config=config)
    if not keep_table:
        return Collation(table=None, retryable=None, failures=summary.failures, summary=summary)
    if len(kept) == 1:
        table, retryable = kept[0].table, kept[0].retryable
    else:
        table = pd.concat([chunk.table for chunk in kept])
        retryable = pd.concat([chunk.retryable for chunk in kept])
    return Collation(table=table, retryable=retryable, failures=summary.failures, summary=summary)


def _vectors_as_json(table: pd.DataFrame, *, as_text: bool) -> pd.DataFrame:
    """The table with embedding vectors (float32 arrays in api_output) as JSON: text, or lists of floats.

    Each float is written as the shortest text that reads back as the same float32.
    """
    outputs = table.get(columns.OUTPUT)
    first = outputs.first_valid_index() if outputs is not None else None
    if first is None or not isinstance(outputs[first], np.ndarray):
        return table

    def convert(value: object) -> object:
        if not isinstance(value, np.ndarray):
            return value
        text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
        return text.decode() if as_text else orjson.loads(text)

    return table.assign(**{columns.OUTPUT: outputs.map(convert)})


class _ShapeChanged(Exception):
    """A chunk's columns or their types cannot join those of the chunks written before it."""


def write_table(table: pd.DataFrame, path: Path | ObjectUrl) -> None:
    """Write the collated table in the format its extension names, atomically."""
    write_tables([table], path)


def write_tables(tables: Iterable[pd.DataFrame], path: Path | ObjectUrl, *, config: Config | None = None) -> None:
    """Write `tables`, consecutive rows of one table, in the format `path`'s extension names, atomically.

    Each table is written as it comes (a Parquet row group, CSV rows, JSONL lines) under a temporary
    name beside `path`, which replaces `path` once all are written: a crash leaves the old file or the
    new one. A pickle is one object: the tables are joined and written whole. Embedding vectors stay
    float32 arrays in pickle and Parquet (a list<float> column); CSV holds each as JSON text, JSONL
    as a JSON array. `config` gives the types of result columns a first table holds no value of.
    Raises _ShapeChanged when a table's columns or types cannot follow the first's.
    """
    if isinstance(path, ObjectUrl):
        try:
            with storage.atomic_output(path) as stream:
                _write_into(tables, stream, path.suffix.lower(), config)
        except OSError as exc:
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise BatchToolError(
                f"{path}: cannot write the output_file ({lines[0]}); check the URL and the credentials, or choose "
                "another output_file in the config"
            ) from exc
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            _write_into(tables, tmp, path.suffix.lower(), config)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise with_filename(exc, path) from None  # the commands name a full disk the same way everywhere
        reason = (exc.strerror or type(exc).__name__).lower()
        if exc.filename is not None and Path(exc.filename) != path and Path(exc.filename).parent != path.parent:
            reason += f": {exc.filename}"  # a path above the file failed: name it (not the temporary file beside it)
        raise BatchToolError(
            f"{path}: cannot write the output_file ({reason}); fix the permissions of its folder, "
            "or choose another output_file in the config"
        ) from exc


def _write_into(tables: Iterable[pd.DataFrame], target: Any, suffix: str, config: Config | None) -> None:
    """Write the tables into `target`, a local path or an open binary stream of an object store."""
    if suffix in (".pkl", ".pickle"):
        frames = list(tables)
        whole = frames[0] if len(frames) == 1 else pd.concat(frames)
        del frames
        whole.to_pickle(target, compression=None)
        return
    if suffix == ".parquet":
        _write_parquet(tables, target, config=config)
        return
    if isinstance(target, Path):
        fh: TextIO = open(target, "w", encoding="utf-8", newline="")
    else:
        fh = io.TextIOWrapper(target, encoding="utf-8", newline="")
    try:
        header: list[str] | None = None
        for table in tables:
            first = header is None
            if first:
                header = [str(name) for name in table.columns]
            elif [str(name) for name in table.columns] != header:
                raise _ShapeChanged(f"columns {list(table.columns)} after {header}")
            if suffix == ".csv":
                _vectors_as_json(table, as_text=True).to_csv(fh, index=False, header=first)
            else:
                _write_jsonl(_vectors_as_json(table, as_text=False), fh)
    finally:
        if isinstance(target, Path):
            fh.close()
        else:
            fh.detach()  # flushed into the stream, which whoever opened it closes


def _write_jsonl(table: pd.DataFrame, fh: TextIO) -> None:
    # pandas builds the whole JSON text in memory, about 10 KB a row on the way (10 GB at a million
    # rows): write the lines a slice of rows at a time.
    for start in range(0, len(table), JSONL_SLICE_ROWS):
        part = table.iloc[start : start + JSONL_SLICE_ROWS]
        text = part.to_json(orient="records", lines=True, force_ascii=False)
        fh.write(text if text.endswith("\n") else text + "\n")


def _write_parquet(tables: Iterable[pd.DataFrame], path: Any, *, config: Config | None) -> None:
    """One row group per table, all of the first table's schema (with types for the columns it left empty).

    Each table is converted on this thread: its columns are Python objects, which a pool of threads
    would convert one at a time anyway, and starting one per table cost more than it saved."""
    writer: pq.ParquetWriter | None = None
    try:
        for table in tables:
            if writer is None:
                first = pa.Table.from_pandas(table, preserve_index=False, nthreads=1)
                schema = _filled_schema(first.schema, config)
                writer = pq.ParquetWriter(path, schema)
                arrow = first.cast(schema)
            else:
                if [str(name) for name in table.columns] != schema.names:
                    raise _ShapeChanged(f"columns {list(table.columns)} after {schema.names}")
                try:
                    arrow = pa.Table.from_pandas(table, schema=schema, preserve_index=False, nthreads=1)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                    raise _ShapeChanged(str(exc)) from exc
            writer.write_table(arrow)
    finally:
        if writer is not None:
            writer.close()


# The Parquet types of the result columns, for a first chunk that holds no value of one (every row failed).
_TEXT_COLUMNS = (
    columns.STATUS,
    columns.ERROR,
    columns.ERROR_CODE,
    columns.FINISH_REASON,
    columns.REFUSAL,
    columns.CATEGORIES,
    columns.JSON_ERROR,
)
_JSON_TYPES = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}


def _filled_schema(schema: pa.Schema, config: Config | None) -> pa.Schema:
    """`schema` with a type for each column the first chunk held no value of: the result's, else text."""
    known: dict[str, pa.DataType] = dict.fromkeys(_TEXT_COLUMNS, pa.string())
    if config is not None:
        known[columns.OUTPUT] = {EMBEDDINGS: pa.list_(pa.float32()), MODERATIONS: pa.bool_()}.get(
            config.endpoint, pa.string()
        )
        fmt = answer_format(config)
        answers_schema = schema_of(fmt) if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
        for name, spec in ((answers_schema or {}).get("properties") or {}).items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if isinstance(kind, str) and kind in _JSON_TYPES:
                known[f"{config.answer_column_prefix}{name}"] = _JSON_TYPES[kind]
    fields = [
        field.with_type(known.get(field.name, pa.string())) if pa.types.is_null(field.type) else field
        for field in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)
