"""Anthropic's Message Batches result lines, read into the run's neutral result records (base.Answer, base.Failure).

A line is `{"custom_id", "result": {"type": ...}}`: `succeeded` with the Message, `errored` with the
error envelope (`{"type": "error", "error": {"type", "message"}}`), or `canceled` / `expired` for a
request the batch never ran. The custom id in a line on disk is already the row's id (the provider
maps it back while the results stream in).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import BatchToolError
from ..files.atomic_files import atomic_writer
from .base import NO_ANSWER, Answer, Failure

if TYPE_CHECKING:
    from ..requests.custom_ids import CustomIdMap  # the requests package loads numpy: readers of results stay light

# Error types a later attempt can fix: the API's own failure, overload, rate limits, timeouts.
# invalid_request_error (a bad request) and the rest fail the same way every time.
RETRYABLE_TYPES = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})
# Claude's stop reasons in the finish_reason words the api_finish_reason column uses.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Requests the batch never ran: the api_status, error code and message of today's output columns.
NOT_RUN = {
    "expired": ("expired", "batch_expired", "the batch expired before this request ran", True),
    # A cancelled row is not retried by default: someone chose to stop the batch.
    "canceled": ("cancelled", "batch_cancelled", "the batch was cancelled before this request ran", False),
}


def is_message_result(record: dict[str, Any]) -> bool:
    return "result" in record and "response" not in record


def message_result(record: dict[str, Any]) -> tuple[Answer, Failure | None]:
    """The answer of a result line, and its failure (None when the request succeeded)."""
    result = record["result"]
    if result["type"] == "succeeded":
        return message_answer(result["message"]), None
    return NO_ANSWER, message_failure(result)


def message_failure_only(record: dict[str, Any]) -> tuple[Answer, Failure | None]:
    """As message_result, a success's answer left unread (NO_ANSWER): for a reader of failures only."""
    result = record["result"]
    return NO_ANSWER, (None if result["type"] == "succeeded" else message_failure(result))


def message_answer(message: dict[str, Any]) -> Answer:
    """(answer, refusal, finish reason, categories, prompt, completion and total tokens) of a Message."""
    texts = [block.get("text") or "" for block in message.get("content") or () if block.get("type") == "text"]
    output = "".join(texts) if texts else None
    stop = message.get("stop_reason")
    refusal = output if stop == "refusal" else None
    usage = message.get("usage") or {}
    # Cached prompt tokens are prompt tokens too (billed at other rates, which the estimate leaves out).
    prompt_keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    prompt_parts = [usage.get(key) for key in prompt_keys]
    prompt = sum(part for part in prompt_parts if isinstance(part, int)) if usage else None
    completion = usage.get("output_tokens")
    total = prompt + completion if isinstance(prompt, int) and isinstance(completion, int) else None
    return output, refusal, FINISH_REASONS.get(stop, stop), None, prompt, completion, total


def message_failure(result: dict[str, Any]) -> Failure:
    """(api_status, api_error, api_error_code, api_retryable) of a request that did not succeed."""
    kind = result["type"]
    if kind in NOT_RUN:
        status, code, message, retryable = NOT_RUN[kind]
        return status, f"{code}: {message}", code, retryable
    if kind != "errored":
        raise ValueError(f"unknown result type {kind!r}")
    envelope = result.get("error") or {}
    detail = envelope.get("error") if isinstance(envelope.get("error"), dict) else envelope
    code = str(detail.get("type") or "unknown_error")
    message = " ".join(str(detail.get("message") or "no error message").split())
    return "error", f"{code}: {message}", code, code in RETRYABLE_TYPES


def write_mapped_results(lines: Iterable[bytes], dest: Path, *, ids: CustomIdMap) -> int:
    """Write a batch's result lines to `dest` as they stream in, each custom id replaced by its row id.

    Never holds more than a line in memory. A line whose custom id is not one of this shard's (another
    run's, another shard's, a line past its end) means the batch is not this shard's: BatchToolError,
    and nothing is left at `dest`. Returns the number of lines written.
    """
    loads, dumps = orjson.loads, orjson.dumps
    count = 0
    with atomic_writer(dest) as out:
        for line in lines:
            if not line.strip():
                continue
            record = loads(line)
            row_id = ids.row_id(record.get("custom_id"))
            if row_id is None:
                raise BatchToolError(
                    f"{dest.name}: result {record.get('custom_id')!r} is not a request of shard {ids.shard} of "
                    "this run; the batch is not this shard's"
                )
            record["custom_id"] = row_id
            out.write(dumps(record) + b"\n")
            count += 1
    return count
