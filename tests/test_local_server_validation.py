"""Batch input files the API rejects: the batch fails with errors.data naming code, message and line."""

from __future__ import annotations

import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import (
    chat_line,
    chat_lines,
    create_batch,
    finished,
    jsonl,
    raw_json,
    run_batch,
    sdk,
    wait_for,
)

GOOD = chat_line("good", "fine")


def without(key: str) -> dict:
    line = chat_line("x", "text")
    del line[key]
    return line


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [GOOD, "{not json"],
            {
                "code": "invalid_json_line",
                "message": "This line is not parseable as valid JSON.",
                "param": None,
                "line": 2,
            },
        ),
        (
            [GOOD, "[1, 2]"],
            {
                "code": "invalid_json_line",
                "message": "This line is not parseable as valid JSON.",
                "param": None,
                "line": 2,
            },
        ),
        *[
            (
                [without(key)],
                {
                    "code": "missing_required_parameter",
                    "message": f"Missing required parameter: '{key}'.",
                    "param": key,
                    "line": 1,
                },
            )
            for key in ("custom_id", "method", "url", "body")
        ],
        (
            [GOOD, chat_line("good", "again")],
            {
                "code": "duplicate_custom_id",
                "message": "The custom_id for this request is a duplicate of another request. "
                "The custom_id parameter must be unique for each request in a batch.",
                "param": "custom_id",
                "line": 2,
            },
        ),
        (
            [GOOD, {**chat_line("other", "t"), "url": "/v1/embeddings"}],
            {
                "code": "invalid_url",
                "message": "The URL provided for this request does not match the batch endpoint /v1/chat/completions.",
                "param": "url",
                "line": 2,
            },
        ),
        (
            [{**chat_line("get", "t"), "method": "GET"}],
            {
                "code": "invalid_method",
                "message": "The method for this request must be 'POST'.",
                "param": "method",
                "line": 1,
            },
        ),
        (
            [GOOD, chat_line("other", "t", model="gpt-4o")],
            {
                "code": "mismatched_model",
                "message": "The provided model 'gpt-4o' does not match the model 'gpt-4o-mini' of the other "
                "requests. All requests in a batch must use the same model.",
                "param": "body.model",
                "line": 2,
            },
        ),
        (
            [{**chat_line("x", "t"), "body": "not an object"}],
            {
                "code": "invalid_body",
                "message": "The body for this request must be a JSON object.",
                "param": "body",
                "line": 1,
            },
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-custom-id",
        "no-method",
        "no-url",
        "no-body",
        "duplicate-custom-id",
        "wrong-url",
        "wrong-method",
        "two-models",
        "body-not-object",
    ],
)
def test_batch_input_rejected(client, check_spec, lines, expected):
    batch = run_batch(client, lines)
    check_spec("Batch", raw_json(client.batches.with_raw_response.retrieve, batch.id))
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.in_progress_at is None
    assert (batch.output_file_id, batch.error_file_id) == (None, None)
    assert batch.errors.object == "list"
    assert batch.errors.data[0].model_dump() == expected


def test_batch_input_reports_every_bad_line(client):
    batch = run_batch(client, ["{", GOOD, "nope", chat_line("good", "dup")])
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("invalid_json_line", 1),
        ("invalid_json_line", 3),
        ("duplicate_custom_id", 4),
    ]


def test_batch_input_over_50000_requests(client):
    line = jsonl([chat_line("x", "t")]).decode()
    data = "".join(line.replace('"x"', f'"r{i}"') for i in range(50_001)).encode()
    batch = run_batch(client, data)
    assert batch.status == "failed"
    assert batch.errors.data[0].model_dump() == {
        "code": "too_many_requests",
        "message": "The batch input file has 50001 requests; the maximum is 50000.",
        "param": None,
        "line": None,
    }


def test_batch_input_over_the_size_limit(start_server):
    # 200 MB is too much for a test: the limit is lowered, the rule is the same.
    batch = run_batch(sdk(start_server(max_file_bytes=1000)), chat_lines(20))
    assert batch.errors.data[0].model_dump() == {
        "code": "file_too_large",
        "message": "The input file is larger than the 1000 bytes maximum.",
        "param": None,
        "line": None,
    }


def test_batch_input_blank_line_in_the_middle(client):
    data = jsonl([GOOD]) + b"\n" + jsonl([chat_line("second", "t")])
    batch = run_batch(client, data)
    assert [(e.code, e.line) for e in batch.errors.data] == [("invalid_json_line", 2)]


def test_batch_input_crlf_lines_accepted(client):
    data = jsonl(chat_lines(3)).replace(b"\n", b"\r\n")
    assert run_batch(client, data).request_counts.completed == 3


def test_batch_token_limit_exceeded(start_server):
    # Each of these lines is 12 prompt tokens.
    server = start_server(enqueued_token_limit=270, line_latency=0.02)
    with sdk(server) as client:
        first = create_batch(client, chat_lines(20))  # 240 tokens: fits
        wait_for(client, first.id, ("in_progress",))
        assert client.batches.retrieve(first.id).status == "in_progress"
        second = finished(client, create_batch(client, chat_lines(5)).id)  # 60 more: over the limit
        assert second.status == "failed"
        assert second.errors.data[0].model_dump() == {
            "code": "token_limit_exceeded",
            "message": "Enqueued token limit reached for gpt-4o-mini in organization org-local. Limit: 270 enqueued "
            "tokens. Please try again once some in_progress batches have been completed.",
            "param": None,
            "line": None,
        }
        assert finished(client, first.id).status == "completed"
        # Once the first is done, the same batch fits.
        assert finished(client, create_batch(client, chat_lines(5)).id).status == "completed"


def test_batch_token_limit_counts_only_the_same_model(start_server):
    server = start_server(enqueued_token_limit=270, line_latency=0.02)
    with sdk(server) as client:
        first = create_batch(client, chat_lines(20))
        wait_for(client, first.id, ("in_progress",))
        other_model = finished(client, create_batch(client, chat_lines(5, model="gpt-4o")).id)
        assert other_model.status == "completed"


def test_batch_alone_over_the_token_limit(start_server):
    server = start_server(enqueued_token_limit=10)
    with sdk(server) as client:
        batch = run_batch(client, chat_lines(1))
        assert batch.errors.data[0].code == "token_limit_exceeded"
