"""Shared pieces of the Message Batches tests: the official anthropic SDK against the local backend.

Everything goes through the SDK over real HTTP on loopback; nothing in it is patched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from openai_batch_api.local_server import LocalServer

MODEL = "claude-sonnet-4-5"


@pytest.fixture(autouse=True)
def no_anthropic_environment(monkeypatch) -> None:
    """No real key, base URL or credentials file reaches the SDK."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def claude(server: LocalServer, **values: Any) -> anthropic.Anthropic:
    """An SDK client of the backend; its base URL is the server's without /v1, as the SDK adds it."""
    values.setdefault("api_key", "test-key")
    values.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=server.base_url.removesuffix("/v1"), **values)


@pytest.fixture
def claude_client(server) -> Iterator[anthropic.Anthropic]:
    with claude(server) as client:
        yield client


def params(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **extra}


def requests(count: int, prefix: str = "row") -> list[dict[str, Any]]:
    return [{"custom_id": f"{prefix}-{i}", "params": params(f"question {i}")} for i in range(count)]


def ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} did not end: {batch}"
        time.sleep(0.02)


def results(client: anthropic.Anthropic, batch_id: str) -> dict[str, dict[str, Any]]:
    """custom_id -> its result as plain JSON; each custom_id appears once."""
    found: dict[str, dict[str, Any]] = {}
    for line in client.messages.batches.results(batch_id):
        assert line.custom_id not in found, f"{line.custom_id} answered twice"
        found[line.custom_id] = line.result.model_dump(mode="json", exclude_none=True)
    return found


def error_body(error: anthropic.APIStatusError) -> dict[str, Any]:
    """The error's body without its request_id, which is new on every answer."""
    body = dict(error.body)
    assert body.pop("request_id").startswith("req_")
    return body


def invalid(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
