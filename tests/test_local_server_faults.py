"""Injected faults: transient HTTP errors on API calls and failing lines, reproducible under a seed."""

from __future__ import annotations

import time

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import chat_lines, read_lines, run_batch, sdk, upload


def test_fault_429_carries_retry_after(start_server, check_spec):
    server = start_server(http_error_rate=1.0, http_error_kinds=("429",), retry_after=2.5)
    with sdk(server) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            client.files.list()
    assert caught.value.response.headers["retry-after"] == "2.5"
    assert caught.value.response.headers["retry-after-ms"] == "2500"
    check_spec("ErrorResponse", caught.value.response.json())
    assert caught.value.body["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503)])
def test_fault_server_errors(start_server, kind, status):
    server = start_server(http_error_rate=1.0, http_error_kinds=(kind,))
    with sdk(server) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            client.batches.list()
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "server_error"


def test_fault_drop_closes_before_handling(start_server):
    server = start_server(http_error_rate=1.0, http_error_kinds=("drop",), http_error_paths="^POST /v1/files$")
    with sdk(server) as client:
        with pytest.raises(openai.APIConnectionError):
            upload(client, chat_lines(1))
        assert client.files.list().data == []  # GETs are not faulted: nothing was stored


def test_fault_drop_after_handles_then_closes(start_server):
    server = start_server(http_error_rate=1.0, http_error_kinds=("drop_after",), http_error_paths="^POST /v1/files$")
    with sdk(server) as client:
        with pytest.raises(openai.APIConnectionError):
            upload(client, chat_lines(1))
        # The ambiguous case: the client saw an error, but the file exists.
        [stored] = client.files.list().data
        assert stored.filename == "input.jsonl"


def test_fault_paths_limit_which_calls_fail(start_server):
    server = start_server(http_error_rate=1.0, http_error_kinds=("500",), http_error_paths="^POST /v1/batches$")
    with sdk(server) as client:
        file = upload(client, chat_lines(1))
        client.files.retrieve(file.id)
        with pytest.raises(openai.InternalServerError):
            client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")


def test_fault_sync_endpoints_untouched_by_default(start_server):
    server = start_server(http_error_rate=1.0, http_error_kinds=("500",))
    with sdk(server) as client:
        answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content == "Answer to: x"


def test_fault_api_latency_delays_files_and_batches_calls(start_server):
    server = start_server(api_latency=0.2)
    with sdk(server) as client:
        client.files.list()  # the connection is open before timing
        started = time.monotonic()
        client.batches.list()
        elapsed = time.monotonic() - started
    assert elapsed >= 0.2


def outcomes(server, calls: int = 30) -> list[str]:
    seen = []
    with sdk(server) as client:
        for _ in range(calls):
            try:
                client.files.list()
                seen.append("ok")
            except openai.APIStatusError as exc:
                seen.append(str(exc.status_code))
            except openai.APIConnectionError:
                seen.append("drop")
    return seen


def test_fault_sequence_reproducible_with_a_seed(start_server, tmp_path):
    options = {"http_error_rate": 0.5, "http_error_kinds": ("429", "500", "drop"), "seed": 42}
    first = outcomes(start_server(state_dir=tmp_path / "a", **options))
    second = outcomes(start_server(state_dir=tmp_path / "b", **options))
    assert first == second
    assert {"ok", "429", "500", "drop"} <= set(first)


def test_fault_line_failure_rate_reproducible_with_a_seed(start_server, tmp_path):
    failed = []
    for name in ("a", "b"):
        server = start_server(state_dir=tmp_path / name, line_failure_rate=0.3, seed=3)
        with sdk(server) as client:
            batch = run_batch(client, chat_lines(50))
            failed.append(sorted(line["custom_id"] for line in read_lines(client, batch.error_file_id)))
            # The completion order is reproducible too.
            order = [line["custom_id"] for line in read_lines(client, batch.output_file_id)]
            failed[-1].append(order)
    assert failed[0] == failed[1]
    assert 5 < len(failed[0]) - 1 < 30


def test_fault_line_failure_429_body(start_server):
    server = start_server(line_failure_pattern="row-0$", line_failure_status=429)
    with sdk(server) as client:
        batch = run_batch(client, chat_lines(2))
        [error] = read_lines(client, batch.error_file_id)
    assert error["response"]["status_code"] == 429
    assert error["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
