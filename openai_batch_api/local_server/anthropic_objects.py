"""Anthropic's Message Batches protocol as JSON: its error envelope, MessageBatch and result lines."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any

import orjson

from .api_error import ApiError
from .ids import new_id

# The HTTP status of each of the API's error types.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicError(ApiError):
    """An error answer in Anthropic's envelope: {"type": "error", "error": {type, message}, "request_id"}.

    An ApiError, so the HTTP handler sends it like any other; only the body differs.
    """

    def __init__(
        self, error_type: str, message: str, *, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status or ERROR_STATUS[error_type], message, type=error_type, headers=headers)

    def body(self) -> dict[str, Any]:
        return error_envelope(self.type, self.message)


def error_envelope(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": new_id("req_")}


def rfc3339(seconds: float | None, offset: float = 0) -> str | None:
    """A Unix time as the API writes it, e.g. 2024-08-20T18:37:24.100435Z, moved by the server's clock offset."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds + offset, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message_batch_object(row: sqlite3.Row, *, origin: str, offset: float = 0) -> dict[str, Any]:
    """A stored batch as a MessageBatch; `origin` (http://host:port) makes its results_url absolute, and its
    times are moved by `offset` (ServerOptions.clock_offset), as a server whose clock differs would report them."""
    ended = row["status"] == "ended"
    # As on the API, requests count as processing until the whole batch has ended.
    counts = {
        "processing": 0 if ended else row["total"],
        "succeeded": row["succeeded"] if ended else 0,
        "errored": row["errored"] if ended else 0,
        "canceled": row["canceled"] if ended else 0,
        "expired": row["expired"] if ended else 0,
    }
    return {
        "id": row["id"],
        "type": "message_batch",
        "processing_status": row["status"],
        "request_counts": counts,
        "ended_at": rfc3339(row["ended_at"], offset),
        "created_at": rfc3339(row["created_at"], offset),
        "expires_at": rfc3339(row["expires_at"], offset),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(row["cancel_initiated_at"], offset),
        "results_url": f"{origin}/v1/messages/batches/{row['id']}/results" if ended else None,
    }


def deleted_object(batch_id: str) -> dict[str, Any]:
    return {"id": batch_id, "type": "message_batch_deleted"}


def list_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def succeeded_line(custom_id: str, message: dict[str, Any]) -> bytes:
    return orjson.dumps({"custom_id": custom_id, "result": {"type": "succeeded", "message": message}})


def errored_line(custom_id: str, error_type: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "custom_id": custom_id,
            # The envelope of an HTTP error, without a request_id: the request was never an HTTP call.
            "result": {
                "type": "errored",
                "error": {"type": "error", "error": {"type": error_type, "message": message}},
            },
        }
    )


def ended_line(custom_id: str, kind: str) -> bytes:
    """The line of a request never processed: kind "canceled" or "expired"."""
    return orjson.dumps({"custom_id": custom_id, "result": {"type": kind}})


def as_anthropic(error: ApiError) -> AnthropicError:
    """Any error answer (a 404 route, an injected fault, a body too large) in Anthropic's envelope.

    An injected 503 becomes the API's 529 overloaded_error, the status its clients retry on.
    """
    if isinstance(error, AnthropicError):
        return error
    if error.status in (503, 529):
        return AnthropicError("overloaded_error", "Overloaded", headers=error.headers)
    by_status = {status: kind for kind, status in ERROR_STATUS.items()}
    kind = by_status.get(error.status, "api_error" if error.status >= 500 else "invalid_request_error")
    return AnthropicError(kind, error.message, status=error.status, headers=error.headers)
