"""The request line of a row, per endpoint: the body the API is sent, and its bytes built fast."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..config import Config
from ..endpoints import CHAT, COMPLETIONS, EMBEDDINGS, MODERATIONS, RESPONSES
from ..errors import ConfigError
from .message_params import build_message_params

# Between the prompt and the row's content in a legacy completion's prompt text.
COMPLETION_SEPARATOR = "\n\n"


def has_text(content: str) -> bool:
    return content != "" and not content.isspace()


def _chat_content(content: str, image_url: str | None, image_detail: str) -> str | list[dict[str, Any]]:
    if image_url is None:
        return content
    image = {"type": "image_url", "image_url": {"url": image_url, "detail": image_detail}}
    return [{"type": "text", "text": content}, image] if has_text(content) else [image]


def _responses_content(content: str, image_url: str | None, image_detail: str) -> str | list[dict[str, Any]]:
    if image_url is None:
        return content
    image = {"type": "input_image", "image_url": image_url, "detail": image_detail}
    return [{"type": "input_text", "text": content}, image] if has_text(content) else [image]


def _moderation_input(content: str, image_url: str | None) -> str | list[dict[str, Any]]:
    if image_url is None:
        return content
    image = {"type": "image_url", "image_url": {"url": image_url}}
    return [{"type": "text", "text": content}, image] if has_text(content) else [image]


def _example_messages(examples: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    messages = []
    for example in examples:
        messages.append({"role": "user", "content": example["user"]})
        messages.append({"role": "assistant", "content": example["assistant"]})
    return messages


def build_request_body(
    *,
    prompt: str | None,
    content: str,
    image_url: str | None,
    image_detail: str,
    model_params: Mapping[str, Any],
    endpoint: str = CHAT,
    examples: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The body of one row's request to `endpoint`: model_params, then the fields built from the row.

    chat: the system prompt, the examples as user/assistant turns, then the row's user message.
    responses: `instructions` = prompt; `input` = the examples' messages, then the row's message.
    completions: the prompt and the content joined as the prompt text. embeddings and moderations:
    `input` = the content. With an image the row's message is a list of parts (the text part left
    out when the content is empty).
    """
    body = dict(model_params)
    if endpoint == CHAT:
        body["messages"] = [
            {"role": "system", "content": prompt},
            *_example_messages(examples),
            {"role": "user", "content": _chat_content(content, image_url, image_detail)},
        ]
    elif endpoint == RESPONSES:
        body["instructions"] = prompt
        body["input"] = [
            *_example_messages(examples),
            {"role": "user", "content": _responses_content(content, image_url, image_detail)},
        ]
    elif endpoint == COMPLETIONS:
        body["prompt"] = f"{prompt}{COMPLETION_SEPARATOR}{content}"
    elif endpoint == MODERATIONS:
        body["input"] = _moderation_input(content, image_url)
    elif endpoint == EMBEDDINGS:
        body["input"] = content
    else:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    return body


def config_request_body(config: Config, *, content: str, image_url: str | None) -> dict[str, Any]:
    """build_request_body with the config's endpoint, prompt, examples and model parameters.

    With provider anthropic, the params of a Messages request (see message_params).
    """
    if config.provider == "anthropic":
        return build_message_params(
            prompt=config.prompt,
            examples=config.examples,
            content=content,
            image_url=image_url,
            model_params=config.model_params,
        )
    return build_request_body(
        endpoint=config.endpoint,
        prompt=config.prompt,
        examples=config.examples,
        content=content,
        image_url=image_url,
        image_detail=config.image_detail,
        model_params=config.model_params,
    )


class RequestLines:
    """Builds the JSONL line of each row for one config.

    A line is {"custom_id": id, "method": "POST", "url": endpoint, "body": config_request_body(...)}.
    Rows of text alone, nearly all of them, only serialize their id and text: every endpoint puts the
    text into a JSON string of an otherwise constant line, so the bytes around it are made once (a JSON
    string's escaped text is the concatenation of its pieces' escaped texts). A row with an image is
    serialized whole.
    """

    def __init__(self, config: Config):
        self.config = config
        marker = uuid.uuid4().hex
        try:
            rest = orjson.dumps({"method": "POST", "url": config.endpoint, "body": self._body(marker, None)})
        except TypeError as exc:
            raise ConfigError(
                f"{config.name}: 'model_params' cannot be sent as JSON ({exc}); use text, numbers, lists and mappings"
            ) from None
        before, after = rest.split(marker.encode())  # a random marker: it is found exactly once
        # Only a completion's prompt holds the text inside a longer string; elsewhere the text is the
        # whole string, so its JSON goes in with its quotes and nothing is cut per row.
        self.inside_string = config.endpoint == COMPLETIONS
        if not self.inside_string:
            before, after = before[:-1], after[1:]
        # line = head + the id's JSON + before + the text's JSON (without quotes when inside_string) + after
        self.head = b'{"custom_id":'
        self.before = b"," + before[1:]
        self.after = after + b"\n"

    def _body(self, content: str, image_url: str | None) -> dict[str, Any]:
        return config_request_body(self.config, content=content, image_url=image_url)

    def text_line(self, row_id: str, text: str) -> bytes:
        """The line of a row without an image. Raises orjson.JSONEncodeError on text that is not Unicode."""
        dumps = orjson.dumps
        encoded = dumps(text)[1:-1] if self.inside_string else dumps(text)
        return b"".join((self.head, dumps(row_id), self.before, encoded, self.after))

    def image_line(self, row_id: str, text: str, image_url: str) -> bytes:
        """The line of a row with an image (a URL or data URL)."""
        line = {"custom_id": row_id, "method": "POST", "url": self.config.endpoint, "body": self._body(text, image_url)}
        return orjson.dumps(line) + b"\n"
