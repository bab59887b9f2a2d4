"""The fields of an Anthropic Messages request, and the config-load check of `model_params` against them.

The API checks a batch request's params only while the batch runs: a misspelt field or a missing
`max_tokens` would come back as an errored row per request, after the batch waited its turn. Here
they are refused before anything is written. The list follows the SDK's MessageCreateParams.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from .json_kinds import json_kind

# name -> the JSON kinds it takes (None: any); `system` and `messages` are built from the config.
MESSAGE_FIELDS: dict[str, tuple[str, ...] | None] = {
    "model": ("string",),
    "max_tokens": ("integer",),
    "cache_control": ("object",),
    "container": ("string", "object"),
    "context_management": ("object",),
    "inference_geo": ("string",),
    "mcp_servers": ("array",),
    "metadata": ("object",),
    "output_config": ("object",),
    "service_tier": ("string",),
    "stop_sequences": ("array",),
    "temperature": ("number",),
    "thinking": ("object",),
    "tool_choice": ("object",),
    "tools": ("array",),
    "top_k": ("integer",),
    "top_p": ("number",),
}
BUILT_FIELDS = ("system", "messages")
# OpenAI's names for what the Messages API calls otherwise: a hint that names the Anthropic field.
OPENAI_NAMES = {
    "response_format": "output_config: {format: {type: json_schema, schema: ...}}",
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "stop": "stop_sequences",
}
KIND_WORDS = {"string": "a string", "integer": "a whole number", "number": "a number", "array": "a list",
              "object": "a mapping"}


def message_params_problems(params: Mapping[str, Any]) -> list[str]:
    """What is wrong with model_params for Anthropic's Messages API, each as one line of the config error."""
    problems = []
    if "max_tokens" not in params:
        problems.append(
            "'model_params' must set max_tokens with provider anthropic: the Messages API requires it "
            "(e.g. `max_tokens: 1024`)"
        )
    for name, value in params.items():
        if name in BUILT_FIELDS:
            problems.append(
                f"'model_params' must not hold `{name}`: with provider anthropic it is built from the prompt "
                "and the content"
            )
            continue
        if name == "stream":
            problems.append("'model_params.stream' is not allowed in a batch: remove it")
            continue
        if name not in MESSAGE_FIELDS:
            if name in OPENAI_NAMES:
                hint = f" (with provider anthropic, use {OPENAI_NAMES[name]})"
            else:
                close = difflib.get_close_matches(name, list(MESSAGE_FIELDS), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(
                f"unknown model_params field '{name}'{hint}: Anthropic Messages requests have no such field"
            )
            continue
        kinds = MESSAGE_FIELDS[name]
        kind = json_kind(value)
        if kinds is None or name in ("model", "max_tokens"):
            continue  # the model and the token limit have their own checks
        if kind in kinds or (kind == "integer" and "number" in kinds):
            continue
        words = [KIND_WORDS[k] for k in kinds]
        problems.append(f"'model_params.{name}' must be {' or '.join(words)}, got {value!r:.40}")
    problems.extend(_output_config_problems(params.get("output_config")))
    return problems


def _output_config_problems(output_config: Any) -> list[str]:
    if not isinstance(output_config, Mapping) or output_config.get("format") is None:
        return []
    output_format = output_config["format"]
    if not isinstance(output_format, Mapping) or output_format.get("type") != "json_schema":
        return ["'model_params.output_config.format' must be {type: json_schema, schema: {...}}"]
    if not isinstance(output_format.get("schema"), Mapping):
        return ["'model_params.output_config.format.schema' must be a JSON schema (a mapping)"]
    return []
