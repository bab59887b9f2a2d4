"""Message batch requests answered by the upstream OpenAI-compatible server, through its chat endpoint.

A request's checked params become a chat completions body (system first, image blocks as image
parts, structured output as a json_schema response format); the chat answer becomes a Message.
"""

from __future__ import annotations

from typing import Any

from .ids import new_id

CHAT = "/v1/chat/completions"
STOP_REASONS = {"length": "max_tokens", "stop": "end_turn"}


def _parts(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for block in content:
        if block["type"] == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif block["type"] == "image":
            source = block["source"]
            url = source["url"] if source["type"] == "url" else f"data:{source['media_type']};base64,{source['data']}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def chat_body(params: dict[str, Any]) -> dict[str, Any]:
    """The chat completions request asking what the Messages request asks."""
    messages: list[dict[str, Any]] = []
    system = params.get("system")
    if system:
        text = system if isinstance(system, str) else "\n".join(block["text"] for block in system)
        messages.append({"role": "system", "content": text})
    messages += [{"role": m["role"], "content": _parts(m["content"])} for m in params["messages"]]
    body: dict[str, Any] = {"model": params["model"], "messages": messages, "max_tokens": params["max_tokens"]}
    for name in ("temperature", "top_p"):
        if name in params:
            body[name] = params[name]
    if params.get("stop_sequences"):
        body["stop"] = params["stop_sequences"]
    output_format = (params.get("output_config") or {}).get("format")
    if output_format:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": output_format["schema"], "strict": True},
        }
    return body


def message_from_chat(params: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """The Message a chat completion answer amounts to."""
    choice = answer["choices"][0]
    usage = answer.get("usage") or {}
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": [{"type": "text", "text": choice["message"].get("content") or ""}],
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "batch",
        },
    }
