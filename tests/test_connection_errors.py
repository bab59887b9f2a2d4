"""An unreachable server fails within seconds, says so while it retries, and a base_url without /v1 gets a hint."""

from __future__ import annotations

import re
import socket

import pytest

from project_support import Project


def closed_loopback_port() -> int:
    """A loopback port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def retry_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("retrying in ")]


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        (f"http://127.0.0.1:{closed_loopback_port()}/v1", "connection refused"),
        # .invalid never resolves (RFC 6761) and the lookup sends nothing anywhere.
        ("http://batch-api.invalid/v1", "the name batch-api.invalid does not resolve"),
    ],
)
def test_create_batch_unreachable_server_error_after_two_quick_retries(tmp_path, monkeypatch, base_url, reason):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    project = Project(root=tmp_path, base_url=base_url)
    project.write_rows(2)
    result = project.run("create-batch")
    assert result.exit_code == 1
    lines = retry_lines(result.err)
    assert len(lines) == 2
    for number, line in enumerate(lines, start=1):
        assert re.fullmatch(
            rf"retrying in \d+\.\ds \(retry {number} of 2\): {reason} \(GET {base_url}/batches\?limit=100\)",
            line,
        ), line
    assert result.err.splitlines()[-1] == (
        f"error: cannot reach the API at {base_url}/batches?limit=100: {reason}; "
        "check base_url and the network, then run the command again"
    )


def test_create_batch_retry_after_429_is_said_on_stderr(tmp_path, monkeypatch):
    from openai_batch_api.local_server import LocalServer, ServerOptions

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    options = ServerOptions(seed=1, http_error_rate=1.0, http_error_kinds=("429",), retry_after=0.1,
                            http_error_paths="POST /v1/batches$")
    with LocalServer(state_dir=tmp_path / "state", options=options) as server:
        base_url = server.base_url
        project = Project(root=tmp_path, base_url=base_url)
        project.write_rows(2)
        result = project.run("create-batch")
    assert result.exit_code == 1
    lines = retry_lines(result.err)
    assert len(lines) == 7
    assert lines[0] == f"retrying in 0.1s (retry 1 of 7): the API answered 429 (POST {base_url}/batches)"


def test_create_batch_base_url_without_v1_hint(project, server):
    base = server.base_url.removesuffix("/v1")
    project.write_rows(2)
    project.write_config(base_url=base)
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert re.fullmatch(
        r"error: the API answered 404: Invalid URL \(POST /files\) \(request id req_\w+\); "
        rf"base_url may be missing its /v1: try base_url: {re.escape(base)}/v1",
        result.err.splitlines()[-1],
    ), result.err


@pytest.mark.parametrize("header", ["soon", "Tue, 99 Foo 2026 99:99:99 GMT", ""])
def test_retry_delay_of_a_retry_after_neither_seconds_nor_a_date_is_the_backoff(header):
    import httpx2
    import openai

    from openai_batch_api.utils.providers.openai import RetryPolicy, retry_delay

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/batches")
    response = httpx2.Response(429, headers={"retry-after": header}, request=request)
    exc = openai.RateLimitError("rate limited", response=response, body=None)
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    assert 1.0 <= retry_delay(exc, 1, policy) <= 2.0  # 2 s of backoff, jittered down to half
