"""What a failed request is (its code, its message, whether a later attempt may fix it), and why a run's rows failed.

Light to import (orjson, no pandas): status-jobs reads the error files of thousands of batches with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import BatchToolError
from ..lifecycle.result_files import result_file_path
from ..state.ledger import Ledger

# Codes of failures that a later attempt can fix: capacity, limits, outages, time running out, and
# a server behind the local backend that could not be reached (it may be up by the next attempt).
# Other 4xx errors (a bad request, a missing model, content policy) fail the same way every time.
RETRYABLE_CODES = frozenset(
    {
        "batch_expired",
        "upstream_unreachable",
        "token_limit_exceeded",
        "rate_limit_exceeded",
        "server_error",
        "internal_error",
        "service_unavailable",
        "engine_overloaded",
        "timeout",
        "request_timeout",
    }
)
# Statuses meaning "try again later": request timeout, too many requests, and every server error.
RETRYABLE_STATUS = frozenset({408, 429})
# A cancelled row is not retried by default: someone chose to stop the batch, and an automatic
# retry would undo that choice.
_STATUS_OF_CODE = {"batch_expired": "expired", "batch_cancelled": "cancelled"}


def one_line(text: Any) -> str:
    return " ".join(str(text).split()) if text is not None else ""


def request_failure(response: dict | None, error: dict | None) -> tuple[str, str, str, bool]:
    """(api_status, api_error, api_error_code, api_retryable) of a request that did not succeed."""
    if error is None:
        status_code = response.get("status_code")
        body = response.get("body")
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail if isinstance(detail, dict) else {}
        code = str(detail.get("code") or detail.get("type") or f"http_{status_code}")
        message = one_line(detail.get("message") or body or "no error message")
        retryable = (
            code in RETRYABLE_CODES
            or "timeout" in code
            or status_code in RETRYABLE_STATUS
            or (isinstance(status_code, int) and status_code >= 500)
        )
        return "error", f"{status_code} {code}: {message}", code, retryable
    code = str(error.get("code") or "unknown_error")
    message = one_line(error.get("message") or "no error message")
    status = _STATUS_OF_CODE.get(code, "error")
    return status, f"{code}: {message}", code, code in RETRYABLE_CODES or "timeout" in code


@dataclass(frozen=True)
class FailureGroup:
    """The failed requests that share one error code."""

    code: str
    count: int
    retryable: bool  # True when every request of the group failed retryably
    example_id: str
    example_error: str


def error_file_failures(path: Path) -> dict[str, tuple[str, str, bool]]:
    """{custom_id: (error, code, retryable)} of the failed lines of one error file; a custom_id's last line wins."""
    failed: dict[str, tuple[str, str, bool]] = {}
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise BatchToolError(f"{path}: result file not found") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                custom_id = record["custom_id"]
                if custom_id is None:
                    raise KeyError("custom_id")
                response, error = record.get("response"), record.get("error")
                custom_id = custom_id if isinstance(custom_id, str) else str(custom_id)
                failed.pop(custom_id, None)  # kept in the order last seen
                if response is not None and error is None and response.get("status_code") == 200:
                    continue
                _, message, code, retryable = request_failure(response, error)
            except orjson.JSONDecodeError as exc:
                raise BatchToolError(
                    f"{path}, line {number}: not valid JSON ({exc}); the file is truncated or is not "
                    "a Batch API output or error file"
                ) from None
            except (KeyError, TypeError, AttributeError, IndexError, ValueError):
                raise BatchToolError(
                    f"{path}, line {number}: not a Batch API result line (expected custom_id with a "
                    "response or an error); pass the batch's output or error file"
                ) from None
            failed[custom_id] = (message, code, retryable)
    return failed


def latest_failure_groups(ledger: Ledger, data_path: Path) -> list[FailureGroup]:
    """Why rows failed, from the finished batches' error files on disk, each row by its latest attempt.

    Failed requests grouped by error code, most frequent first, each with an example row.
    """
    last: dict[str, int] = {}
    if ledger.attempts > 1:
        from .latest_attempts import last_attempts  # reads the retry shards' files

        last = last_attempts(ledger, data_path)
    groups: dict[str, list[Any]] = {}  # code -> [count, all retryable, example id, example error]
    for shard in sorted(ledger.shards, key=lambda s: (s.attempt, s.index)):
        if not shard.finished or shard.batch is None or not shard.batch.error_file_id:
            continue
        path = result_file_path(data_path, shard, "errors")
        for custom_id, (message, code, retryable) in error_file_failures(path).items():
            if last.get(custom_id, 0) > shard.attempt:
                continue  # sent again by a later attempt, which speaks for it
            group = groups.get(code)
            if group is None:
                groups[code] = [1, retryable, custom_id, message]
            else:
                group[0] += 1
                group[1] = group[1] and retryable
    found = [FailureGroup(code, *group) for code, group in groups.items()]
    found.sort(key=lambda group: (-group.count, group.code))
    return found
