"""The built-in deterministic responder: realistic API answers computed from the request alone.

The same request always gets the same content (ids and timestamps aside), so tests can predict
answers, and it is cheap enough that a 50,000-line batch takes seconds.
"""

from __future__ import annotations

import base64
import math
import random
import re
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import orjson

from .api_error import error_body
from .ids import new_id
from .request_bodies import body_problem, unrecognized_argument
from .schema_instance import schema_instance

SNIPPET_CHARS = 60
SYSTEM_FINGERPRINT = "fp_local"
# The legacy completions endpoint stops at 16 tokens unless told otherwise.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
DEFAULT_EMBEDDING_DIMENSIONS = 1536
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# Words that make the moderation answer flag a text, so flagged results can be tested.
MODERATION_TRIGGERS = {"kill": "violence", "attack": "violence", "hate": "hate", "harass": "harassment"}

Answer = tuple[int, dict[str, Any]]


def respond(endpoint: str, body: dict[str, Any], *, prompt_tokens: int | None = None) -> Answer:
    """(HTTP status, response body) for one request to `endpoint`, e.g. "/v1/chat/completions"."""
    handler = HANDLERS.get(endpoint)
    if handler is None:
        return 404, error_body(f"Invalid URL (POST {endpoint})")
    if not isinstance(body, dict):
        return 400, error_body("The request body must be a JSON object.")
    model = body.get("model")
    problem = unrecognized_argument(endpoint, body) or body_problem(endpoint, body)
    if problem is not None:
        return 400, problem
    if endpoint != "/v1/moderations" and not model:
        return 400, error_body("you must provide a model parameter")
    return handler(body, prompt_tokens if prompt_tokens is not None else _prompt_tokens(body, endpoint))


def _prompt_tokens(body: dict[str, Any], endpoint: str) -> int:
    from ..utils.costs.tokens import estimate_body_tokens

    return estimate_body_tokens(body, endpoint=endpoint)


# model -> its token counter, looked up once rather than on each of a batch's lines.
_COUNTERS: dict[str | None, Callable[[str], int]] = {}


def _count(text: str, model: str | None) -> int:
    counter = _COUNTERS.get(model)
    if counter is None:
        from ..utils.costs.tokens import get_estimator

        counter = _COUNTERS.setdefault(model, get_estimator(model).count)
    return counter(text)


def _snippet(text: str) -> str:
    """The first characters of `text` with its whitespace collapsed."""
    size = SNIPPET_CHARS * 2
    while True:  # collapse only a prefix: texts can be long
        collapsed = " ".join(text[:size].split())
        if len(collapsed) > SNIPPET_CHARS or size >= len(text):
            return collapsed[:SNIPPET_CHARS].rstrip()
        size *= 4


def _parts_text(content: Any) -> tuple[str, int]:
    """(the text of a message's content, how many images it holds)."""
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") in ("image_url", "input_image"):
                images += 1
    return " ".join(texts), images


def _user_text(messages: Any) -> tuple[str, int]:
    if isinstance(messages, str):
        return messages, 0
    if not isinstance(messages, list) or not messages:
        return "", 0
    users = [m for m in messages if isinstance(m, dict) and m.get("role", "user") == "user"]
    chosen = users[-1] if users else messages[-1]
    return _parts_text(chosen.get("content") if isinstance(chosen, dict) else None)


def _answer_content(text: str, images: int, response_format: Any) -> str:
    answer = f"Answer to: {_snippet(text)}"
    if images:
        answer += f" [with {images} image{'s' if images > 1 else ''}]"
    if not isinstance(response_format, dict):
        return answer
    kind = response_format.get("type")
    if kind == "json_object":
        return orjson.dumps({"answer": answer, "length": len(text)}).decode()
    if kind == "json_schema":
        # Chat nests the schema under json_schema; the responses API puts it on the format itself.
        holder = response_format.get("json_schema", response_format)
        schema = holder.get("schema", {}) if isinstance(holder, dict) else {}
        return orjson.dumps(schema_instance(schema, text=_snippet(text))).decode()
    return answer


def _truncate(content: str, limit: Any, model: str | None) -> tuple[str, int, bool]:
    """(content cut to `limit` tokens, its token count, whether it was cut)."""
    tokens = _count(content, model)
    if not isinstance(limit, int) or isinstance(limit, bool) or tokens <= limit:
        return content, tokens, False
    low, high = 0, len(content)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        if _count(content[:middle], model) <= limit:
            low = middle
        else:
            high = middle - 1
    return content[:low], _count(content[:low], model), True


def _pieces(content: str) -> list[str]:
    """`content` cut into word-sized pieces that join back into it: the tokens logprobs describe."""
    return re.findall(r"\s*\S+|\s+", content)


def _logprob(piece: str, rank: int = 0) -> float:
    """A stable log probability for a piece; lower for alternatives further down the ranking."""
    return -round((zlib.crc32(piece.encode()) % 1000) / 1000 + rank * 1.5, 4)


def _token_logprob(piece: str, top: int) -> dict[str, Any]:
    def entry(token: str, rank: int) -> dict[str, Any]:
        return {"token": token, "logprob": _logprob(piece, rank), "bytes": list(token.encode())}

    alternatives = [entry(piece, 0)] + [entry(f"{piece.strip()}_{rank}", rank) for rank in range(1, top)]
    return {**entry(piece, 0), "top_logprobs": alternatives[:top]}


def _chat_logprobs(body: dict[str, Any], content: str) -> dict[str, Any] | None:
    """The choice's logprobs object when the request asks for one (`logprobs: true`), else None."""
    if body.get("logprobs") is not True:
        return None
    top = body.get("top_logprobs")
    top = top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else 0
    return {"content": [_token_logprob(piece, top) for piece in _pieces(content)], "refusal": None}


