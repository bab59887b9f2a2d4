"""The local backend speaks Anthropic's Message Batches protocol: create, retrieve, list, cancel,
delete and results, with the API's checks, through the official anthropic SDK over loopback."""

from __future__ import annotations

import json

import anthropic
import pytest
from anthropic_support import *  # noqa: F403 - the shared fixtures
from anthropic_support import MODEL, claude, ended, error_body, invalid, params, requests, results
from test_local_server_support import *  # noqa: F403 - the shared fixtures

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_message_batch_answers_every_request_with_a_message(claude_client, server):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    batch = claude_client.messages.batches.create(
        requests=[
            {"custom_id": "plain", "params": params("What is the capital of France?", system="Be brief.")},
            {
                "custom_id": "images",
                "params": params(
                    system=[{"type": "text", "text": "Describe."}],
                    messages=[{"role": "user", "content": [{"type": "text", "text": "Two cats"}, image, url_image]}],
                ),
            },
            {
                "custom_id": "few-shot",
                "params": params(
                    messages=[
                        {"role": "user", "content": "2+2"},
                        {"role": "assistant", "content": "4"},
                        {"role": "user", "content": "3+3"},
                    ]
                ),
            },
            {
                "custom_id": "structured",
                "params": params("Paris", output_config={"format": {"type": "json_schema", "schema": schema}}),
            },
        ]
    )
    assert batch.type == "message_batch"
    assert batch.id.startswith("msgbatch_")
    done = ended(claude_client, batch.id)
    assert done.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 4,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert done.ended_at >= done.created_at
    assert (done.expires_at - done.created_at).total_seconds() == pytest.approx(86400, abs=1)
    assert done.results_url == f"{server.base_url}/messages/batches/{batch.id}/results"
    found = results(claude_client, batch.id)
    assert set(found) == {"plain", "images", "few-shot", "structured"}
    messages = {custom_id: result["message"] for custom_id, result in found.items()}
    assert {result["type"] for result in found.values()} == {"succeeded"}
    assert messages["plain"]["content"] == [{"type": "text", "text": "Answer to: What is the capital of France?"}]
    assert messages["images"]["content"][0]["text"] == "Answer to: Two cats [with 2 images]"
    assert messages["few-shot"]["content"][0]["text"] == "Answer to: 3+3"
    assert set(json.loads(messages["structured"]["content"][0]["text"])) == {"city"}
    for message in messages.values():
        assert message["type"] == "message"
        assert message["role"] == "assistant"
        assert message["model"] == MODEL
        assert message["stop_reason"] == "end_turn"
        assert message["usage"]["input_tokens"] > 0
        assert message["usage"]["output_tokens"] > 0


def test_message_cut_at_max_tokens_stops_for_max_tokens(claude_client):
    batch = claude_client.messages.batches.create(
        requests=[{"custom_id": "short", "params": params("a long question " * 20, max_tokens=3)}]
    )
    ended(claude_client, batch.id)
    message = results(claude_client, batch.id)["short"]["message"]
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"]["output_tokens"] == 3


