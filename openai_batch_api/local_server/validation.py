"""The rules the API applies to uploads and to batch input files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import orjson

from .api_error import ApiError

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
BATCH_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
)
# Endpoints the API accepts for batches that this backend cannot answer.
UNSUPPORTED_BATCH_ENDPOINTS = ("/v1/images/generations", "/v1/images/edits", "/v1/videos")
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_INPUT_BYTES = 200 * 1024 * 1024
MAX_REQUESTS = 50_000
MAX_EMBEDDING_INPUTS = 50_000
# The API lists the first problems of a rejected file, not every one.
MAX_REPORTED_ERRORS = 100


@dataclass
class BatchRequest:
    """One request line of a batch input file."""

    line: int
    custom_id: str
    body: dict[str, Any]


@dataclass
class ParsedInput:
    requests: list[BatchRequest] = field(default_factory=list)
    model: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


def check_upload(*, purpose: str | None, filename: str | None, data: bytes | None) -> None:
    """Raise the API's 400 for an upload it refuses."""
    if not purpose:
        raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in UPLOAD_PURPOSES:
        allowed = ", ".join(f"'{name}'" for name in UPLOAD_PURPOSES)
        raise ApiError(400, f"'{purpose}' is not one of [{allowed}] - 'purpose'", param="purpose")
    if data is None:
        raise ApiError(400, "Missing required parameter: 'file'.", param="file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(400, f"File is too large: {len(data)} bytes; the maximum is {MAX_UPLOAD_BYTES}.", param="file")
    if not data:
        raise ApiError(400, "File is empty.", param="file")
    if purpose == "batch":
        # Clients that upload bytes or a buffer send no extension (the SDK names them `upload`): the
        # API takes those, and refuses only a name that says it is something else, such as `.txt`.
        suffix = PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()
        if suffix and suffix != ".jsonl":
            raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(
                400,
                f"Invalid file: the file is not UTF-8 encoded (byte {exc.start}). Batch files must be UTF-8 JSONL.",
                param="file",
            ) from None


def _error(code: str, message: str, line: int | None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _missing(name: str, line: int) -> dict[str, Any]:
    return _error("missing_required_parameter", f"Missing required parameter: '{name}'.", line, name)


def _line_problem(request: Any, number: int, endpoint: str) -> dict[str, Any] | None:
    if not isinstance(request, dict):
        return _error("invalid_json_line", "This line is not parseable as valid JSON.", number)
    for name in ("custom_id", "method", "url", "body"):
        if name not in request or request[name] is None:
            return _missing(name, number)
    if not isinstance(request["custom_id"], str):
        return _error("invalid_custom_id", "The custom_id for this request must be a string.", number, "custom_id")
    if request["method"] != "POST":
        return _error("invalid_method", "The method for this request must be 'POST'.", number, "method")
    if request["url"] != endpoint:
        return _error(
            "invalid_url",
            f"The URL provided for this request does not match the batch endpoint {endpoint}.",
            number,
            "url",
        )
    if not isinstance(request["body"], dict):
        return _error("invalid_body", "The body for this request must be a JSON object.", number, "body")
    return None


def _embedding_inputs(body: dict[str, Any]) -> int:
    value = body.get("input")
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)
    return 1


def parse_batch_input(
    data: bytes, *, endpoint: str, max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_INPUT_BYTES
) -> ParsedInput:
    """Requests of a batch input file, or the errors for which the API fails the batch."""
    parsed = ParsedInput()
    if len(data) > max_bytes:
        parsed.errors.append(
            _error("file_too_large", f"The input file is larger than the {max_bytes} bytes maximum.", None)
        )
        return parsed
    raw_lines = data.split(b"\n")
    if raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()
    if not raw_lines:
        parsed.errors.append(_error("empty_file", "The batch input file is empty.", None))
        return parsed
    if len(raw_lines) > max_requests:
        parsed.errors.append(
            _error(
                "too_many_requests",
                f"The batch input file has {len(raw_lines)} requests; the maximum is {max_requests}.",
                None,
            )
        )
        return parsed
    seen: set[str] = set()
    models: set[str] = set()
    embedding_inputs = 0
    errors = parsed.errors
    for number, raw in enumerate(raw_lines, start=1):
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            request = None
        problem = _line_problem(request, number, endpoint)
        if problem is None:
            custom_id = request["custom_id"]
            model = request["body"].get("model")
            if custom_id in seen:
                problem = _error(
                    "duplicate_custom_id",
                    "The custom_id for this request is a duplicate of another request. "
                    "The custom_id parameter must be unique for each request in a batch.",
                    number,
                    "custom_id",
                )
            elif isinstance(model, str) and models and model not in models:
                problem = _error(
                    "mismatched_model",
                    f"The provided model '{model}' does not match the model '{next(iter(models))}' of the "
                    "other requests. All requests in a batch must use the same model.",
                    number,
                    "body.model",
                )
        if problem is not None:
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(problem)
            continue
        seen.add(custom_id)
        if isinstance(model, str):
            models.add(model)
        if endpoint == "/v1/embeddings":
            embedding_inputs += _embedding_inputs(request["body"])
        parsed.requests.append(BatchRequest(number, custom_id, request["body"]))
    if embedding_inputs > MAX_EMBEDDING_INPUTS and not errors:
        errors.append(
            _error(
                "too_many_embedding_inputs",
                f"The batch has {embedding_inputs} embedding inputs; the maximum is {MAX_EMBEDDING_INPUTS}.",
                None,
            )
        )
    parsed.model = next(iter(models)) if models else None
    return parsed
