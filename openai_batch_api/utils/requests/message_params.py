"""The `params` of a row's request to Anthropic's Message Batches API: a Messages request body.

`prompt` is the `system` text; `examples` are user/assistant turns before the row's own user message;
the row's content (or its content_template's text) is that message; model_params are spread first, as
for OpenAI's endpoints. An image becomes an image block: a URL is sent as a URL source, a local file
(already a data URL by then) as a base64 source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The fields built from the config and the row: model_params may not set them.
BUILT_PARAMS = ("system", "messages")


def image_block(image_url: str) -> dict[str, Any]:
    """An image content block from a URL or a base64 data URL (`data:image/png;base64,...`)."""
    if image_url.startswith("data:"):
        header, _, data = image_url.partition(",")
        media_type = header[len("data:"):].split(";", 1)[0]
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": image_url}}


def user_content(content: str, image_url: str | None) -> str | list[dict[str, Any]]:
    """The row's user message: its text, or the image then the text (Anthropic's advice: images first)."""
    if image_url is None:
        return content
    image = image_block(image_url)
    return [image, {"type": "text", "text": content}] if content.strip() else [image]


def build_message_params(
    *,
    prompt: str | None,
    content: str,
    image_url: str | None,
    model_params: Mapping[str, Any],
    examples: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The params of one row's Messages request: model_params, `system`, then the messages."""
    params = dict(model_params)
    if prompt is not None:
        params["system"] = prompt
    messages: list[dict[str, Any]] = []
    for example in examples:
        messages.append({"role": "user", "content": example["user"]})
        messages.append({"role": "assistant", "content": example["assistant"]})
    messages.append({"role": "user", "content": user_content(content, image_url)})
    params["messages"] = messages
    return params


def output_schema(model_params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of the structured output the params ask for (`output_config.format`), or None."""
    output_config = model_params.get("output_config")
    output_format = output_config.get("format") if isinstance(output_config, Mapping) else None
    if isinstance(output_format, Mapping) and output_format.get("type") == "json_schema":
        schema = output_format.get("schema")
        return dict(schema) if isinstance(schema, Mapping) else None
    return None


def as_response_format(model_params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The structured output in OpenAI's `response_format` shape, which the answer columns are read by."""
    schema = output_schema(model_params)
    if schema is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
