"""Read the Batch API's output and error files into one row per request, and make sense of the failures.

A result line is `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`. A request
that ran has a response (status 200 with the completion, or 4xx/5xx with `body.error`); a request that
never ran has `"response": null` and an `error` such as `batch_expired` or `batch_cancelled`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .errors import BatchToolError

RESULT_COLUMNS = (
    "api_status",
    "api_output",
    "api_error",
    "api_error_code",
    "api_finish_reason",
    "api_refusal",
    "api_categories",
    "api_prompt_tokens",
    "api_completion_tokens",
    "api_total_tokens",
    "api_retryable",
)
JSON_ERROR_COLUMN = "api_json_error"

# Codes of failures that a later attempt can fix: capacity, limits, outages, time running out, and
# a server behind the local backend that could not be reached (it may be up by the next attempt).
# Other 4xx errors (a bad request, a missing model, content policy) fail the same way every time.
RETRYABLE_CODES = frozenset(
    {
        "batch_expired",
        "upstream_unreachable",
        "token_limit_exceeded",
        "rate_limit_exceeded",
        "server_error",
        "internal_error",
        "service_unavailable",
        "engine_overloaded",
        "timeout",
        "request_timeout",
    }
)
# Statuses meaning "try again later": request timeout, too many requests, and every server error.
RETRYABLE_STATUS = frozenset({408, 429})
# A cancelled row is not retried by default: someone chose to stop the batch, and an automatic
# retry would undo that choice.
_STATUS_OF_CODE = {"batch_expired": "expired", "batch_cancelled": "cancelled"}
# Responses-API reasons a reply stopped early, in the chat completions' finish_reason words.
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _one_line(text: Any) -> str:
    return " ".join(str(text).split()) if text is not None else ""


def _joined_text(parts: list) -> str | None:
    """Text of a list of content parts (chat content given as parts)."""
    texts = [p.get("text") for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "".join(texts) if texts else None


def _responses_output(body: dict) -> tuple[str | None, str | None, str | None]:
    """(text, refusal, finish_reason) of a /v1/responses body."""
    texts: list[str] = []
    refusals: list[str] = []
    for item in body.get("output") or ():
        if not isinstance(item, dict) or item.get("type") != "message":
            continue  # reasoning summaries and tool calls are not the answer
        for part in item.get("content") or ():
            kind = part.get("type")
            if kind == "output_text":
                texts.append(part.get("text") or "")
            elif kind == "refusal":
                refusals.append(part.get("refusal") or "")
    status = body.get("status")
    if status == "incomplete":
        reason = (body.get("incomplete_details") or {}).get("reason")
        finish = _INCOMPLETE_REASONS.get(reason, reason)
    else:
        finish = "stop" if status == "completed" else status
    return ("".join(texts) if texts else None), ("".join(refusals) if refusals else None), finish


def embedding_vector(embedding: Any) -> np.ndarray:
    """An embedding as float32: from its list of floats, or from base64 (`encoding_format: base64`)."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)


def _moderation_output(body: dict) -> tuple[bool, str]:
    """(flagged, the flagged categories joined by ", ") of a /v1/moderations body."""
    result = body["results"][0]
    categories = result.get("categories") or {}
    return bool(result.get("flagged")), ", ".join(name for name, hit in categories.items() if hit is True)


