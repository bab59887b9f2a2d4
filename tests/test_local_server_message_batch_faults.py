"""Message batches under the backend's key, its fault options, expiry and restarts, through the
official anthropic SDK over loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import anthropic
import pytest
from anthropic_support import *  # noqa: F403 - the shared fixtures
from anthropic_support import claude, ended, error_body, invalid, params, requests, results
from test_local_server_support import *  # noqa: F403 - the shared fixtures

from openai_batch_api.local_server import LocalServer

KEY = "local-test-key-0123456789"


@pytest.fixture
def keyed(tmp_path):
    with LocalServer(state_dir=tmp_path / "keyed", api_key=KEY) as server:
        yield server


def test_key_by_bearer_lets_its_holder_in(keyed):
    # The SDK sends its api_key as Authorization: Bearer.
    with claude(keyed, api_key=KEY) as client:
        assert ended(client, client.messages.batches.create(requests=requests(1)).id).request_counts.succeeded == 1


def test_key_by_x_api_key_lets_its_holder_in(keyed):
    with claude(keyed, api_key=None, default_headers={"X-Api-Key": KEY}) as client:
        assert client.messages.batches.list().data == []


@pytest.mark.parametrize(
    ("values", "status", "expected"),
    [
        ({"api_key": "wrong-key"}, 401, invalid("invalid x-api-key", "authentication_error")),
        (
            {"api_key": None, "default_headers": {"X-Api-Key": "wrong-key"}},
            401,
            invalid("invalid x-api-key", "authentication_error"),
        ),
        (
            {"default_headers": {"Authorization": anthropic.Omit()}},
            401,
            invalid("x-api-key header is required", "authentication_error"),
        ),
        (
            {"api_key": KEY, "default_headers": {"anthropic-version": anthropic.Omit()}},
            400,
            invalid("anthropic-version: header is required"),
        ),
    ],
    ids=["wrong-bearer", "wrong-x-api-key", "no-key", "no-version"],
)
def test_message_batches_refused_without_the_key_or_version(keyed, values, status, expected):
    with claude(keyed, **values) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.batches.create(requests=requests(1))
    assert caught.value.status_code == status
    assert error_body(caught.value) == expected


def test_message_batches_without_a_key_set_take_any_key_but_need_one(server):
    with claude(server, api_key="anything") as client:
        assert client.messages.batches.list().data == []
    with claude(server, default_headers={"Authorization": anthropic.Omit()}) as client:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.messages.batches.list()
    assert error_body(caught.value) == invalid("x-api-key header is required", "authentication_error")


def test_unknown_message_batches_route_is_a_not_found_error(claude_client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude_client.get("/v1/messages/batches/x/y", cast_to=object)
    assert error_body(caught.value) == invalid("Invalid URL (GET /v1/messages/batches/x/y)", "not_found_error")


@pytest.mark.parametrize(
    ("kind", "error_class", "status", "expected"),
    [
        (
            "429",
            anthropic.RateLimitError,
            429,
            invalid("Rate limit reached for requests. Please try again in a moment.", "rate_limit_error"),
        ),
        (
            "500",
            anthropic.InternalServerError,
            500,
            invalid("The server had an error while processing your request. Sorry about that!", "api_error"),
        ),
        ("503", anthropic.OverloadedError, 529, invalid("Overloaded", "overloaded_error")),
    ],
)
def test_injected_http_errors_come_in_the_anthropic_envelope(start_server, kind, error_class, status, expected):
    server = start_server(http_error_rate=1.0, http_error_kinds=[kind], http_error_paths="^POST /v1/messages/batches$")
    with claude(server) as client:
        with pytest.raises(error_class) as caught:
            client.messages.batches.create(requests=requests(1))
        assert caught.value.status_code == status
        assert error_body(caught.value) == expected
        assert client.messages.batches.list().data == []  # refused before anything was done


def test_injected_429_says_when_to_retry_and_the_sdk_retries(start_server):
    server = start_server(
        http_error_rate=0.5, http_error_kinds=["429"], retry_after=0.01, seed=3, http_error_paths="^GET "
    )
    with claude(server, max_retries=10) as client:
        batch = client.messages.batches.create(requests=requests(3))
        assert ended(client, batch.id).request_counts.succeeded == 3
        assert len(results(client, batch.id)) == 3


def test_lost_answer_to_a_create_leaves_the_batch_created(start_server):
    server = start_server(http_error_rate=1.0, http_error_kinds=["drop_after"], http_error_paths="^POST ")
    with claude(server) as client:
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.batches.create(requests=requests(2))
        [batch] = client.messages.batches.list().data
        assert batch.request_counts.processing + batch.request_counts.succeeded == 2
        assert set(results(client, ended(client, batch.id).id)) == {"row-0", "row-1"}


def test_dropped_create_creates_nothing(start_server):
    server = start_server(http_error_rate=1.0, http_error_kinds=["drop"], http_error_paths="^POST ")
    with claude(server) as client:
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.batches.create(requests=requests(2))
        assert client.messages.batches.list().data == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, invalid("The server had an error while processing your request. Sorry about that!", "api_error")),
        (429, invalid("Rate limit reached for requests.", "rate_limit_error")),
        (529, invalid("The server had an error while processing your request. Sorry about that!", "overloaded_error")),
        (400, invalid("Injected failure of request row-1.")),
    ],
)
def test_failing_lines_end_errored_with_the_api_error_type(start_server, status, expected):
    server = start_server(line_failure_pattern="^row-1$", line_failure_status=status)
    with claude(server) as client:
        batch = client.messages.batches.create(requests=requests(3))
        done = ended(client, batch.id)
        assert (done.request_counts.succeeded, done.request_counts.errored) == (2, 1)
        assert results(client, batch.id)["row-1"] == {"type": "errored", "error": expected}


def test_message_batch_past_its_window_ends_with_expired_requests(start_server, warm_tokenizer):
    server = start_server(completion_window=0.5, line_latency=0.02)
    with claude(server) as client:
        batch = client.messages.batches.create(requests=requests(200))
        done = ended(client, batch.id)
        counts = done.request_counts
        assert counts.expired > 0
        assert counts.succeeded + counts.expired == 200
        assert (done.expires_at - done.created_at).total_seconds() == pytest.approx(0.5, abs=0.01)
        found = results(client, batch.id)
        assert sum(result == {"type": "expired"} for result in found.values()) == counts.expired


def test_message_batch_resumes_after_a_restart_each_request_answered_once(start_server, tmp_path):
    first = start_server(state_dir=tmp_path / "state", line_latency=0.01)
    with claude(first) as client:
        batch = client.messages.batches.create(requests=requests(150))
        ended_before = client.messages.batches.create(requests=requests(2, prefix="early"))
        ended(client, ended_before.id)
        assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    first.stop()
    second = start_server(state_dir=tmp_path / "state")
    with claude(second) as client:
        done = ended(client, batch.id)
        assert done.request_counts.succeeded == 150
        assert set(results(client, batch.id)) == {f"row-{i}" for i in range(150)}
        assert set(results(client, ended_before.id)) == {"early-0", "early-1"}
        assert [b.id for b in client.messages.batches.list()] == [ended_before.id, batch.id]


def test_message_batch_resumes_after_the_process_is_killed(start_server, tmp_path):
    state = tmp_path / "state"
    command = [sys.executable, "-m", "openai_batch_api.local_server", "--port", "0", "--state-dir", str(state)]
    process = subprocess.Popen(
        [*command, "--line-latency", "0.005"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        base_url = process.stdout.readline().split(" at ")[1].split(" ")[0]
        with anthropic.Anthropic(base_url=base_url.removesuffix("/v1"), api_key="k", max_retries=0) as client:
            batch_id = client.messages.batches.create(requests=requests(400)).id
            time.sleep(0.5)  # some requests answered, most not
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
    server = start_server(state_dir=state)
    with claude(server) as client:
        assert ended(client, batch_id).request_counts.succeeded == 400
        assert set(results(client, batch_id)) == {f"row-{i}" for i in range(400)}


def test_removing_the_state_removes_message_batches(start_server, tmp_path):
    server = start_server(state_dir=tmp_path / "state", line_latency=0.01)
    with claude(server) as client:
        done = ended(client, client.messages.batches.create(requests=requests(2)).id)
        client.messages.batches.create(requests=requests(50))
    server.stop()
    assert (tmp_path / "state" / "message_batches" / f"{done.id}.results.jsonl").is_file()
    server.remove_state()
    assert not (tmp_path / "state").exists()


def test_upstream_answers_message_batch_requests_through_its_chat_endpoint(start_server, tmp_path, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "secret")
    upstream = start_server(state_dir=tmp_path / "upstream")
    server = start_server(state_dir=tmp_path / "front", upstream=upstream.base_url, upstream_key_env="UPSTREAM_KEY")
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    with claude(server) as client:
        structured = {"format": {"type": "json_schema", "schema": schema}}
        batch = client.messages.batches.create(
            requests=[
                *requests(3),
                {"custom_id": "structured", "params": params("Paris", system="Be brief.", output_config=structured)},
                {"custom_id": "bad", "params": params(max_tokens=0)},
            ]
        )
        done = ended(client, batch.id)
        found = results(client, batch.id)
    assert (done.request_counts.succeeded, done.request_counts.errored) == (4, 1)
    texts = {
        custom_id: result["message"]["content"][0]["text"] for custom_id, result in found.items() if custom_id != "bad"
    }
    assert {texts[f"row-{i}"] for i in range(3)} == {f"Answer to: question {i}" for i in range(3)}
    assert set(json.loads(texts["structured"])) == {"city"}
    assert found["row-0"]["message"]["usage"]["input_tokens"] > 0
    # Refused by the backend's own checks: never sent upstream.
    assert found["bad"] == {
        "type": "errored",
        "error": invalid("max_tokens: Input should be greater than or equal to 1"),
    }


def test_upstream_refusing_a_message_batch_request_ends_it_errored(start_server, tmp_path, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "not-the-key")
    upstream = start_server_with_key(tmp_path / "upstream")
    try:
        server = start_server(state_dir=tmp_path / "front", upstream=upstream.base_url, upstream_key_env="UPSTREAM_KEY")
        with claude(server) as client:
            batch = client.messages.batches.create(requests=requests(1))
            ended(client, batch.id)
            [result] = results(client, batch.id).values()
    finally:
        upstream.stop()
    upstream_refusal = (
        "Incorrect API key provided: ***. This local backend accepts only the key it was started with "
        "(--api-key or OPENAI_BATCH_API_LOCAL_KEY)."
    )
    assert result == {"type": "errored", "error": invalid(upstream_refusal, "authentication_error")}


def start_server_with_key(state_dir) -> LocalServer:
    server = LocalServer(state_dir=state_dir, api_key=KEY)
    server.start()
    return server


def test_restart_removes_message_batch_files_nothing_needs_and_keeps_the_users(start_server, tmp_path):
    first = start_server(state_dir=tmp_path / "state")
    with claude(first) as client:
        done = ended(client, client.messages.batches.create(requests=requests(2)).id)
    first.stop()
    folder = tmp_path / "state" / "message_batches"
    # What a create or an end cut short by a killed process leaves, beside a file of the user's.
    leftovers = [
        folder / "msgbatch_0123456789abcdef01234567.requests.jsonl",
        folder / f".{done.id}.results.jsonl.0123456789abcdef.part",
        folder / f"{done.id}.requests.jsonl",
    ]
    for path in [*leftovers, folder / "notes.txt"]:
        path.write_text("{}\n")
    second = start_server(state_dir=tmp_path / "state")
    with claude(second) as client:
        assert set(results(client, done.id)) == {"row-0", "row-1"}
    assert [path.exists() for path in leftovers] == [False, False, False]
    assert (folder / "notes.txt").read_text() == "{}\n"
