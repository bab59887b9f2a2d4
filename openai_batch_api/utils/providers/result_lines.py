"""A run's result files read as neutral result records (base.ResultRecord), a line at a time.

The files on disk are as the providers gave them: OpenAI's output and error files (and the pilot's
answers, kept as OpenAI output lines), and a Message Batch's results, each custom id already the row's
(anthropic.py maps them while they stream in). A line is told by its shape, so a file of either reads
here, and nothing past this module knows what a provider's line looks like.

Light to import (orjson, no SDK, no pandas): status-jobs reads the error files of thousands of batches.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ..errors import BatchToolError
from .anthropic_results import message_failure_only, message_result
from .base import ResultRecord
from .openai_results import chat_answer_table, openai_failure, openai_result

if TYPE_CHECKING:
    import pyarrow as pa


def read_result_file(
    path: Path, *, skip: Collection[str] | None = None, answers: bool = True
) -> Iterator[ResultRecord]:
    """(row id, answer, failure) of each line of a result file, in order; the lines of `skip`'s ids are left out.

    `answers=False` leaves the successes' answers unread (NO_ANSWER): for a reader of failures only. A
    line that is not a result line raises BatchToolError naming the file and line.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise BatchToolError(f"{path}: result file not found") from None
    # The per-line work is kept to the few lookups a line needs: a million of them make a collate.
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    read_openai, read_message = (openai_result, message_result) if answers else (openai_failure, message_failure_only)
    with handle:
        for number, line in enumerate(handle, 1):
            try:
                record = loads(line)
            except decode_error as exc:
                if not line.strip():
                    continue
                raise BatchToolError(
                    f"{path}, line {number}: not valid JSON ({exc}); the file is truncated or is not "
                    "a Batch API output or error file"
                ) from None
            try:
                custom_id = record["custom_id"]
                if custom_id is None:
                    raise KeyError("custom_id")
                if skip and custom_id in skip:
                    continue
                # A Message Batch's line has a `result` and no `response` (anthropic_results.is_message_result)
                if "result" in record and "response" not in record:
                    answer, failure = read_message(record)
                else:
                    answer, failure = read_openai(record)
            except (KeyError, TypeError, AttributeError, IndexError, ValueError):
                raise BatchToolError(
                    f"{path}, line {number}: not a Batch API result line (expected custom_id with a "
                    "response or an error); pass the batch's output or error file"
                ) from None
            yield (custom_id if isinstance(custom_id, str) else str(custom_id)), answer, failure


def line_provenance(path: Path, *, skip: Collection[str] = ()) -> Iterator[tuple[str, str | None, str | None]]:
    """(row id, the model the response names, the request's hash the line carries) of each line, in order.

    What provenance needs: the model is the one an OpenAI response body names (a Message Batch line
    names none here), the hash one the pilot's answers carry (a batch's lines carry none).
    """
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            record = orjson.loads(line)
            custom_id = str(record["custom_id"])
            if custom_id in skip:
                continue
            response = record.get("response") or {}
            body = response.get("body") if isinstance(response.get("body"), dict) else {}
            yield custom_id, body.get("model"), record.get("request_sha256")


def read_answer_table(path: Path) -> pa.Table | None:
    """The answers of a result file whose every line succeeded, at once as columns (base.ANSWER_TABLE_COLUMNS).

    None when no columnar reader knows every line (a failure among them, a Message Batch's results):
    read_result_file reads such a file, a line at a time.
    """
    return chat_answer_table(path)