def load_results(paths: Iterable[str | PathLike[str]]) -> pd.DataFrame:
    """One row per request from Batch API output and error files, indexed by custom_id.

    Files are read in the order given, oldest attempt first: when a custom_id appears more than once,
    the last line wins. Columns are RESULT_COLUMNS; token counts are nullable Int64. A line that is not
    a result line raises BatchToolError naming the file and line.

    `api_output` is the answer's text (chat, completions, responses), the vector as a float32 array
    (embeddings) or whether the input was flagged (moderations, with the flagged `api_categories`).
    """
    ids: list[str] = []
    outputs: list[str | None] = []
    finishes: list[str | None] = []
    refusals: list[str | None] = []
    categories: list[str | None] = []
    prompt_tokens: list[int | None] = []
    completion_tokens: list[int | None] = []
    total_tokens: list[int | None] = []
    # Most rows succeed: failures are kept apart as (row position, status, error, code, retryable).
    failures: list[tuple[int, str, str, str, bool]] = []
    # A million lines share a handful of finish reasons: keep one string of each, not one per line.
    reasons: dict[str | None, str | None] = {}
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    add_id, add_output, add_finish, add_refusal = ids.append, outputs.append, finishes.append, refusals.append
    add_prompt, add_completion, add_total = prompt_tokens.append, completion_tokens.append, total_tokens.append
    add_categories = categories.append

    for path in paths:
        path = Path(path)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise BatchToolError(f"{path}: result file not found") from None
        with handle:
            # The files can hold a million lines: stream them, and keep the per-line work to the
            # few lookups each column needs.
            for number, line in enumerate(handle, 1):
                try:
                    record = loads(line)
                except decode_error as exc:
                    if not line.strip():
                        continue
                    raise BatchToolError(
                        f"{path}, line {number}: not valid JSON ({exc}); the file is truncated or is not "
                        "a Batch API output or error file"
                    ) from None
                try:
                    custom_id = record["custom_id"]
                    if custom_id is None:
                        raise KeyError("custom_id")
                    response = record.get("response")
                    error = record.get("error")
                    output = refusal = finish = prompt = completion = total = flagged_categories = None
                    if response is not None and error is None and response.get("status_code") == 200:
                        body = response.get("body") or {}
                        usage = body.get("usage") or {}
                        choices = body.get("choices")
                        if choices is not None:  # chat completions, or legacy completions
                            choice = choices[0] if choices else {}
                            message = choice.get("message")
                            if message is not None:
                                output = message.get("content")
                                refusal = message.get("refusal")
                                if output is not None and not isinstance(output, str):
                                    output = _joined_text(output)
                            else:
                                output = choice.get("text")
                            finish = choice.get("finish_reason")
                            prompt = usage.get("prompt_tokens")
                            completion = usage.get("completion_tokens")
                        elif "output" in body:  # /v1/responses
                            output, refusal, finish = _responses_output(body)
                            prompt = usage.get("input_tokens")
                            completion = usage.get("output_tokens")
                        elif "results" in body:  # /v1/moderations: free, no usage
                            output, flagged_categories = _moderation_output(body)
                        else:  # /v1/embeddings: one input per request, so one vector; input tokens only
                            output = embedding_vector(body["data"][0]["embedding"])
                            prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
                        total = usage.get("total_tokens")
                    else:
                        failures.append((len(ids), *_failure(response, error)))
                except (KeyError, TypeError, AttributeError, IndexError, ValueError):
                    raise BatchToolError(
                        f"{path}, line {number}: not a Batch API result line (expected custom_id with a "
                        "response or an error); pass the batch's output or error file"
                    ) from None
                add_id(custom_id if isinstance(custom_id, str) else str(custom_id))
                add_output(output)
                add_refusal(refusal)
                add_categories(flagged_categories)
                add_finish(reasons.setdefault(finish, finish))
                add_prompt(prompt)
                add_completion(completion)
                add_total(total)

    count = len(ids)
    statuses = np.full(count, "ok", dtype=object)
    errors = np.full(count, None, dtype=object)
    codes = np.full(count, None, dtype=object)
    retryables = np.zeros(count, dtype=bool)
    if failures:
        positions, failure_statuses, failure_errors, failure_codes, failure_retryables = zip(*failures, strict=True)
        rows = np.fromiter(positions, dtype=np.intp, count=len(failures))
        statuses[rows] = failure_statuses
        errors[rows] = failure_errors
        codes[rows] = failure_codes
        retryables[rows] = failure_retryables
    frame = pd.DataFrame(
        {
            "api_status": pd.Series(statuses, dtype=object),
            "api_output": pd.Series(outputs, dtype=object),
            "api_error": pd.Series(errors, dtype=object),
            "api_error_code": pd.Series(codes, dtype=object),
            "api_finish_reason": pd.Series(finishes, dtype=object),
            "api_refusal": pd.Series(refusals, dtype=object),
            "api_categories": pd.Series(categories, dtype=object),
            "api_prompt_tokens": pd.array(prompt_tokens, dtype="Int64"),
            "api_completion_tokens": pd.array(completion_tokens, dtype="Int64"),
            "api_total_tokens": pd.array(total_tokens, dtype="Int64"),
            "api_retryable": retryables,
        }
    )
    index = pd.Index(ids, name="custom_id", dtype=str)
    del ids  # the index holds the ids now: the million strings of the list can go
    # A custom_id seen again is a later attempt: keep each id's last row, in the order they were last seen.
    repeated = index.duplicated(keep="last")
    if repeated.any():
        frame = frame[~repeated]
        index = index[~repeated]
    frame.index = index
    return frame


def _failure(response: dict | None, error: dict | None) -> tuple[str, str, str, bool]:
    """(api_status, api_error, api_error_code, api_retryable) of a request that did not succeed."""
    if error is None:
        status_code = response.get("status_code")
        body = response.get("body")
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail if isinstance(detail, dict) else {}
        code = str(detail.get("code") or detail.get("type") or f"http_{status_code}")
        message = _one_line(detail.get("message") or body or "no error message")
        retryable = (
            code in RETRYABLE_CODES
            or "timeout" in code
            or status_code in RETRYABLE_STATUS
            or (isinstance(status_code, int) and status_code >= 500)
        )
        return "error", f"{status_code} {code}: {message}", code, retryable
    code = str(error.get("code") or "unknown_error")
    message = _one_line(error.get("message") or "no error message")
    status = _STATUS_OF_CODE.get(code, "error")
    return status, f"{code}: {message}", code, code in RETRYABLE_CODES or "timeout" in code


