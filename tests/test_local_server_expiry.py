"""Expiration policies: files.create(expires_after=...) and batches.create(output_expires_after=...)."""

from __future__ import annotations

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import chat_lines, jsonl, read_lines, run_batch

DATA = jsonl(chat_lines(2))
DEFAULT_LIFETIME = 30 * 24 * 3600


def test_upload_expires_after_sets_expires_at(client):
    file = client.files.create(
        file=("in.jsonl", DATA), purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert file.expires_at == file.created_at + 3600
    assert client.files.retrieve(file.id).expires_at == file.created_at + 3600


def test_upload_without_policy_expires_in_30_days(client):
    file = client.files.create(file=("in.jsonl", DATA), purpose="batch")
    assert file.expires_at == file.created_at + DEFAULT_LIFETIME


def test_expired_upload_is_gone(server, client):
    file = client.files.create(
        file=("in.jsonl", DATA), purpose="batch", expires_after={"anchor": "created_at", "seconds": 7200}
    )
    kept = client.files.create(file=("kept.jsonl", DATA), purpose="batch")
    # An hour is too long to wait in a test: the sweep the server runs is called with the expiry time.
    assert server._store.expire_files(now=file.created_at + 7199) == []
    assert server._store.expire_files(now=file.created_at + 7200) == [file.id]
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(file.id)
    assert [f.id for f in client.files.list()] == [kept.id]
    assert not server._store.blob_path(file.id).exists()


def test_output_expires_after_sets_the_result_files_expiry(server, client):
    batch = run_batch(
        client, chat_lines(2) + [{"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
                                  "body": {"messages": [{"role": "user", "content": "x"}]}}],
        output_expires_after={"anchor": "created_at", "seconds": 86400},
    )
    assert batch.status == "completed"
    for file_id in (batch.output_file_id, batch.error_file_id):
        file = client.files.retrieve(file_id)
        assert file.expires_at == file.created_at + 86400
    server._store.expire_files(now=client.files.retrieve(batch.output_file_id).created_at + 86400)
    with pytest.raises(openai.NotFoundError):
        read_lines(client, batch.output_file_id)
    assert client.files.retrieve(batch.input_file_id).expires_at is not None  # the input keeps its 30 days


def test_output_files_expire_in_30_days_by_default(client):
    batch = run_batch(client, chat_lines(1))
    file = client.files.retrieve(batch.output_file_id)
    assert file.expires_at == file.created_at + DEFAULT_LIFETIME


def test_expired_input_of_a_running_batch_stays_readable_until_it_finishes(start_server):
    server = start_server(line_latency=0.05)
    with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
        file = client.files.create(
            file=("in.jsonl", jsonl(chat_lines(4))), purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
        batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
        server._store.expire_files(now=file.created_at + 3600)
        assert server.wait_idle(timeout=20)
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert len(read_lines(client, done.output_file_id)) == 4
        assert not server._store.blob_path(file.id).exists()


BAD_POLICIES = [
    ({"anchor": "created_at", "seconds": 60}, "seconds", "expected a value from 3600 to 2592000, but got 60 instead"),
    ({"anchor": "created_at", "seconds": 2592001}, "seconds", "but got 2592001 instead"),
    ({"anchor": "last_active_at", "seconds": 3600}, "anchor", "Supported values are: 'created_at'"),
]


@pytest.mark.parametrize(("policy", "field", "message"), BAD_POLICIES, ids=["short", "long", "anchor"])
def test_upload_bad_expires_after_refused(client, policy, field, message):
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("in.jsonl", DATA), purpose="batch", expires_after=policy)
    assert caught.value.body["param"] == f"expires_after.{field}"
    assert message in caught.value.body["message"]
    assert list(client.files.list()) == []


@pytest.mark.parametrize(("policy", "field", "message"), BAD_POLICIES, ids=["short", "long", "anchor"])
def test_batch_bad_output_expires_after_refused(client, policy, field, message):
    file = client.files.create(file=("in.jsonl", DATA), purpose="batch")
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h",
            output_expires_after=policy,
        )
    assert caught.value.body["param"] == f"output_expires_after.{field}"
    assert message in caught.value.body["message"]
    assert list(client.batches.list()) == []
