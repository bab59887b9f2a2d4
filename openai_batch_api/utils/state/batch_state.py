"""A batch as the run knows it, in no provider's terms: what a provider's snapshot becomes.

The status words are the ones the commands show and the README documents (OpenAI's, which the
local backend speaks too); a provider with other words maps its own onto them. The provider's own
snapshot is kept beside, as JSON, for what only it knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

# Statuses after which a batch never changes again.
FINISHED_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
# Statuses of a batch still answering rows, and billing for them (a cancelling one answers no more).
ANSWERING_STATUSES = frozenset({"validating", "in_progress", "finalizing"})
# The error code of a batch refused because the organisation's queue of enqueued tokens was full.
TOKEN_LIMIT_CODE = "token_limit_exceeded"


@dataclass(frozen=True)
class BatchError:
    """One reason a batch gives for failing (a line of its input, or the batch as a whole)."""

    code: str | None = None
    message: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class BatchState:
    """One batch: where it stands, what it answered, and the provider's snapshot it was read from."""

    id: str
    status: str
    created_at: int
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    # When it ended, by the provider's clock: the one of these its outcome names.
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelled_at: int | None = None
    # Request counts; all 0 until the provider reports them.
    completed: int = 0
    failed: int = 0
    total: int = 0
    # Token usage, 0 until reported.
    input_tokens: int = 0
    output_tokens: int = 0
    errors: tuple[BatchError, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)  # the provider's snapshot

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def answering(self) -> bool:
        """Still answering rows, and billing for them."""
        return self.status in ANSWERING_STATUSES

    @property
    def phase(self) -> str:
        """"running" (validating, in progress or finalizing), "cancelling" or "ended"."""
        if self.finished:
            return "ended"
        return "cancelling" if self.status == "cancelling" else "running"

    @property
    def outcome(self) -> str | None:
        """How it ended (completed, failed, expired, cancelled); None while it runs."""
        return self.status if self.finished else None

    @property
    def error_codes(self) -> list[str]:
        return [error.code or "" for error in self.errors]

    @property
    def failed_for_token_limit(self) -> bool:
        """Failed only because the queue was full: not a failure of its rows."""
        return self.status == "failed" and TOKEN_LIMIT_CODE in self.error_codes

    def to_json(self) -> str:
        """The stored form: the fields, and the provider's snapshot under "raw"."""
        data = {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "input_file_id": self.input_file_id,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "in_progress_at": self.in_progress_at,
            "expires_at": self.expires_at,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "expired_at": self.expired_at,
            "cancelled_at": self.cancelled_at,
            "completed": self.completed,
            "failed": self.failed,
            "total": self.total,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "errors": [[e.code, e.message, e.line] for e in self.errors],
            "metadata": dict(self.metadata),
            "raw": self.raw,
        }
        return orjson.dumps(data).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> BatchState:
        """A stored batch; one an earlier version stored (OpenAI's batch object as it was) is read as such."""
        data = orjson.loads(text)
        if "raw" not in data:
            return batch_state_from_openai(data)
        return cls(
            **{key: value for key, value in data.items() if key not in ("errors", "metadata", "raw")},
            errors=tuple(BatchError(*error) for error in data.get("errors") or ()),
            metadata=data.get("metadata") or {},
            raw=data["raw"],
        )


def batch_state_from_openai(data: Mapping[str, Any]) -> BatchState:
    """A batch from OpenAI's batch object, as a dict: what the files and batches API answers (and the
    local backend, and the compatible servers), and what earlier versions of the run store kept."""
    counts = data.get("request_counts") or {}
    usage = data.get("usage") or {}
    errors = (data.get("errors") or {}).get("data") or ()
    return BatchState(
        id=data["id"],
        status=data["status"],
        created_at=data.get("created_at") or 0,
        input_file_id=data.get("input_file_id"),
        output_file_id=data.get("output_file_id"),
        error_file_id=data.get("error_file_id"),
        in_progress_at=data.get("in_progress_at"),
        expires_at=data.get("expires_at"),
        completed_at=data.get("completed_at"),
        failed_at=data.get("failed_at"),
        expired_at=data.get("expired_at"),
        cancelled_at=data.get("cancelled_at"),
        completed=counts.get("completed") or 0,
        failed=counts.get("failed") or 0,
        total=counts.get("total") or 0,
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=usage.get("output_tokens") or 0,
        errors=tuple(BatchError(e.get("code"), e.get("message"), e.get("line")) for e in errors),
        metadata=data.get("metadata") or {},
        raw=dict(data),
    )
