"""A request line with fields of the wrong type gets its own 400; the batch's other lines are answered."""

from __future__ import annotations

import json

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import (
    MODEL,
    chat_line,
    chat_lines,
    create_batch,
    finished,
    read_lines,
    run_batch,
    sdk,
    upload,
    wait_for,
)

from openai_batch_api.local_server import worker


def with_body(custom_id: str, **fields) -> dict:
    line = chat_line(custom_id, "text")
    line["body"].update(fields)
    return line


def answer_without_ids(line: dict) -> dict:
    """An error-file line with the ids the backend makes up each time taken out."""
    assert line["id"].startswith("batch_req_") and line["response"]["request_id"].startswith("req_")
    return {**line, "id": "ID", "response": {**line["response"], "request_id": "REQ"}}


def bad_request(custom_id: str, message: str, param: str, code: str) -> dict:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return {
        "id": "ID",
        "custom_id": custom_id,
        "response": {"status_code": 400, "request_id": "REQ", "body": {"error": error}},
        "error": None,
    }


def test_batch_lines_of_wrong_types_each_get_a_400(client):
    lines = [
        chat_line("good-1", "first"),
        with_body("messages-number", messages=5),
        with_body("model-number", model=5),
        with_body("message-text", messages=["hello"]),
        with_body("n-huge", n=10**9),
        chat_line("good-2", "second"),
    ]
    batch = run_batch(client, lines)
    assert batch.status == "completed"
    assert batch.errors is None
    assert batch.request_counts.model_dump() == {"total": 6, "completed": 2, "failed": 4}
    assert sorted(line["custom_id"] for line in read_lines(client, batch.output_file_id)) == ["good-1", "good-2"]
    errors = sorted(read_lines(client, batch.error_file_id), key=lambda line: line["custom_id"])
    assert [answer_without_ids(line) for line in errors] == [
        bad_request(
            "message-text",
            "Invalid type for 'messages[0]': expected an object, but got a string instead.",
            "messages[0]",
            "invalid_type",
        ),
        bad_request(
            "messages-number",
            "Invalid type for 'messages': expected an array of objects, but got an integer instead.",
            "messages",
            "invalid_type",
        ),
        bad_request(
            "model-number",
            "Invalid type for 'model': expected a string, but got an integer instead.",
            "model",
            "invalid_type",
        ),
        bad_request(
            "n-huge",
            "Invalid 'n': expected a value from 1 to 128, but got 1000000000 instead.",
            "n",
            "integer_out_of_range",
        ),
    ]


@pytest.mark.parametrize(
    ("endpoint", "body", "message", "param"),
    [
        (
            "/v1/embeddings",
            {"model": "text-embedding-3-small", "input": 5},
            "Invalid type for 'input': expected a string or an array, but got an integer instead.",
            "input",
        ),
        (
            "/v1/responses",
            {"model": MODEL, "input": {"text": "hi"}},
            "Invalid type for 'input': expected a string or an array, but got an object instead.",
            "input",
        ),
        (
            "/v1/completions",
            {"model": "gpt-3.5-turbo-instruct", "prompt": 1.5},
            "Invalid type for 'prompt': expected a string or an array, but got a decimal instead.",
            "prompt",
        ),
    ],
)
def test_batch_line_of_wrong_type_on_other_endpoints(client, endpoint, body, message, param):
    lines = [{"custom_id": "bad", "method": "POST", "url": endpoint, "body": body}]
    batch = run_batch(client, lines, endpoint=endpoint)
    assert batch.status == "completed"
    [error] = read_lines(client, batch.error_file_id)
    assert answer_without_ids(error) == bad_request("bad", message, param, "invalid_type")


def test_batch_embedding_dimensions_beyond_the_widest_400(client):
    body = {"model": "text-embedding-3-small", "input": "x", "dimensions": 10**9}
    batch = run_batch(
        client,
        [{"custom_id": "wide", "method": "POST", "url": "/v1/embeddings", "body": body}],
        endpoint="/v1/embeddings",
    )
    [error] = read_lines(client, batch.error_file_id)
    assert error["response"]["body"]["error"]["message"] == (
        "Invalid 'dimensions': expected a value from 1 to 3072, but got 1000000000 instead."
    )


def test_chat_request_of_wrong_type_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[], extra_body={"messages": 5})
    assert caught.value.body == {
        "message": "Invalid type for 'messages': expected an array of objects, but got an integer instead.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "invalid_type",
    }


