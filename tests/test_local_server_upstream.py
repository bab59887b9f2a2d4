"""Lines answered by an upstream OpenAI-compatible server (here: another local backend)."""

from __future__ import annotations

import socket

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import chat_lines, read_lines, run_batch, sdk

from openai_batch_api.local_server import upstream as upstream_module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_upstream_answers_the_lines(start_server, tmp_path, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "secret")
    upstream = start_server(state_dir=tmp_path / "upstream")
    server = start_server(
        state_dir=tmp_path / "front",
        upstream=upstream.base_url,
        upstream_key_env="UPSTREAM_KEY",
        upstream_concurrency=4,
    )
    with sdk(server) as client:
        batch = run_batch(client, chat_lines(20))
        output = read_lines(client, batch.output_file_id)
    assert batch.request_counts.model_dump() == {"total": 20, "completed": 20, "failed": 0}
    contents = {line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"] for line in output}
    assert contents == {f"row-{i}": f"Answer to: text of row {i}" for i in range(20)}
    assert batch.usage.input_tokens == sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in output)


def test_upstream_without_its_key_gets_401_lines(start_server, tmp_path, monkeypatch):
    monkeypatch.delenv("UPSTREAM_KEY", raising=False)
    upstream = start_server(state_dir=tmp_path / "upstream")
    server = start_server(state_dir=tmp_path / "front", upstream=upstream.base_url, upstream_key_env="UPSTREAM_KEY")
    with sdk(server) as client:
        batch = run_batch(client, chat_lines(2))
        errors = read_lines(client, batch.error_file_id)
    assert batch.output_file_id is None
    assert [line["response"]["status_code"] for line in errors] == [401, 401]
    assert errors[0]["response"]["body"]["error"]["message"].startswith("You didn't provide an API key.")


def test_upstream_server_errors_become_failed_lines(start_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "secret")
    upstream = start_server(
        state_dir=tmp_path / "upstream",
        http_error_rate=1.0,
        http_error_kinds=("503",),
        http_error_paths="^POST /v1/chat/completions$",
    )
    server = start_server(state_dir=tmp_path / "front", upstream=upstream.base_url, upstream_key_env="OPENAI_API_KEY")
    with sdk(server) as client:
        batch = run_batch(client, chat_lines(2))
        errors = read_lines(client, batch.error_file_id)
    assert batch.request_counts.failed == 2
    assert {line["response"]["status_code"] for line in errors} == {503}


def test_upstream_unreachable(start_server, tmp_path):
    server = start_server(state_dir=tmp_path / "front", upstream=f"http://127.0.0.1:{free_port()}/v1")
    with sdk(server) as client:
        batch = run_batch(client, chat_lines(2))
        errors = read_lines(client, batch.error_file_id)
    assert batch.status == "completed"
    assert batch.request_counts.failed == 2
    assert errors[0]["response"] is None
    assert errors[0]["error"]["code"] == "upstream_unreachable"
    assert errors[0]["error"]["message"].startswith("cannot reach the upstream server at http://127.0.0.1:")


def test_upstream_answer_too_large_is_a_failed_line_not_kept(start_server, tmp_path, monkeypatch):
    # 256 MB is too much for a test: the limit is lowered, the rule is the same.
    monkeypatch.setattr(upstream_module, "MAX_ANSWER_BYTES", 200)
    monkeypatch.setenv("UPSTREAM_KEY", "secret")
    upstream = start_server(state_dir=tmp_path / "upstream")
    server = start_server(state_dir=tmp_path / "front", upstream=upstream.base_url, upstream_key_env="UPSTREAM_KEY")
    with sdk(server) as client:
        batch = run_batch(client, chat_lines(2))
        errors = read_lines(client, batch.error_file_id)
    assert batch.request_counts.failed == 2
    assert {line["response"]["status_code"] for line in errors} == {502}
    assert errors[0]["response"]["body"]["error"] == {
        "message": "The upstream server's answer is larger than 200 bytes; it was not kept.",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_synchronous_requests_are_answered_by_the_upstream(start_server, tmp_path, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "secret")
    upstream = start_server(state_dir=tmp_path / "upstream")
    server = start_server(state_dir=tmp_path / "front", upstream=upstream.base_url, upstream_key_env="UPSTREAM_KEY")
    with sdk(server) as client:
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
        )
    assert answer.choices[0].message.content == "Answer to: hello there"
    monkeypatch.delenv("UPSTREAM_KEY")  # the front sends no key now: the upstream's 401 comes back as it is
    front = start_server(state_dir=tmp_path / "front-2", upstream=upstream.base_url, upstream_key_env="UPSTREAM_KEY")
    with sdk(front) as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    assert refused.value.body["message"].startswith("You didn't provide an API key.")


def test_synchronous_request_with_the_upstream_unreachable_is_a_502(start_server, tmp_path):
    server = start_server(upstream=f"http://127.0.0.1:{free_port()}/v1")
    with sdk(server) as client:
        with pytest.raises(openai.APIStatusError) as failed:
            client.with_options(max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
            )
    assert failed.value.status_code == 502
    assert failed.value.body["message"].startswith("cannot reach the upstream server at http://127.0.0.1:")
