"""Every result body validates strictly against the installed SDK's types and the spec's schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openai.types import Batch, Completion, CreateEmbeddingResponse, FileObject, ModerationCreateResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import SPEC_PATH, jsonl, read_lines, run_batch

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "How tall is Everest?"}]
# (endpoint, request body, SDK type, spec schema)
CASES = [
    ("/v1/chat/completions", {"model": MODEL, "messages": MESSAGES}, ChatCompletion, "CreateChatCompletionResponse"),
    (
        "/v1/chat/completions",
        {"model": MODEL, "messages": MESSAGES, "logprobs": True, "top_logprobs": 2, "n": 2},
        ChatCompletion,
        "CreateChatCompletionResponse",
    ),
    ("/v1/responses", {"model": MODEL, "input": "How tall is Everest?"}, Response, "Response"),
    (
        "/v1/responses",
        {"model": MODEL, "input": "How tall is Everest?", "max_output_tokens": 2, "instructions": "Be brief."},
        Response,
        "Response",
    ),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": ["a", "b"]}, CreateEmbeddingResponse,
     "CreateEmbeddingResponse"),
    ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}, Completion, "CreateCompletionResponse"),
    (
        "/v1/completions",
        {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "logprobs": 2},
        Completion,
        "CreateCompletionResponse",
    ),
    ("/v1/moderations", {"input": ["I hate this", "fine"]}, ModerationCreateResponse, "CreateModerationResponse"),
]
IDS = ["chat", "chat-logprobs", "responses", "responses-incomplete", "embeddings", "completions",
       "completions-logprobs", "moderations"]


@pytest.fixture(scope="module")
def spec_schemas() -> dict[str, Draft202012Validator]:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(spec, DRAFT202012))
    return {
        name: Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)
        for _, _, _, name in CASES
    }


def check(body: dict[str, Any], model_type: Any, schema: Draft202012Validator) -> None:
    # strict: no coercion, every required field present with its own type.
    model_type.model_validate(body, strict=True)
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in schema.iter_errors(body)]
    assert not problems


@pytest.mark.parametrize(("endpoint", "body", "model_type", "schema"), CASES, ids=IDS)
def test_synchronous_answer_validates(client, spec_schemas, endpoint, body, model_type, schema):
    answer = client.post(endpoint.removeprefix("/v1"), body=body, cast_to=object)
    check(answer, model_type, spec_schemas[schema])


@pytest.mark.parametrize(("endpoint", "body", "model_type", "schema"), CASES, ids=IDS)
def test_batch_result_body_validates(client, spec_schemas, endpoint, body, model_type, schema):
    line = {"custom_id": "row-1", "method": "POST", "url": endpoint, "body": body}
    batch = run_batch(client, jsonl([line]), endpoint=endpoint)
    assert batch.status == "completed"
    Batch.model_validate(json.loads(client.batches.with_raw_response.retrieve(batch.id).text), strict=True)
    (result,) = read_lines(client, batch.output_file_id)
    check(result["response"]["body"], model_type, spec_schemas[schema])


def test_chat_logprobs_true_returns_a_logprobs_object(client):
    answer = client.chat.completions.create(model=MODEL, messages=MESSAGES, logprobs=True, top_logprobs=2)
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None
    assert "".join(token.token for token in logprobs.content) == answer.choices[0].message.content
    assert all(len(token.top_logprobs) == 2 for token in logprobs.content)


def test_chat_without_logprobs_has_null_logprobs(client):
    answer = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert answer.choices[0].logprobs is None


def test_file_object_validates_with_status_details_null(client):
    body = json.loads(client.files.with_raw_response.create(file=("in.jsonl", b"{}\n"), purpose="batch").text)
    assert "status_details" in body and body["status_details"] is None
    FileObject.model_validate(body, strict=True)