def test_message_batch_counts_requests_as_processing_until_it_ends(start_server):
    server = start_server(line_latency=0.02)
    with claude(server) as client:
        batch = client.messages.batches.create(requests=requests(40))
        running = client.messages.batches.retrieve(batch.id)
        assert running.processing_status == "in_progress"
        assert running.request_counts.model_dump() == {
            "processing": 40,
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
        assert running.ended_at is None and running.results_url is None and running.archived_at is None
        assert ended(client, batch.id).request_counts.succeeded == 40


# (params, the message of the request's invalid_request_error)
BAD_PARAMS = [
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens: Field required"),
    ({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}, "model: Field required"),
    ({"model": MODEL, "max_tokens": 10}, "messages: Field required"),
    (params(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
    (params(max_tokens="10"), "max_tokens: Input should be a valid integer"),
    (params(messages=[]), "messages: at least one message is required"),
    (
        params(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
        'messages: roles must alternate between "user" and "assistant", but found multiple "user" roles in a row',
    ),
    (params(messages=[{"role": "assistant", "content": "a"}]), 'messages: first message must use the "user" role'),
    (params(messages=[{"role": "system", "content": "a"}]), "messages.0.role: Input should be 'user' or 'assistant'"),
    (params(messages=[{"role": "user"}]), "messages.0.content: Field required"),
    (
        params(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": ""}}],
                }
            ]
        ),
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
        "'image/gif' or 'image/webp'",
    ),
    (params(system=5), "system: Input should be a valid string or a list of text blocks"),
    (params(temperature=1.5), "temperature: Input should be a number from 0 to 1"),
    (params(response_format={"type": "json_object"}), "response_format: Extra inputs are not permitted"),
    (
        params(output_config={"format": {"type": "json_object"}}),
        "output_config.format.type: Input should be 'json_schema'",
    ),
    (params(stream=True), "stream: Streaming is not supported in Message Batches requests"),
]


def test_message_batch_request_with_bad_params_ends_errored_and_the_others_succeed(claude_client):
    bad = [{"custom_id": f"bad-{i}", "params": body} for i, (body, _) in enumerate(BAD_PARAMS)]
    batch = claude_client.messages.batches.create(requests=[*bad, *requests(2)])
    done = ended(claude_client, batch.id)
    assert (done.request_counts.succeeded, done.request_counts.errored) == (2, len(BAD_PARAMS))
    found = results(claude_client, batch.id)
    for i, (_, message) in enumerate(BAD_PARAMS):
        assert found[f"bad-{i}"] == {"type": "errored", "error": invalid(message)}
    assert found["row-0"]["type"] == found["row-1"]["type"] == "succeeded"


# (requests, the message of the 400 that refuses the whole batch)
BAD_BATCHES = [
    ([], "requests: List should have at least 1 item after validation, not 0"),
    ([{"custom_id": "has space", "params": params()}], "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
    ([{"custom_id": "a/b", "params": params()}], "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
    ([{"custom_id": "é", "params": params()}], "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
    ([{"custom_id": "a" * 65, "params": params()}], "requests.0.custom_id: String should have at most 64 characters"),
    ([{"custom_id": "", "params": params()}], "requests.0.custom_id: String should have at least 1 character"),
    ([{"custom_id": 7, "params": params()}], "requests.0.custom_id: Input should be a valid string"),
    (
        [{"custom_id": "x", "params": params()}, {"custom_id": "x", "params": params()}],
        "requests.1.custom_id: Duplicate custom_id 'x'; custom_id must be unique in a batch",
    ),
    ([{"custom_id": "x"}], "requests.0.params: Field required"),
    ([{"params": params()}], "requests.0.custom_id: Field required"),
    ([{"custom_id": "x", "params": "hi"}], "requests.0.params: Input should be a valid dictionary"),
    ([{"custom_id": "x", "params": params(), "extra": 1}], "requests.0.extra: Extra inputs are not permitted"),
]  # fmt: skip


@pytest.mark.parametrize(("batch_requests", "message"), BAD_BATCHES)
def test_create_message_batch_refused_whole(claude_client, batch_requests, message):
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude_client.messages.batches.create(requests=batch_requests)
    assert error_body(caught.value) == invalid(message)
    assert claude_client.messages.batches.list().data == []


def test_message_batch_over_the_request_limit_is_refused(start_server):
    server = start_server(max_requests_per_message_batch=3)
    with claude(server) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.batches.create(requests=requests(4))
        assert error_body(caught.value) == invalid("requests: List should have at most 3 items after validation, not 4")
        assert ended(client, client.messages.batches.create(requests=requests(3)).id).request_counts.succeeded == 3


def test_message_batch_over_the_size_limit_is_refused_as_too_large(start_server):
    server = start_server(max_message_batch_bytes=2000)
    with claude(server) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.batches.create(requests=requests(30))
        assert caught.value.status_code == 413
        assert error_body(caught.value) == invalid(
            "Request exceeds the maximum allowed number of bytes (2,000).", "request_too_large"
        )
        client.messages.batches.create(requests=requests(2))


def test_cancel_message_batch_ends_its_unanswered_requests_canceled(start_server):
    server = start_server(line_latency=0.02)
    with claude(server) as client:
        batch = client.messages.batches.create(requests=requests(200))
        canceling = client.messages.batches.cancel(batch.id)
        assert canceling.processing_status in ("canceling", "ended")
        assert canceling.cancel_initiated_at is not None
        done = ended(client, batch.id)
        counts = done.request_counts
        assert counts.canceled > 0
        assert counts.succeeded + counts.canceled == 200
        assert counts.processing == counts.errored == counts.expired == 0
        found = results(client, batch.id)
        assert len(found) == 200
        assert sum(result == {"type": "canceled"} for result in found.values()) == counts.canceled


def test_cancel_ended_message_batch_is_refused(claude_client):
    batch = claude_client.messages.batches.create(requests=requests(1))
    ended(claude_client, batch.id)
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude_client.messages.batches.cancel(batch.id)
    assert error_body(caught.value) == invalid(f"Message batch {batch.id} has already ended and cannot be canceled.")


def test_delete_running_message_batch_is_refused_until_it_ends(start_server):
    server = start_server(line_latency=0.02)
    with claude(server) as client:
        batch = client.messages.batches.create(requests=requests(100))
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.batches.delete(batch.id)
        assert error_body(caught.value) == invalid(
            f"Message batch {batch.id} is still in_progress and cannot be deleted; "
            "cancel it and wait for it to end first."
        )
        client.messages.batches.cancel(batch.id)
        ended(client, batch.id)
        deleted = client.messages.batches.delete(batch.id)
        assert deleted.model_dump() == {"id": batch.id, "type": "message_batch_deleted"}


def test_deleted_message_batch_is_gone(claude_client):
    batch = claude_client.messages.batches.create(requests=requests(1))
    ended(claude_client, batch.id)
    claude_client.messages.batches.delete(batch.id)
    for call in (claude_client.messages.batches.retrieve, claude_client.messages.batches.delete):
        with pytest.raises(anthropic.NotFoundError) as caught:
            call(batch.id)
        assert error_body(caught.value) == invalid(f"Message batch {batch.id} not found.", "not_found_error")
    assert claude_client.messages.batches.list().data == []


def test_results_of_a_running_message_batch_are_refused(start_server):
    server = start_server(line_latency=0.02)
    with claude(server) as client:
        batch = client.messages.batches.create(requests=requests(100))
        # The SDK's results() stops at the missing results_url; the route itself answers too.
        with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
            client.messages.batches.results(batch.id)
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=object)
        assert error_body(caught.value) == invalid(
            f"Results of message batch {batch.id} are not available until it has ended (processing_status: "
            "in_progress)."
        )


def test_list_message_batches_newest_first_in_pages(claude_client):
    ids = [claude_client.messages.batches.create(requests=requests(1)).id for _ in range(5)]
    newest_first = ids[::-1]
    page = claude_client.messages.batches.list(limit=2)
    assert [batch.id for batch in page.data] == newest_first[:2]
    assert (page.has_more, page.first_id, page.last_id) == (True, newest_first[0], newest_first[1])
    after = claude_client.messages.batches.list(limit=2, after_id=newest_first[1])
    assert [batch.id for batch in after.data] == newest_first[2:4]
    last = claude_client.messages.batches.list(limit=2, after_id=newest_first[3])
    assert ([batch.id for batch in last.data], last.has_more) == (newest_first[4:], False)
    before = claude_client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert ([batch.id for batch in before.data], before.has_more) == (newest_first[1:3], True)
    assert [batch.id for batch in claude_client.messages.batches.list(limit=2)] == newest_first  # auto-paging
    # Paging towards newer batches: each page newest first, the next one the page before it.
    towards_newer = claude_client.messages.batches.list(limit=2, before_id=ids[0])
    assert [batch.id for batch in towards_newer] == [ids[2], ids[1], ids[4], ids[3]]


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (0, "limit: Input should be greater than or equal to 1"),
        (1001, "limit: Input should be less than or equal to 1000"),
    ],
)
def test_list_message_batches_limit_out_of_range_is_refused(claude_client, limit, message):
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude_client.messages.batches.list(limit=limit)
    assert error_body(caught.value) == invalid(message)


def test_message_batches_listing_refused_when_the_server_cannot_list(start_server):
    server = start_server(no_batches_listing=True)
    with claude(server) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.batches.list()
        assert caught.value.status_code == 405
        assert error_body(caught.value) == invalid("Method Not Allowed")
