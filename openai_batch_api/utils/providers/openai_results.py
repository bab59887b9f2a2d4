"""OpenAI's batch result lines, read into the run's neutral result records (base.Answer, base.Failure).

A result line is `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`. A request
that ran has a response (status 200 with the completion, or 4xx/5xx with `body.error`); a request that
never ran has `"response": null` and an `error` such as `batch_expired` or `batch_cancelled`. The pilot's
answers are kept as such lines too.

Light to import (no SDK, no pandas; numpy only for an embedding): status-jobs reads error files with it.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import ANSWER_TABLE_COLUMNS, NO_ANSWER, Answer, Failure

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

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


def openai_result(record: dict[str, Any]) -> tuple[Answer, Failure | None]:
    """The answer of a result line, and its failure (None when the request succeeded)."""
    response = record.get("response")
    error = record.get("error")
    if response is not None and error is None and response.get("status_code") == 200:
        return openai_answer(response.get("body") or {}), None
    return NO_ANSWER, request_failure(response, error)


def chat_answer_table(path: Path) -> pa.Table | None:
    """The answers of an output file whose every line is a chat completion that succeeded, as columns.

    Arrow's JSON reader parses the lines in C++, on every core, into only the fields an answer needs:
    several times faster than a line at a time, and most output files are such. The columns are
    base.ANSWER_TABLE_COLUMNS, as openai_result reads each line. None for any other file (a line that
    failed, another endpoint's, a Message Batch's, or one Arrow cannot read, as a truncated line or a
    number for a custom_id): the caller reads it a line at a time, which says what each line is and
    names one that is not a result line.
    """
    import pyarrow as pa  # the readers of error files never come here: they stay light
    import pyarrow.compute as pc
    import pyarrow.json as pj

    try:
        lines = pj.read_json(path, parse_options=_chat_line_options())
        # The reader's buffers (the file's blocks, parsed on every core) are freed now; handed back, or
        # the allocator keeps them and a collate's peak grows with the files it has read.
        pa.default_memory_pool().release_unused()
        response = lines.column("response")
        body = pc.struct_field(response, "body")
        choices = pc.struct_field(body, "choices")
        if (
            lines.num_rows == 0
            or lines.column("custom_id").null_count
            or lines.column("error").null_count != lines.num_rows
            or not _all(pc.equal(pc.struct_field(response, "status_code"), 200))
            or not _all(pc.greater(pc.list_value_length(choices), 0))
        ):
            return None  # a line failed (or has no answer to read): openai_result says how, a line at a time
        choice = pc.list_element(choices, 0)
        message = pc.struct_field(choice, "message")
        if message.null_count:
            return None  # a legacy completion's text: openai_answer reads it
        usage = pc.struct_field(body, "usage")
        columns = [
            lines.column("custom_id"),
            pc.struct_field(message, "content"),
            pc.struct_field(message, "refusal"),
            pc.struct_field(choice, "finish_reason"),
            *(pc.struct_field(usage, name) for name in ("prompt_tokens", "completion_tokens", "total_tokens")),
        ]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError):
        return None
    return pa.table(columns, names=list(ANSWER_TABLE_COLUMNS))


def _all(values: Any) -> bool:
    """Whether every value is true: a null (a field missing, or null) counts as false."""
    import pyarrow.compute as pc

    return pc.all(values, skip_nulls=False).as_py() is True


@functools.cache
def _chat_line_options() -> Any:
    """The fields of a chat completion's result line that its answer needs, for Arrow's JSON reader."""
    import pyarrow as pa
    import pyarrow.json as pj

    tokens = pa.struct([(name, pa.int64()) for name in ("prompt_tokens", "completion_tokens", "total_tokens")])
    message = pa.struct([("content", pa.string()), ("refusal", pa.string())])
    choice = pa.struct([("message", message), ("finish_reason", pa.string())])
    body = pa.struct([("choices", pa.list_(choice)), ("usage", tokens)])
    schema = pa.schema(
        [
            ("custom_id", pa.string()),
            ("response", pa.struct([("status_code", pa.int64()), ("body", body)])),
            ("error", pa.struct([("code", pa.string()), ("message", pa.string())])),
        ]
    )
    # Fields not named are skipped unread; a named field of another type is an error (the file is read
    # a line at a time instead).
    return pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")


def openai_failure(record: dict[str, Any]) -> tuple[Answer, Failure | None]:
    """As openai_result, a success's answer left unread (NO_ANSWER): for a reader of failures only."""
    response = record.get("response")
    error = record.get("error")
    if response is not None and error is None and response.get("status_code") == 200:
        return NO_ANSWER, None
    return NO_ANSWER, request_failure(response, error)


def one_line(text: Any) -> str:
    return " ".join(str(text).split()) if text is not None else ""


def request_failure(response: dict | None, error: dict | None) -> Failure:
    """(api_status, api_error, api_error_code, api_retryable) of a request that did not succeed."""
    if error is None:
        status_code = response.get("status_code")  # type: ignore[union-attr]
        body = response.get("body")  # type: ignore[union-attr]
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail if isinstance(detail, dict) else {}
        code = str(detail.get("code") or detail.get("type") or f"http_{status_code}")
        message = one_line(detail.get("message") or body or "no error message")
        retryable = (
            code in RETRYABLE_CODES
            or "timeout" in code
            or status_code in RETRYABLE_STATUS
            or (isinstance(status_code, int) and status_code >= 500)
        )
        return "error", f"{status_code} {code}: {message}", code, retryable
    code = str(error.get("code") or "unknown_error")
    message = one_line(error.get("message") or "no error message")
    status = _STATUS_OF_CODE.get(code, "error")
    return status, f"{code}: {message}", code, code in RETRYABLE_CODES or "timeout" in code


def openai_answer(body: dict) -> Answer:
    """The values of a successful response's body, whichever endpoint it came from."""
    usage = body.get("usage") or {}
    choices = body.get("choices")
    if choices is not None:  # chat completions, or legacy completions
        choice = choices[0] if choices else {}
        message = choice.get("message")
        if message is not None:
            output = message.get("content")
            if output is not None and not isinstance(output, str):
                output = _joined_text(output)
            refusal = message.get("refusal")
        else:
            output, refusal = choice.get("text"), None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return output, refusal, choice.get("finish_reason"), None, prompt, completion, usage.get("total_tokens")
    if "output" in body:  # /v1/responses
        output, refusal, finish = _responses_output(body)
        prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
        return output, refusal, finish, None, prompt, completion, usage.get("total_tokens")
    if "results" in body:  # /v1/moderations: free, no usage
        flagged, categories = _moderation_output(body)
        return flagged, None, None, categories, None, None, usage.get("total_tokens")
    # /v1/embeddings: one input per request, so one vector; input tokens only
    vector = embedding_vector(body["data"][0]["embedding"])
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    return vector, None, None, None, prompt, None, usage.get("total_tokens")


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
    import numpy as np  # only embeddings need it: the readers of error files stay light

    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)


def _moderation_output(body: dict) -> tuple[bool, str]:
    """(flagged, the flagged categories joined by ", ") of a /v1/moderations body."""
    result = body["results"][0]
    categories = result.get("categories") or {}
    return bool(result.get("flagged")), ", ".join(name for name, hit in categories.items() if hit is True)
