"""The Batches endpoints and the batch lifecycle of the local backend, through the SDK over HTTP."""

from __future__ import annotations

import json
import time

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import (
    CHAT,
    chat_lines,
    create_batch,
    finished,
    raw_json,
    read_lines,
    run_batch,
    sdk,
    upload,
    wait_for,
)


def test_batch_completes_with_output_in_completion_order(client, check_spec):
    lines = chat_lines(40)
    file = upload(client, lines)
    created = raw_json(
        client.batches.with_raw_response.create,
        input_file_id=file.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={"run": "test"},
    )
    check_spec("Batch", created)
    assert created["status"] == "validating"
    assert created["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert created["completion_window"] == "24h"
    created = client.batches.retrieve(created["id"])
    batch = finished(client, created.id)
    body = raw_json(client.batches.with_raw_response.retrieve, created.id)
    check_spec("Batch", body)
    assert body["status"] == "completed"
    assert body["model"] == "gpt-4o-mini"
    assert body["metadata"] == {"run": "test"}
    assert body["errors"] is None
    assert body["error_file_id"] is None
    assert body["request_counts"] == {"total": 40, "completed": 40, "failed": 0}
    assert body["created_at"] <= body["in_progress_at"] <= body["finalizing_at"] <= body["completed_at"]
    assert body["expires_at"] == body["created_at"] + 86400
    for name in ("failed_at", "expired_at", "cancelling_at", "cancelled_at"):
        assert body[name] is None
    output = read_lines(client, batch.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(line["custom_id"] for line in lines)
    assert [line["custom_id"] for line in output] != [line["custom_id"] for line in lines]
    first = output[0]
    assert set(first) == {"id", "custom_id", "response", "error"}
    assert first["id"].startswith("batch_req_")
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["request_id"].startswith("req_")
    row = int(first["custom_id"].split("-")[1])
    assert first["response"]["body"]["choices"][0]["message"]["content"] == f"Answer to: text of row {row}"
    usages = [line["response"]["body"]["usage"] for line in output]
    assert batch.usage.input_tokens == sum(u["prompt_tokens"] for u in usages)
    assert batch.usage.output_tokens == sum(u["completion_tokens"] for u in usages)
    assert batch.usage.total_tokens == batch.usage.input_tokens + batch.usage.output_tokens
    output_file = raw_json(client.files.with_raw_response.retrieve, batch.output_file_id)
    check_spec("OpenAIFile", output_file)
    assert output_file["purpose"] == "batch_output"
    assert output_file["filename"] == f"{batch.id}_output.jsonl"


def test_batch_progress_moves_while_in_progress(start_server):
    server = start_server(line_latency=0.005)
    with sdk(server) as client:
        created = create_batch(client, chat_lines(200))
        batch = wait_for(client, created.id, ("in_progress",))
        seen = set()
        while batch.status == "in_progress":
            seen.add(batch.request_counts.completed)
            time.sleep(0.05)
            batch = client.batches.retrieve(created.id)
        assert len(seen) >= 3  # saved chunk by chunk, not all at the end
        assert finished(client, created.id).request_counts.completed == 200


def test_batch_failed_lines_go_to_the_error_file(start_server):
    server = start_server(line_failure_pattern="-(3|7)$", line_failure_status=500)
    with sdk(server) as client:
        batch = run_batch(client, chat_lines(10))
        assert batch.status == "completed"
        assert batch.request_counts.model_dump() == {"total": 10, "completed": 8, "failed": 2}
        errors = read_lines(client, batch.error_file_id)
        assert sorted(line["custom_id"] for line in errors) == ["row-3", "row-7"]
        assert errors[0]["response"]["status_code"] == 500
        assert errors[0]["response"]["body"]["error"]["type"] == "server_error"
        assert errors[0]["error"] is None
        assert len(read_lines(client, batch.output_file_id)) == 8
        error_file = client.files.retrieve(batch.error_file_id)
        assert (error_file.purpose, error_file.filename) == ("batch_output", f"{batch.id}_error.jsonl")


def test_batch_all_lines_failing_has_no_output_file(start_server):
    server = start_server(line_failure_rate=1.0, line_failure_status=400)
    with sdk(server) as client:
        batch = run_batch(client, chat_lines(3))
        assert batch.output_file_id is None
        errors = read_lines(client, batch.error_file_id)
        assert {line["response"]["status_code"] for line in errors} == {400}
        assert errors[0]["response"]["body"]["error"]["message"].startswith("Injected failure of request row-")


def test_batch_line_rejected_by_the_endpoint_is_a_failed_request(client):
    line = chat_lines(1)[0]
    del line["body"]["model"]
    batch = run_batch(client, [line, *chat_lines(2)[1:]])
    assert batch.status == "completed"
    [error] = read_lines(client, batch.error_file_id)
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["message"] == "you must provide a model parameter"


def test_batch_cancel_keeps_partial_output(start_server, check_spec):
    server = start_server(line_latency=0.01)
    with sdk(server) as client:
        created = create_batch(client, chat_lines(300))
        batch = wait_for(client, created.id, ("in_progress",))
        while batch.request_counts.completed < 5:
            time.sleep(0.02)
            batch = client.batches.retrieve(created.id)
        cancelling = raw_json(client.batches.with_raw_response.cancel, created.id)
        check_spec("Batch", cancelling)
        assert cancelling["status"] in ("cancelling", "cancelled")
        assert cancelling["cancelling_at"] is not None
        batch = finished(client, created.id)
        assert batch.status == "cancelled"
        assert batch.cancelled_at is not None
        assert 5 <= batch.request_counts.completed < 300
        output = read_lines(client, batch.output_file_id)
        assert len(output) == batch.request_counts.completed
        assert batch.error_file_id is None
        with pytest.raises(openai.ConflictError) as caught:
            client.batches.cancel(created.id)
        assert caught.value.body["message"] == "Cannot cancel a batch with status 'cancelled'."


def test_batch_cancel_right_after_create(start_server):
    server = start_server(line_latency=0.05)
    with sdk(server) as client:
        created = create_batch(client, chat_lines(50))
        client.batches.cancel(created.id)
        batch = finished(client, created.id)
        assert batch.status == "cancelled"
        assert batch.request_counts.completed < 50


def test_batch_cancel_completed_batch_409(client):
    batch = run_batch(client, chat_lines(2))
    with pytest.raises(openai.ConflictError) as caught:
        client.batches.cancel(batch.id)
    assert caught.value.status_code == 409
    assert caught.value.body == {
        "message": "Cannot cancel a batch with status 'completed'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_batch_expires_when_the_window_passes(start_server, check_spec, warm_tokenizer):
    server = start_server(completion_window=0.6, line_latency=0.02)
    with sdk(server) as client:
        created = create_batch(client, chat_lines(100))
        batch = finished(client, created.id)
        check_spec("Batch", raw_json(client.batches.with_raw_response.retrieve, created.id))
        assert batch.status == "expired"
        assert batch.expired_at is not None
        done = batch.request_counts.completed
        assert 0 < done < 100
        output = read_lines(client, batch.output_file_id)
        expired = read_lines(client, batch.error_file_id)
        assert len(output) == done
        assert len(expired) == 100 - done
        assert {line["custom_id"] for line in output} | {line["custom_id"] for line in expired} == {
            f"row-{i}" for i in range(100)
        }
        assert expired[0]["response"] is None
        assert expired[0]["error"] == {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        }


def test_batches_list_newest_first_with_pagination_over_100(client, check_spec):
    file = upload(client, chat_lines(1))
    ids = [client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h").id for _ in range(105)]
    page = raw_json(client.batches.with_raw_response.list, limit=100)
    check_spec("ListBatchesResponse", page)
    assert [b["id"] for b in page["data"]] == list(reversed(ids))[:100]
    assert (page["has_more"], page["first_id"], page["last_id"]) == (True, ids[-1], ids[5])
    default = client.batches.list()
    assert len(default.data) == 20
    assert [b.id for b in client.batches.list(limit=30)] == list(reversed(ids))  # the SDK follows `after`
    rest = client.batches.list(after=ids[5], limit=100)
    assert [b.id for b in rest.data] == list(reversed(ids[:5]))
    assert rest.has_more is False
    with pytest.raises(openai.BadRequestError):
        client.batches.list(limit=101)


def test_batches_list_empty(client, check_spec):
    page = raw_json(client.batches.with_raw_response.list)
    check_spec("ListBatchesResponse", page)
    assert page == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_batch_unknown_id_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.batches.retrieve("batch_nope")
    assert caught.value.body["message"] == "No batch found with id 'batch_nope'."
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("batch_nope")


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (
            {"endpoint": "/v1/nope"},
            400,
            "Invalid value: '/v1/nope'. Supported values are: '/v1/responses', '/v1/chat/completions', "
            "'/v1/embeddings', '/v1/completions', '/v1/moderations', '/v1/images/generations', '/v1/images/edits', "
            "'/v1/videos'.",
        ),
        (
            {"endpoint": "/v1/videos"},
            400,
            "The local backend does not answer /v1/videos batches; use one of /v1/responses, /v1/chat/completions, "
            "/v1/embeddings, /v1/completions, /v1/moderations.",
        ),
        ({"completion_window": "1h"}, 400, "Invalid value: '1h'. Supported values are: '24h'."),
        ({"input_file_id": "file-nope"}, 404, "No such File object: file-nope"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, 400, "Invalid 'metadata': too many properties (at most 16)."),
    ],
    ids=["unknown-endpoint", "unsupported-endpoint", "window", "unknown-file", "metadata"],
)
def test_batch_create_refused(client, check_spec, change, status, message):
    file = upload(client, chat_lines(1))
    params = {"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", **change}
    with pytest.raises(openai.APIStatusError) as caught:
        client.batches.create(**params)
    assert (caught.value.status_code, caught.value.body["message"]) == (status, message)
    check_spec("ErrorResponse", caught.value.response.json())
    assert client.batches.list().data == []


def test_batch_create_from_a_file_of_another_purpose_400(client):
    file = client.files.create(file=("rows.jsonl", b"{}\n"), purpose="user_data")
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    assert caught.value.body["message"] == (
        f"The input file {file.id} has purpose 'user_data'; batch input files must be uploaded with purpose 'batch'."
    )


def test_batch_input_file_deleted_while_in_progress_still_finishes(start_server):
    server = start_server(line_latency=0.005)
    with sdk(server) as client:
        created = create_batch(client, chat_lines(60))
        wait_for(client, created.id, ("in_progress",))
        client.files.delete(created.input_file_id)
        batch = finished(client, created.id)
        assert batch.request_counts.completed == 60


@pytest.mark.parametrize(
    ("endpoint", "body", "check"),
    [
        (
            "/v1/embeddings",
            {"model": "text-embedding-3-small", "input": "hello", "dimensions": 8},
            lambda body: len(body["data"][0]["embedding"]) == 8,
        ),
        (
            "/v1/responses",
            {"model": "gpt-4o-mini", "input": "hello there"},
            lambda body: body["output"][0]["content"][0]["text"] == "Answer to: hello there",
        ),
        (
            "/v1/completions",
            {"model": "gpt-3.5-turbo-instruct", "prompt": "hello"},
            lambda body: body["choices"][0]["text"] == " Answer to: hello",
        ),
        (
            "/v1/moderations",
            {"model": "omni-moderation-latest", "input": "I will attack"},
            lambda body: body["results"][0]["flagged"] is True,
        ),
    ],
    ids=["embeddings", "responses", "completions", "moderations"],
)
def test_batch_other_endpoints(client, endpoint, body, check):
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": endpoint, "body": body} for i in range(3)]
    batch = run_batch(client, lines, endpoint=endpoint)
    assert (batch.status, batch.endpoint, batch.request_counts.completed) == ("completed", endpoint, 3)
    output = read_lines(client, batch.output_file_id)
    assert all(check(line["response"]["body"]) for line in output)


def test_batches_progress_concurrently(start_server):
    server = start_server(line_latency=0.01)  # each batch takes at least a second
    with sdk(server) as client:
        ids = [create_batch(client, chat_lines(100)).id for _ in range(3)]
        deadline = time.monotonic() + 10
        while not all(client.batches.retrieve(batch_id).request_counts.completed for batch_id in ids):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # One after another, the first would have finished before the third started.
        assert all(client.batches.retrieve(batch_id).status == "in_progress" for batch_id in ids)
        assert [finished(client, batch_id).status for batch_id in ids] == ["completed"] * 3


def test_wait_idle_true_once_batches_finish(server, client):
    create_batch(client, chat_lines(20))
    assert server.wait_idle(timeout=10) is True
    assert client.batches.list().data[0].status == "completed"
    assert json.loads(client.batches.with_raw_response.list().text)["data"][0]["request_counts"]["completed"] == 20