def _completion_logprobs(body: dict[str, Any], content: str) -> dict[str, Any] | None:
    """The legacy endpoint's logprobs (parallel lists) when `logprobs` asks for some, else None."""
    top = body.get("logprobs")
    if not isinstance(top, int) or isinstance(top, bool):
        return None
    pieces = _pieces(content)
    offsets = [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]
    return {
        "tokens": pieces,
        "token_logprobs": [_logprob(piece) for piece in pieces],
        "top_logprobs": [
            {entry["token"]: entry["logprob"] for entry in _token_logprob(piece, max(top, 1))["top_logprobs"]}
            for piece in pieces
        ],
        "text_offset": offsets,
    }


def _chat(body: dict[str, Any], prompt_tokens: int) -> Answer:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, error_body("Missing required parameter: 'messages'.", param="messages")
    model = body["model"]
    text, images = _user_text(messages)
    content = _answer_content(text, images, body.get("response_format"))
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    content, completion_tokens, cut = _truncate(content, limit, model)
    n = body.get("n") if isinstance(body.get("n"), int) and body.get("n", 0) > 0 else 1
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
        "logprobs": _chat_logprobs(body, content),
        "finish_reason": "length" if cut else "stop",
    }
    choices = [{**choice, "index": i} for i in range(n)]
    return 200, {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens * n,
            "total_tokens": prompt_tokens + completion_tokens * n,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _responses(body: dict[str, Any], prompt_tokens: int) -> Answer:
    if "input" not in body:
        return 400, error_body("Missing required parameter: 'input'.", param="input")
    model = body["model"]
    text, images = _user_text(body["input"])
    text_options = body.get("text") if isinstance(body.get("text"), dict) else {}
    content = _answer_content(text, images, text_options.get("format"))
    content, output_tokens, cut = _truncate(content, body.get("max_output_tokens"), model)
    now = int(time.time())
    answer = {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": now,
        "status": "incomplete" if cut else "completed",
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [
            {
                "id": new_id("msg_"),
                "type": "message",
                "status": "incomplete" if cut else "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": content, "annotations": [], "logprobs": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text_options.get("format") or {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + output_tokens,
        },
        "metadata": body.get("metadata") or {},
    }
    if isinstance(body.get("user"), str):  # the spec types it as a string: absent rather than null
        answer["user"] = body["user"]
    return 200, answer


def _embedding_vector(key: str, dimensions: int) -> list[float]:
    rng = random.Random(zlib.crc32(key.encode()))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 8) for v in values]


def _embeddings(body: dict[str, Any], prompt_tokens: int) -> Answer:
    value = body.get("input")
    if value is None or value == "" or value == []:
        return 400, error_body("Missing required parameter: 'input'.", param="input")
    if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], int)):
        inputs: list[Any] = [value]
    elif isinstance(value, list):
        inputs = value
    else:
        return 400, error_body("Invalid type for 'input': expected a string or an array.", param="input")
    model = body["model"]
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS.get(model, DEFAULT_EMBEDDING_DIMENSIONS)
    if not isinstance(dimensions, int) or dimensions < 1:
        return 400, error_body("Invalid value for 'dimensions': expected an integer >= 1.", param="dimensions")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = _embedding_vector(f"{model}\0{item}", dimensions)
        embedding: Any = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return 200, {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _completions(body: dict[str, Any], prompt_tokens: int) -> Answer:
    prompt = body.get("prompt", "")
    prompts = prompt if isinstance(prompt, list) and prompt and isinstance(prompt[0], str) else [prompt]
    model = body["model"]
    limit = body.get("max_tokens", COMPLETIONS_DEFAULT_MAX_TOKENS)
    choices, completion_tokens = [], 0
    for index, text in enumerate(prompts):
        content, tokens, cut = _truncate(f" Answer to: {_snippet(str(text))}", limit, model)
        completion_tokens += tokens
        choices.append(
            {
                "text": content,
                "index": index,
                "logprobs": _completion_logprobs(body, content),
                "finish_reason": "length" if cut else "stop",
            }
        )
    return 200, {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _moderation_result(text: str) -> dict[str, Any]:
    lowered = text.lower()
    hits = {category for word, category in MODERATION_TRIGGERS.items() if word in lowered}
    base = (zlib.crc32(text.encode()) % 1000) / 1_000_000
    categories = {name: name in hits for name in MODERATION_CATEGORIES}
    scores = {name: 0.93 if name in hits else base for name in MODERATION_CATEGORIES}
    return {
        "flagged": bool(hits),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
    }


def _moderations(body: dict[str, Any], prompt_tokens: int) -> Answer:
    value = body.get("input")
    if value is None:
        return 400, error_body("Missing required parameter: 'input'.", param="input")
    if isinstance(value, list) and value and isinstance(value[0], dict):
        inputs = [_parts_text(value)[0]]  # multi-modal parts: one result for the whole input
    else:
        inputs = value if isinstance(value, list) else [value]
    return 200, {
        "id": new_id("modr-"),
        "model": body.get("model", "omni-moderation-latest"),
        "results": [_moderation_result(str(text)) for text in inputs],
    }


HANDLERS: dict[str, Callable[[dict[str, Any], int], Answer]] = {
    "/v1/chat/completions": _chat,
    "/v1/responses": _responses,
    "/v1/embeddings": _embeddings,
    "/v1/completions": _completions,
    "/v1/moderations": _moderations,
}


def usage_tokens(body: dict[str, Any]) -> tuple[int, int]:
    """(input tokens, output tokens) of a response body, whatever the endpoint calls them."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    output = usage.get("completion_tokens", usage.get("output_tokens", 0))
    return (prompt if isinstance(prompt, int) else 0), (output if isinstance(output, int) else 0)
