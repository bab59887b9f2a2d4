"""The built-in responder, through the synchronous endpoints the local backend also serves."""

from __future__ import annotations

import base64
import json
import struct

import jsonschema
import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures

SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "confidence": {"type": "number"},
        "is_question": {"type": "boolean"},
        "topics": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "note": {"type": ["string", "null"]},
        "detail": {"anyOf": [{"$ref": "#/$defs/detail"}, {"type": "null"}]},
        "summary": {"type": "string", "maxLength": 12},
    },
    "required": ["sentiment", "score", "confidence", "is_question", "topics", "note", "detail", "summary"],
    "additionalProperties": False,
    "$defs": {
        "detail": {
            "type": "object",
            "properties": {"reason": {"type": "string"}, "day": {"type": "string", "format": "date"}},
            "required": ["reason", "day"],
            "additionalProperties": False,
        }
    },
}


def ask(client, text: str, **kwargs):
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        **kwargs,
    )


def test_chat_answers_from_the_user_content(client):
    answer = ask(client, "What   is the capital\nof France?")
    assert answer.id.startswith("chatcmpl-")
    assert answer.object == "chat.completion"
    assert answer.model == "gpt-4o-mini"
    assert answer.system_fingerprint
    [choice] = answer.choices
    assert choice.message.content == "Answer to: What is the capital of France?"
    assert (choice.message.role, choice.message.refusal, choice.finish_reason) == ("assistant", None, "stop")
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert ask(client, "What   is the capital\nof France?").choices[0].message.content == choice.message.content


def test_chat_snippet_is_the_first_60_characters(client):
    text = "word " * 40
    assert ask(client, text).choices[0].message.content == "Answer to: " + ("word " * 12).strip()


def test_chat_image_parts_are_mentioned(client):
    content = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
    ]
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content == "Answer to: Describe [with 1 image]"


def test_chat_json_object_mode_gives_json(client):
    answer = ask(client, "hello", response_format={"type": "json_object"})
    assert json.loads(answer.choices[0].message.content) == {"answer": "Answer to: hello", "length": 5}


def test_chat_json_schema_mode_gives_an_instance_of_the_schema(client):
    response_format = {"type": "json_schema", "json_schema": {"name": "review", "strict": True, "schema": SCHEMA}}
    answer = ask(client, "I loved this product, would buy again", response_format=response_format)
    value = json.loads(answer.choices[0].message.content)
    jsonschema.validate(value, SCHEMA)
    assert value["note"] is not None
    assert value["detail"]["day"] == "2024-01-01"
    assert len(value["topics"]) == 2
    again = ask(client, "I loved this product, would buy again", response_format=response_format)
    assert json.loads(again.choices[0].message.content) == value


def test_chat_max_tokens_truncates_with_finish_reason_length(client):
    answer = ask(client, "a rather long question about many different things", max_completion_tokens=3)
    choice = answer.choices[0]
    assert choice.finish_reason == "length"
    assert answer.usage.completion_tokens == 3
    assert "Answer to: a rather long question".startswith(choice.message.content)
    assert ask(client, "short", max_tokens=100).choices[0].finish_reason == "stop"


def test_chat_n_choices(client):
    answer = ask(client, "hi", n=3)
    assert [c.index for c in answer.choices] == [0, 1, 2]


def test_chat_without_model_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["message"] == "you must provide a model parameter"


def test_responses_answer_and_json_schema(client):
    response = client.responses.create(model="gpt-4o-mini", input="Tell me something", instructions="Be brief.")
    assert response.output_text == "Answer to: Tell me something"
    assert response.status == "completed"
    assert response.usage.input_tokens > 0
    text = {"format": {"type": "json_schema", "name": "review", "schema": SCHEMA, "strict": True}}
    structured = client.responses.create(model="gpt-4o-mini", input=[{"role": "user", "content": "nice"}], text=text)
    jsonschema.validate(json.loads(structured.output_text), SCHEMA)
    cut = client.responses.create(model="gpt-4o-mini", input="a long input with words", max_output_tokens=16)
    assert cut.status in ("completed", "incomplete")


def test_embeddings_deterministic_with_dimensions(client):
    first = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert [len(d.embedding) for d in first.data] == [1536, 1536]
    assert [d.index for d in first.data] == [0, 1]
    assert abs(sum(v * v for v in first.data[0].embedding) - 1) < 1e-6
    again = client.embeddings.create(model="text-embedding-3-small", input="alpha")
    assert again.data[0].embedding == first.data[0].embedding
    assert first.data[0].embedding != first.data[1].embedding
    small = client.embeddings.create(model="text-embedding-3-large", input="alpha", dimensions=64)
    assert len(small.data[0].embedding) == 64
    assert small.usage.prompt_tokens == small.usage.total_tokens > 0


def test_embeddings_base64(client):
    raw = json.loads(
        client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="alpha", dimensions=4, encoding_format="base64"
        ).text
    )
    floats = struct.unpack("<4f", base64.b64decode(raw["data"][0]["embedding"]))
    assert len(floats) == 4


def test_completions_stop_at_16_tokens_by_default(client):
    answer = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    assert answer.choices[0].text == " Answer to: hi"
    long = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="zqxj " * 30)
    assert long.choices[0].finish_reason == "length"
    assert long.usage.completion_tokens == 16


def test_moderations_flag_trigger_words(client):
    result = client.moderations.create(model="omni-moderation-latest", input=["I will attack them", "hello"])
    assert [r.flagged for r in result.results] == [True, False]
    assert result.results[0].categories.violence is True