def test_small_batch_is_not_kept_waiting_behind_big_ones_being_validated(start_server, monkeypatch):
    # Validation reads CHUNK_LINES lines per step; small steps make three 20,000-line files take
    # thousands of steps each, so a batch created right after them must finish long before they
    # leave "validating" if it gets its turn between their steps.
    monkeypatch.setattr(worker, "CHUNK_LINES", 10)
    server = start_server()
    with sdk(server) as client:
        big_files = [upload(client, chat_lines(20_000)) for _ in range(3)]
        small_file = upload(client, chat_lines(1))
        big = [
            client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
            for file in big_files
        ]
        small = client.batches.create(
            input_file_id=small_file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert finished(client, small.id, timeout=60).status == "completed"
        assert [client.batches.retrieve(batch.id).status for batch in big] == ["validating"] * 3
        for batch in big:
            client.batches.cancel(batch.id)
            wait_for(client, batch.id, ("cancelled",), timeout=60)


def test_bad_line_in_a_big_batch_read_in_slices(start_server, monkeypatch):
    monkeypatch.setattr(worker, "CHUNK_LINES", 7)
    server = start_server()
    lines = chat_lines(50)
    lines[33] = with_body("row-33", model=5)
    with sdk(server) as client:
        batch = finished(client, create_batch(client, lines).id)
        assert batch.request_counts.model_dump() == {"total": 50, "completed": 49, "failed": 1}
        [error] = read_lines(client, batch.error_file_id)
        assert error["custom_id"] == "row-33"
        assert json.dumps(error["response"]["body"]["error"]["param"]) == '"model"'


def test_batch_lines_asking_for_huge_or_endless_json_are_answered_small(client):
    def asking(custom_id: str, schema) -> dict:
        format_ = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
        return with_body(custom_id, response_format=format_)

    nested = {"type": "array", "minItems": 100, "items": {"type": "array", "minItems": 100, "items": {}}}
    lines = [
        asking("huge-array", {"type": "array", "minItems": 10**9, "items": nested}),
        asking("endless", {"anyOf": [{"$ref": "#"}]}),
        asking("long-string", {"type": "string", "minLength": 10**12}),
        asking("odd-properties", {"type": "object", "properties": 5}),
    ]
    batch = run_batch(client, lines)
    assert batch.request_counts.model_dump() == {"total": 4, "completed": 4, "failed": 0}
    contents = {
        line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"]
        for line in read_lines(client, batch.output_file_id)
    }
    assert max(len(content) for content in contents.values()) < 1_000_000
    assert json.loads(contents["endless"]) is None
    assert json.loads(contents["odd-properties"]) == {}
    assert len(json.loads(contents["long-string"])) == 100_000


@pytest.mark.parametrize(
    ("fields", "message", "param", "code"),
    [
        (
            {"max_tokens": "abc"},
            "Invalid type for 'max_tokens': expected an integer, but got a string instead.",
            "max_tokens",
            "invalid_type",
        ),
        (
            {"max_completion_tokens": 2.5},
            "Invalid type for 'max_completion_tokens': expected an integer, but got a decimal instead.",
            "max_completion_tokens",
            "invalid_type",
        ),
        (
            {"max_tokens": -5},
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got -5 instead.",
            "max_tokens",
            "integer_below_min_value",
        ),
        (
            {"temperature": "hot"},
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
            "temperature",
            "invalid_type",
        ),
        (
            {"temperature": 3},
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.",
            "temperature",
            "decimal_above_max_value",
        ),
        (
            {"top_p": -0.5},
            "Invalid 'top_p': decimal below minimum value. Expected a value >= 0, but got -0.5 instead.",
            "top_p",
            "decimal_below_min_value",
        ),
        (
            {"n": "two"},
            "Invalid type for 'n': expected an integer, but got a string instead.",
            "n",
            "invalid_type",
        ),
    ],
)
def test_batch_line_token_limit_or_sampling_value_wrong_gets_a_400(client, fields, message, param, code):
    batch = run_batch(client, [chat_line("good", "first"), with_body("bad", **fields)])
    assert batch.request_counts.model_dump() == {"total": 2, "completed": 1, "failed": 1}
    [error] = read_lines(client, batch.error_file_id)
    assert answer_without_ids(error) == bad_request("bad", message, param, code)


def test_batch_line_max_output_tokens_on_responses_wrong_type_400(client):
    body = {"model": MODEL, "input": "hi", "max_output_tokens": "many"}
    batch = run_batch(client, [{"custom_id": "bad", "method": "POST", "url": "/v1/responses", "body": body}],
                      endpoint="/v1/responses")
    [error] = read_lines(client, batch.error_file_id)
    message = "Invalid type for 'max_output_tokens': expected an integer, but got a string instead."
    assert answer_without_ids(error) == bad_request("bad", message, "max_output_tokens", "invalid_type")


def test_batch_line_with_an_unknown_argument_gets_the_apis_400(client):
    lines = [chat_line("good", "first"), with_body("typo", max_token=200), chat_line("good-2", "second")]
    batch = run_batch(client, lines)
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 2, "failed": 1}
    [error] = read_lines(client, batch.error_file_id)
    assert answer_without_ids(error) == {
        "id": "ID",
        "custom_id": "typo",
        "response": {
            "status_code": 400,
            "request_id": "REQ",
            "body": {
                "error": {
                    "message": "Unrecognized request argument supplied: max_token",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
        },
        "error": None,
    }


def test_chat_request_with_an_unknown_argument_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[], extra_body={"max_token": 5})
    assert caught.value.body == {
        "message": "Unrecognized request argument supplied: max_token",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
