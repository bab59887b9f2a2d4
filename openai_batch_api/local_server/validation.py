"""The rules the API applies to uploads and to batch input files."""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import orjson

from .api_error import ApiError
from .request_bodies import request_tokens

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
    # Prompt tokens of each request, when counted.
    tokens: list[int] | None = None


def check_upload(*, purpose: str | None, filename: str | None, size: int | None, path: Path | None) -> None:
    """Raise the API's 400 for an upload it refuses; its `size` bytes are in the file at `path`."""
    if not purpose:
        raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in UPLOAD_PURPOSES:
        allowed = ", ".join(f"'{name}'" for name in UPLOAD_PURPOSES)
        raise ApiError(400, f"'{purpose}' is not one of [{allowed}] - 'purpose'", param="purpose")
    if size is None or path is None:
        raise ApiError(400, "Missing required parameter: 'file'.", param="file")
    if size > MAX_UPLOAD_BYTES:
        raise ApiError(400, f"File is too large: {size} bytes; the maximum is {MAX_UPLOAD_BYTES}.", param="file")
    if not size:
        raise ApiError(400, "File is empty.", param="file")
    if purpose == "batch":
        # Clients that upload bytes or a buffer send no extension (the SDK names them `upload`): the
        # API takes those, and refuses only a name that says it is something else, such as `.txt`.
        suffix = PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()
        if suffix and suffix != ".jsonl":
            raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        bad_byte = _first_non_utf8_byte(path)
        if bad_byte is not None:
            raise ApiError(
                400,
                f"Invalid file: the file is not UTF-8 encoded (byte {bad_byte}). Batch files must be UTF-8 JSONL.",
                param="file",
            )


def _first_non_utf8_byte(path: Path) -> int | None:
    """The offset of the first byte that is not valid UTF-8, reading the file in slices; None if it all is."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1024 * 1024)
            pending = len(decoder.getstate()[0])  # bytes of a character begun in the previous slice
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return offset - pending + exc.start
            if not chunk:
                return None
            offset += len(chunk)


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


class InputReader:
    """Checks a batch input file a slice of lines at a time, so a big file never holds a worker long.

    Call `read` with the file positioned at `offset` until `done`; `parsed` then holds the requests
    (with their prompt tokens when `count_tokens`), or the errors for which the API fails the batch.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        size: int,
        count_tokens: bool = False,
        max_requests: int = MAX_REQUESTS,
        max_bytes: int = MAX_INPUT_BYTES,
    ) -> None:
        self.endpoint = endpoint
        self.parsed = ParsedInput(tokens=[] if count_tokens else None)
        self.offset = 0
        self.lines = 0
        self.done = False
        self.max_requests = max_requests
        self._seen: set[str] = set()
        self._embedding_inputs = 0
        if size > max_bytes:
            self.parsed.errors.append(
                _error("file_too_large", f"The input file is larger than the {max_bytes} bytes maximum.", None)
            )
            self.done = True

    def read(self, f: BinaryIO, *, max_lines: int, max_seconds: float) -> None:
        """Check up to `max_lines` more lines of `f`, or as many as fit in about `max_seconds`."""
        started = time.monotonic()
        for _ in range(max_lines):
            raw = f.readline()
            if not raw or (not raw.endswith(b"\n") and not raw.strip()):  # the end, or blanks after the last line
                self._finish()
                return
            self.offset += len(raw)
            self.lines += 1
            if self.lines > self.max_requests:
                total = self.lines + _lines_in(f)
                self.parsed.errors[:] = [
                    _error(
                        "too_many_requests",
                        f"The batch input file has {total} requests; the maximum is {self.max_requests}.",
                        None,
                    )
                ]
                self.done = True
                return
            self._check_line(raw)
            if time.monotonic() - started > max_seconds:
                return

    def _check_line(self, raw: bytes) -> None:
        number, errors = self.lines, self.parsed.errors
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            request = None
        problem = _line_problem(request, number, self.endpoint)
        if problem is None:
            custom_id = request["custom_id"]
            model = request["body"].get("model")
            if custom_id in self._seen:
                problem = _error(
                    "duplicate_custom_id",
                    "The custom_id for this request is a duplicate of another request. "
                    "The custom_id parameter must be unique for each request in a batch.",
                    number,
                    "custom_id",
                )
            elif isinstance(model, str) and self.parsed.model is not None and model != self.parsed.model:
                problem = _error(
                    "mismatched_model",
                    f"The provided model '{model}' does not match the model '{self.parsed.model}' of the "
                    "other requests. All requests in a batch must use the same model.",
                    number,
                    "body.model",
                )
        if problem is not None:
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(problem)
            return
        self._seen.add(custom_id)
        if isinstance(model, str):
            self.parsed.model = model
        body = request["body"]
        if self.endpoint == "/v1/embeddings":
            self._embedding_inputs += _embedding_inputs(body)
        self.parsed.requests.append(BatchRequest(number, custom_id, body))
        # A file the API fails anyway is not worth counting tokens for.
        if self.parsed.tokens is not None and not errors:
            self.parsed.tokens.append(request_tokens(self.endpoint, body))

    def _finish(self) -> None:
        self.done = True
        errors = self.parsed.errors
        if not self.lines:
            errors.append(_error("empty_file", "The batch input file is empty.", None))
        elif self._embedding_inputs > MAX_EMBEDDING_INPUTS and not errors:
            errors.append(
                _error(
                    "too_many_embedding_inputs",
                    f"The batch has {self._embedding_inputs} embedding inputs; the maximum is {MAX_EMBEDDING_INPUTS}.",
                    None,
                )
            )


def _lines_in(f: BinaryIO) -> int:
    """Lines from the position of `f` to its end, read in bounded slices; a blank tail is no line."""
    count, tail = 0, b""
    while chunk := f.read(1024 * 1024):
        count += chunk.count(b"\n")
        tail = chunk[chunk.rfind(b"\n") + 1 :] if b"\n" in chunk else tail + chunk[:1024]
    return count + (1 if tail.strip() else 0)


