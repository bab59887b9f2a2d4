"""The rules the API applies to each request body: the types of its fields, checked line by line.

A batch line that breaks one gets its own 400 in the error file, as on the API, and the batch's other
lines are answered; the synchronous endpoints answer it with the same 400.
"""

from __future__ import annotations

from typing import Any

from ..utils.request_fields import REQUEST_FIELDS
from .api_error import error_body

# The most choices a chat request may ask for, and the widest embedding the API makes: bigger
# values would have the responder build answers no memory holds.
MAX_CHOICES = 128
MAX_EMBEDDING_DIMENSIONS = 3072
# endpoint -> the body field holding its prompt, which must be a string or an array.
# Fields any generating endpoint takes: token limits are integers of at least 1; sampling values are
# numbers within a range (the API's own bounds).
TOKEN_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
SAMPLING_RANGES = {"temperature": (0, 2), "top_p": (0, 1)}
PROMPT_FIELDS = {
    "/v1/responses": "input",
    "/v1/embeddings": "input",
    "/v1/completions": "prompt",
    "/v1/moderations": "input",
}


def _json_kind(value: Any) -> str:
    """How the API names a JSON value's type in its messages ("an integer", "a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong_type(param: str, expected: str, value: Any) -> dict[str, Any]:
    return error_body(
        f"Invalid type for '{param}': expected {expected}, but got {_json_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _limits_problem(body: dict[str, Any]) -> dict[str, Any] | None:
    """The 400 for a token limit or sampling value of the wrong type or out of range, else None."""
    for name in TOKEN_LIMIT_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            return _wrong_type(name, "an integer", value)
        if value < 1:
            return error_body(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
                param=name,
                code="integer_below_min_value",
            )
    for name, (low, high) in SAMPLING_RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return _wrong_type(name, "a decimal", value)
        if value < low:
            return error_body(
                f"Invalid '{name}': decimal below minimum value. Expected a value >= {low}, but got {value} instead.",
                param=name,
                code="decimal_below_min_value",
            )
        if value > high:
            return error_body(
                f"Invalid '{name}': decimal above maximum value. Expected a value <= {high}, but got {value} instead.",
                param=name,
                code="decimal_above_max_value",
            )
    return None


def body_problem(endpoint: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The API's 400 error body for a request body whose fields have the wrong type, else None.

    Checked per request, as the API does: one such line of a batch gets its 400 in the error file,
    and the batch's other lines are answered.
    """
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return _wrong_type("model", "a string", model)
    limits = _limits_problem(body)
    if limits is not None:
        return limits
    if endpoint == "/v1/chat/completions":
        messages = body.get("messages")
        if messages is not None and not isinstance(messages, list):
            return _wrong_type("messages", "an array of objects", messages)
        for index, message in enumerate(messages or []):
            if not isinstance(message, dict):
                return _wrong_type(f"messages[{index}]", "an object", message)
        n = body.get("n")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool)):
            return _wrong_type("n", "an integer", n)
        if n is not None and not 1 <= n <= MAX_CHOICES:
            return error_body(
                f"Invalid 'n': expected a value from 1 to {MAX_CHOICES}, but got {n} instead.",
                param="n",
                code="integer_out_of_range",
            )
    field_name = PROMPT_FIELDS.get(endpoint)
    value = body.get(field_name) if field_name else None
    if value is not None and not isinstance(value, (str, list)):
        return _wrong_type(field_name, "a string or an array", value)  # type: ignore[arg-type]
    if endpoint == "/v1/embeddings":
        dimensions = body.get("dimensions")
        if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)):
            return _wrong_type("dimensions", "an integer", dimensions)
        if dimensions is not None and not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
            return error_body(
                f"Invalid 'dimensions': expected a value from 1 to {MAX_EMBEDDING_DIMENSIONS}, "
                f"but got {dimensions} instead.",
                param="dimensions",
                code="integer_out_of_range",
            )
    return None


def unrecognized_argument(endpoint: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The API's 400 for a body field its endpoint does not take (`max_token`), else None.

    The fields are the request schema's in the OpenAPI spec. Checked by the built-in responder only:
    a line sent on to an --upstream server is that server's to judge (it may take fields of its own).
    """
    known = REQUEST_FIELDS.get(endpoint)
    if known is None:
        return None
    for name in body:
        if name not in known:
            return error_body(f"Unrecognized request argument supplied: {name}")
    return None


def request_tokens(endpoint: str, body: dict[str, Any]) -> int:
    """Prompt tokens of one request body; 0 for a body the API answers with a 400."""
    from ..utils.costs.tokens import estimate_body_tokens

    if body_problem(endpoint, body) is not None:
        return 0
    return estimate_body_tokens(body, endpoint=endpoint)
