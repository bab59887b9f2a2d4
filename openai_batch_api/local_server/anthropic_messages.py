"""One Messages request of a batch: the API's checks of its params, and the built-in responder's answer.

The checks are the ones a batch request meets on the API, which validates `params` only while the
batch runs: a request that breaks one ends `errored` with an invalid_request_error, and the batch's
other requests are answered. Messages name the field by its path, as the API's do
("messages.1.content: Field required").
"""

from __future__ import annotations

from typing import Any

from .ids import new_id

# Imported rather than copied: the answers are those the OpenAI endpoints give the same prompt.
from .responder import _answer_content, _count, _truncate

# The fields of a Messages request (the SDK's MessageCreateParams); any other is refused, as on the API.
KNOWN_PARAMS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "cache_control",
        "container",
        "context_management",
        "diagnostics",
        "inference_geo",
        "mcp_servers",
        "metadata",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
    }
)
ROLES = ("user", "assistant")
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
SAMPLING_RANGES = {"temperature": (0, 1), "top_p": (0, 1)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def params_problem(params: dict[str, Any]) -> str | None:
    """The invalid_request_error message for a request's params, or None when the API would run it."""
    for name in params:
        if name not in KNOWN_PARAMS:
            return f"{name}: Extra inputs are not permitted"
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            return f"{name}: Field required"
    if not isinstance(params["model"], str):
        return "model: Input should be a valid string"
    max_tokens = params["max_tokens"]
    if not _is_int(max_tokens):
        return "max_tokens: Input should be a valid integer"
    if max_tokens < 1:  # 0 (cache pre-warming) is refused in batches
        return "max_tokens: Input should be greater than or equal to 1"
    if params.get("stream"):
        return "stream: Streaming is not supported in Message Batches requests"
    for name, (low, high) in SAMPLING_RANGES.items():
        value = params.get(name)
        if value is not None and (not _is_number(value) or not low <= value <= high):
            return f"{name}: Input should be a number from {low} to {high}"
    return _system_problem(params.get("system")) or _messages_problem(params["messages"]) or _format_problem(params)


def _system_problem(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return "system: Input should be a valid string or a list of text blocks"
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            return f"system.{index}: Input should be a text block ({{'type': 'text', 'text': ...}})"
    return None


def _messages_problem(messages: Any) -> str | None:
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    previous = None
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            return f"{where}: Input should be a valid dictionary"
        role = message.get("role")
        if role not in ROLES:
            return f"{where}.role: Input should be 'user' or 'assistant'"
        if "content" not in message:
            return f"{where}.content: Field required"
        problem = _content_problem(message["content"], f"{where}.content")
        if problem:
            return problem
        if index == 0 and role != "user":
            return 'messages: first message must use the "user" role'
        if role == previous:
            return (
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        previous = role
    return None


def _content_problem(content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}: Input should be a valid string or a list of content blocks"
    for index, block in enumerate(content):
        path = f"{where}.{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"{path}: Input should be a content block with a 'type'"
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return f"{path}.text: Field required"
        if block["type"] == "image":
            problem = _image_problem(block.get("source"), f"{path}.image.source")
            if problem:
                return problem
    return None


def _image_problem(source: Any, where: str) -> str | None:
    if not isinstance(source, dict):
        return f"{where}: Field required"
    kind = source.get("type")
    if kind == "url":
        return None if isinstance(source.get("url"), str) else f"{where}.url.url: Field required"
    if kind == "base64":
        if source.get("media_type") not in IMAGE_MEDIA_TYPES:
            allowed = ", ".join(f"'{media}'" for media in IMAGE_MEDIA_TYPES[:-1])
            return f"{where}.base64.media_type: Input should be {allowed} or '{IMAGE_MEDIA_TYPES[-1]}'"
        return None if isinstance(source.get("data"), str) else f"{where}.base64.data: Field required"
    return f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags: 'base64', 'url'"


def _format_problem(params: dict[str, Any]) -> str | None:
    config = params.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        return "output_config: Input should be a valid dictionary"
    output_format = config.get("format")
    if output_format is None:
        return None
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        return "output_config.format.type: Input should be 'json_schema'"
    if not isinstance(output_format.get("schema"), dict):
        return "output_config.format.schema: Field required"
    return None


def _text_and_images(content: Any) -> tuple[str, int]:
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for block in content:
        if block.get("type") == "text":
            texts.append(block["text"])
        elif block.get("type") == "image":
            images += 1
    return " ".join(texts), images


def message_answer(params: dict[str, Any]) -> dict[str, Any]:
    """The Message the built-in responder gives checked params: deterministic, from the last user turn."""
    model = params["model"]
    messages = params["messages"]
    text, images = _text_and_images([m for m in messages if m["role"] == "user"][-1]["content"])
    output_format = (params.get("output_config") or {}).get("format")
    content, output_tokens, cut = _truncate(_answer_content(text, images, output_format), params["max_tokens"], model)
    system = params.get("system")
    prompt = [system if isinstance(system, str) else _text_and_images(system or [])[0]]
    prompt += [_text_and_images(message["content"])[0] for message in messages]
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": content}],
        "stop_reason": "max_tokens" if cut else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": _count("\n".join(prompt), model) + 3 * len(messages),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "batch",
        },
    }
