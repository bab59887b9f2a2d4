"""The headers the API sends on every answer, and HEAD answered like GET without a body."""

from __future__ import annotations

import http.client
import urllib.parse

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import chat_lines, jsonl, upload

HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "openai-processing-ms",
    "x-request-id",
)


def raw_request(server, method: str, path: str, headers: dict[str, str] | None = None):
    """(status, headers, body) of one plain HTTP request to the backend."""
    url = urllib.parse.urlsplit(server.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request(method, url.path + path, headers={"Authorization": "Bearer k", **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_api_headers(headers) -> None:
    missing = [name for name in HEADERS if name not in headers]
    assert not missing
    assert int(headers["x-ratelimit-limit-requests"]) > int(headers["x-ratelimit-remaining-requests"]) >= 0
    assert int(headers["x-ratelimit-limit-tokens"]) >= int(headers["x-ratelimit-remaining-tokens"]) >= 0
    assert int(headers["openai-processing-ms"]) >= 0


def test_headers_on_files_batches_and_synchronous_answers(client):
    file = upload(client, chat_lines(1))
    calls = [
        client.files.with_raw_response.list(),
        client.files.with_raw_response.retrieve(file.id),
        client.files.with_raw_response.content(file.id),
        client.batches.with_raw_response.list(),
        client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        ),
        client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi"),
    ]
    for raw in calls:
        assert_api_headers(raw.headers)


def test_headers_on_error_answers(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.files.retrieve("file-missing")
    assert_api_headers(caught.value.response.headers)


def test_headers_on_injected_429_keep_retry_after(start_server):
    server = start_server(http_error_rate=1.0, http_error_kinds=["429"], retry_after=2)
    status, headers, _ = raw_request(server, "GET", "/files")
    assert status == 429
    assert headers["retry-after"] == "2"
    assert_api_headers(headers)


@pytest.mark.parametrize("path", ["/files", "/batches", "/files/{id}", "/files/{id}/content", "/nowhere"])
def test_head_answers_like_get_without_a_body(server, client, path):
    file = client.files.create(file=("in.jsonl", jsonl(chat_lines(2))), purpose="batch")
    path = path.format(id=file.id)
    get_status, get_headers, get_body = raw_request(server, "GET", path)
    head_status, head_headers, head_body = raw_request(server, "HEAD", path)
    assert head_status == get_status
    assert head_body == b""
    assert head_headers["content-type"] == get_headers["content-type"]
    assert head_headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    assert_api_headers(head_headers)