@dataclass(frozen=True)
class FailureGroup:
    """The failed requests that share one error code."""

    code: str
    count: int
    retryable: bool  # True when every request of the group failed retryably
    example_id: str
    example_error: str


def summarize_failures(results: pd.DataFrame) -> list[FailureGroup]:
    """Failed requests grouped by error code, most frequent first, each with an example row."""
    failed = results[results["api_status"] != "ok"]
    groups = []
    for code, frame in failed.groupby("api_error_code", sort=False):
        groups.append(
            FailureGroup(
                code=str(code),
                count=len(frame),
                retryable=bool(frame["api_retryable"].all()),
                example_id=str(frame.index[0]),
                example_error=str(frame["api_error"].iloc[0]),
            )
        )
    groups.sort(key=lambda group: (-group.count, group.code))
    return groups


_JSON_TYPE_NAMES = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array"}
_JSON_TYPE_NAMES.update({dict: "object", type(None): "null"})


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _matches_type(value: Any, expected: str) -> bool:
    actual = _json_type(value)
    return actual == expected or (expected == "number" and actual == "integer")


def _schema_of(response_format: dict) -> dict | None:
    """The JSON schema of a chat `response_format` or of a Responses `text.format`."""
    if "json_schema" in response_format:
        schema = (response_format.get("json_schema") or {}).get("schema")
    else:
        schema = response_format.get("schema")
    return schema if isinstance(schema, dict) else None


def _problems(answer: Any, schema: dict | None, required: list[str], properties: dict) -> str | None:
    """Why a parsed answer does not fit the schema's top level, or None."""
    root_type = (schema or {}).get("type", "object")
    if isinstance(root_type, str) and root_type != "object":
        if _matches_type(answer, root_type):
            return None
        return f"answer is a JSON {_json_type(answer)}, not {root_type}"
    if not isinstance(answer, dict):
        return f"answer is a JSON {_json_type(answer)}, not an object"
    problems = []
    missing = [name for name in required if name not in answer]
    if missing:
        problems.append("missing required " + ", ".join(repr(name) for name in missing))
    for name, spec in properties.items():
        if name not in answer or not isinstance(spec, dict):
            continue
        value = answer[name]
        expected = spec.get("type")
        allowed = [expected] if isinstance(expected, str) else expected
        if isinstance(allowed, list) and not any(_matches_type(value, kind) for kind in allowed):
            problems.append(f"{name!r} is {_json_type(value)}, expected {' or '.join(allowed)}")
        elif isinstance(spec.get("enum"), list) and value not in spec["enum"]:
            problems.append(f"{name!r} is {value!r}, not one of {spec['enum']!r}")
    return "; ".join(problems) or None


def expand_structured_answers(outputs: pd.Series, *, response_format: dict | None, prefix: str) -> pd.DataFrame:
    """JSON answers as columns, aligned with `outputs`' index.

    With a `json_schema` response format each top-level property becomes a column `<prefix><name>`;
    with `json_object` there are no property columns. Either way the `api_json_error` column says why an
    answer is not valid JSON, not an object, or misses a required property or has a wrong top-level type
    (None when it fits, or when there is no answer). Without a JSON response format: an empty frame.
    """
    kind = (response_format or {}).get("type")
    if kind not in ("json_object", "json_schema"):
        return pd.DataFrame(index=outputs.index)
    schema = _schema_of(response_format) if kind == "json_schema" else None
    properties = (schema or {}).get("properties") or {}
    required = [name for name in (schema or {}).get("required") or [] if isinstance(name, str)]
    names = list(properties)
    columns: dict[str, list[Any]] = {name: [] for name in names}
    json_errors: list[str | None] = []
    loads = orjson.loads
    for text in outputs:
        answer = None
        problem = None
        if isinstance(text, str):
            try:
                answer = loads(text)
            except orjson.JSONDecodeError as exc:
                problem = f"answer is not valid JSON ({exc})"
            else:
                problem = _problems(answer, schema, required, properties)
        fields = answer if isinstance(answer, dict) else {}
        for name in names:
            columns[name].append(fields.get(name))
        json_errors.append(problem)
    data = {f"{prefix}{name}": pd.Series(values, dtype=object) for name, values in columns.items()}
    data[JSON_ERROR_COLUMN] = pd.Series(json_errors, dtype=object)
    frame = pd.DataFrame(data)
    frame.index = outputs.index
    return frame
