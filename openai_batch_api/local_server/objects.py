"""Stored rows as the API's JSON objects: File, FileDeleted, Batch and list pages."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

BATCH_TIMESTAMPS = (
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def shifted(value: int | None, offset: int) -> int | None:
    """A stored time as the server reports it: moved by its clock offset (ServerOptions.clock_offset)."""
    return None if value is None else value + offset


def file_object(row: sqlite3.Row, offset: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "file",
        "id": row["id"],
        "purpose": row["purpose"],
        "filename": row["filename"],
        "bytes": row["bytes"],
        "created_at": shifted(row["created_at"], offset),
        "status": "processed",
        # Deprecated in the spec, but the SDK's FileObject and some clients expect the key.
        "status_details": None,
    }
    # The spec types expires_at as an integer: leave it out for files that never expire.
    if row["expires_at"] is not None:
        body["expires_at"] = shifted(row["expires_at"], offset)
    return body


def file_deleted(file_id: str) -> dict[str, Any]:
    return {"object": "file", "id": file_id, "deleted": True}


def batch_object(row: sqlite3.Row, offset: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row["id"],
        "object": "batch",
        "endpoint": row["endpoint"],
        "model": row["model"],
        "errors": orjson.loads(row["errors"]) if row["errors"] else None,
        "input_file_id": row["input_file_id"],
        "completion_window": row["completion_window"],
        "status": row["status"],
        "output_file_id": row["output_file_id"],
        "error_file_id": row["error_file_id"],
        "created_at": shifted(row["created_at"], offset),
    }
    for name in BATCH_TIMESTAMPS:
        body[name] = shifted(row[name], offset)
    body["request_counts"] = {"total": row["total"], "completed": row["completed"], "failed": row["failed"]}
    body["usage"] = {
        "input_tokens": row["input_tokens"],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": row["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": row["input_tokens"] + row["output_tokens"],
    }
    body["metadata"] = orjson.loads(row["metadata"]) if row["metadata"] else None
    return body


def list_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
