"""Downloading a run's results and joining them back onto the input rows."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from ..answers import result_columns as columns
from ..answers.results import FailureGroup, answer_columns, expand_structured_answers, load_results, summarize_failures
from ..config import OUTPUT_FORMATS, Config
from ..endpoints import MODERATIONS, RESPONSES
from ..errors import BatchToolError, ConfigError, with_filename
from ..files.atomic_files import atomic_path
from ..files.table import read_table_with_ids
from ..state.ledger import Ledger
from .result_files import (  # noqa: F401 - where callers have found them
    RESULT_KINDS,
    RESULTS_DIR,
    download_results,
    finished_result_files,
    result_file_path,
)

JSONL_SLICE_ROWS = 10_000
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


def unanswered_outcomes(ledger: Ledger, data_path: Path) -> dict[str, tuple[str, str | None, str | None]]:
    """Status, error code and error of rows that may have no result line, from their shards' batches.

    Only shards that are unfinished or did not answer every row are read; later
    attempts override earlier ones.
    """
    outcomes: dict[str, tuple[str, str | None, str | None]] = {}
    for shard in sorted(ledger.shards, key=lambda s: (s.attempt, s.index)):
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
        for custom_id in shard_ids(data_path / shard.path):
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


@dataclass
class Collation:
    """The input rows with their results, and what the summary needs."""

    table: pd.DataFrame
    retryable: pd.Series  # per row: whether a retry may succeed
    failures: list[FailureGroup]
    ids: pd.Series  # per row: the text of its id, as its requests were sent (custom_id)

    def status_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.table[columns.STATUS].value_counts().items()}


def result_columns(config: Config) -> list[str]:
    """The columns collate adds for the config's endpoint, in order."""
    if config.endpoint == MODERATIONS:
        return [columns.COLLATED[0], columns.CATEGORIES, *columns.COLLATED[1:]]
    return list(columns.COLLATED)


def answer_format(config: Config) -> dict | None:
    """The JSON answer format of the requests: chat's `response_format`, or the Responses API's `text.format`."""
    if config.endpoint == RESPONSES:
        text = config.model_params.get("text")
        return text.get("format") if isinstance(text, dict) else None
    return config.model_params.get("response_format")


def added_columns(config: Config) -> list[str]:
    """Every column collate adds to the input's: the api_* columns, and those of a JSON answer format."""
    return [*result_columns(config), *answer_columns(answer_format(config), prefix=config.answer_column_prefix)]


def column_clash_message(config: Config, clashes: list[str]) -> str:
    """What to do about input columns named like columns collate adds (it would overwrite them)."""
    answers = answer_columns(answer_format(config), prefix=config.answer_column_prefix)
    fix = "rename the column in the input"
    if any(name in answers and name != columns.JSON_ERROR for name in clashes):
        fix += ", or set answer_column_prefix to another prefix"
    listed = ", ".join(f"'{name}'" for name in clashes)
    noun = "column" if len(clashes) == 1 else "columns"
    return f"{config.input_file}: the input {noun} {listed} would be overwritten by collate-output's results; {fix}"


def collate_results(config: Config, ledger: Ledger, result_files: list[Path]) -> Collation:
    """Join the results in `result_files` (oldest first) onto every input row, in input order."""
    # The ids' text matches rows to results; the table keeps the id column's own dtype (Parquet, pickle).
    table, ids = read_table_with_ids(config.input_file, id_column=config.id_column)
    results = load_results(result_files)
    # Reindexing by an Index of the ids, not by an array of them, saves making a Python string of each.
    joined = results.reindex(pd.Index(ids))
    del results  # its values now live in `joined`: let the rest go before the output table is made
    joined.index = table.index

    unanswered = unanswered_outcomes(ledger, config.data_path)
    if unanswered:
        outcome = ids.map(unanswered)
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
    joined.loc[missing, [columns.STATUS, columns.ERROR_CODE, columns.ERROR]] = (
        "error",
        "no_result",
        "no result for this row in any batch of the run",
    )
    joined.loc[missing, columns.RETRYABLE] = True

    retries = retry_attempt_counts(ledger, config.data_path)
    joined[columns.ATTEMPTS] = 1 + (ids.map(retries).fillna(0).astype(int) if retries else 0)

    # create-batch refuses such a table; a run begun before it did is refused here, before anything is lost.
    clashes = [c for c in added_columns(config) if c in table.columns]
    if clashes:
        raise BatchToolError(column_clash_message(config, clashes))
    out = table.copy()
    for column in result_columns(config):
        out[column] = joined[column] if column in joined else None
    ok = out[columns.STATUS] == "ok"
    structured = expand_structured_answers(
        out[columns.OUTPUT].where(ok),
        response_format=answer_format(config),
        prefix=config.answer_column_prefix,
    )
    clashes = [c for c in structured.columns if c in table.columns]
    if clashes:  # added_columns names them all: kept in case they ever differ
        raise BatchToolError(column_clash_message(config, clashes))
    for column in structured.columns:
        out[column] = structured[column].to_numpy()
    # A cancelled row has no answer: an explicit retry sends it again (wait mode never retries a cancelled run).
    retryable = (joined[columns.RETRYABLE].fillna(True).astype(bool) | (out[columns.STATUS] == "cancelled")) & ~ok
    outcomes = joined.set_axis(pd.Index(ids))
    return Collation(table=out, retryable=retryable, failures=summarize_failures(outcomes), ids=ids)


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


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write the collated table in the format its extension names, atomically.

    Embedding vectors stay float32 arrays in pickle and Parquet (a list<float> column); CSV holds
    each as JSON text, JSONL as a JSON array.
    """
    suffix = path.suffix.lower()
    if suffix in (".csv", ".jsonl"):
        table = _vectors_as_json(table, as_text=suffix == ".csv")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            if suffix in (".pkl", ".pickle"):
                table.to_pickle(tmp, compression=None)
            elif suffix == ".csv":
                table.to_csv(tmp, index=False)
            elif suffix == ".parquet":
                table.to_parquet(tmp, index=False)
            else:
                # pandas builds the whole JSON text in memory, about 10 KB a row on the way (10 GB at a
                # million rows): write the lines a slice of rows at a time.
                with open(tmp, "w", encoding="utf-8") as fh:
                    for start in range(0, len(table), JSONL_SLICE_ROWS):
                        part = table.iloc[start : start + JSONL_SLICE_ROWS]
                        text = part.to_json(orient="records", lines=True, force_ascii=False)
                        fh.write(text if text.endswith("\n") else text + "\n")
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
