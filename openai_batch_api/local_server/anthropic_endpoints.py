"""Anthropic's Message Batches routes: create, retrieve, list, cancel, delete and results.

Requests come inline in the create call. What the API checks at once (the shape of `requests`, each
`custom_id`, the count and size limits) fails the whole call with a 400; `params` are checked as
each request runs, so a bad one ends `errored` in the results and the others are answered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from .anthropic_objects import AnthropicError, deleted_object, list_page, message_batch_object
from .anthropic_store import MessageBatchStore
from .anthropic_worker import MessageBatchEngine
from .endpoints import Request, Response, json_response
from .options import ServerOptions

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
CUSTOM_ID_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
REQUEST_FIELDS = ("custom_id", "params")
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 20, 1000
BATCHES_PATH = "/v1/messages/batches"


def is_anthropic_path(path: str) -> bool:
    """Whether a request path belongs to Anthropic's protocol (its key check, version and errors)."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def too_large(limit: int) -> AnthropicError:
    return AnthropicError("request_too_large", f"Request exceeds the maximum allowed number of bytes ({limit:,}).")


def _custom_id_problem(custom_id: Any, where: str) -> str | None:
    if not isinstance(custom_id, str):
        return f"{where}: Input should be a valid string"
    if not custom_id:
        return f"{where}: String should have at least 1 character"
    if len(custom_id) > 64:
        return f"{where}: String should have at most 64 characters"
    if not CUSTOM_ID.fullmatch(custom_id):
        return f"{where}: String should match pattern '{CUSTOM_ID_PATTERN}'"
    return None


def requests_problem(body: Any, *, max_requests: int) -> str | None:
    """The 400 message for a create body the API refuses whole, or None."""
    if not isinstance(body, dict):
        return "Input should be a valid dictionary"
    for name in body:
        if name != "requests":
            return f"{name}: Extra inputs are not permitted"
    requests = body.get("requests")
    if requests is None:
        return "requests: Field required"
    if not isinstance(requests, list):
        return "requests: Input should be a valid list"
    if not requests:
        return "requests: List should have at least 1 item after validation, not 0"
    if len(requests) > max_requests:
        return f"requests: List should have at most {max_requests} items after validation, not {len(requests)}"
    seen: set[str] = set()
    for index, request in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(request, dict):
            return f"{where}: Input should be a valid dictionary"
        for name in REQUEST_FIELDS:
            if name not in request:
                return f"{where}.{name}: Field required"
        for name in request:
            if name not in REQUEST_FIELDS:
                return f"{where}.{name}: Extra inputs are not permitted"
        problem = _custom_id_problem(request["custom_id"], f"{where}.custom_id")
        if problem:
            return problem
        if not isinstance(request["params"], dict):
            return f"{where}.params: Input should be a valid dictionary"
        custom_id = request["custom_id"]
        if custom_id in seen:
            return f"{where}.custom_id: Duplicate custom_id '{custom_id}'; custom_id must be unique in a batch"
        seen.add(custom_id)
    return None


def _limit(query: dict[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return LIST_LIMIT_DEFAULT
    try:
        value = int(raw)
    except ValueError:
        raise AnthropicError("invalid_request_error", "limit: Input should be a valid integer") from None
    if value < 1:
        raise AnthropicError("invalid_request_error", "limit: Input should be greater than or equal to 1")
    if value > LIST_LIMIT_MAX:
        raise AnthropicError("invalid_request_error", f"limit: Input should be less than or equal to {LIST_LIMIT_MAX}")
    return value


class MessageBatchesApi:
    """Turns a parsed request to a Message Batches route into a Response, or raises AnthropicError."""

    def __init__(self, batches: MessageBatchStore, engine: MessageBatchEngine, options: ServerOptions) -> None:
        self.batches = batches
        self.engine = engine
        self.options = options
        self.clock_offset = round(options.clock_offset)  # the times it reports, as the OpenAI side's

    def routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Response]]]:
        ident = r"([^/]+)"
        return [
            ("POST", re.compile(BATCHES_PATH), self.create),
            ("GET", re.compile(BATCHES_PATH), self.list),
            ("GET", re.compile(rf"{BATCHES_PATH}/{ident}"), self.retrieve),
            ("DELETE", re.compile(rf"{BATCHES_PATH}/{ident}"), self.delete),
            ("POST", re.compile(rf"{BATCHES_PATH}/{ident}/cancel"), self.cancel),
            ("GET", re.compile(rf"{BATCHES_PATH}/{ident}/results"), self.results),
        ]

    @staticmethod
    def _origin(request: Request) -> str:
        """http://host:port as the client reached the backend: results_url must be absolute."""
        return f"http://{request.headers.get('Host', '127.0.0.1')}"

    def _object(self, request: Request, row: Any) -> Response:
        return json_response(message_batch_object(row, origin=self._origin(request), offset=self.clock_offset))

    def _batch(self, batch_id: str) -> Any:
        row = self.batches.get(batch_id)
        if row is None:
            raise AnthropicError("not_found_error", f"Message batch {batch_id} not found.")
        return row

    def create(self, request: Request) -> Response:
        if len(request.body) > self.options.max_message_batch_bytes:
            raise too_large(self.options.max_message_batch_bytes)
        try:
            body = orjson.loads(request.body or b"{}")
        except orjson.JSONDecodeError:
            raise AnthropicError("invalid_request_error", "The request body is not valid JSON.") from None
        problem = requests_problem(body, max_requests=self.options.max_requests_per_message_batch)
        if problem:
            raise AnthropicError("invalid_request_error", problem)
        lines = [orjson.dumps(item) for item in body["requests"]]
        row = self.batches.create(lines, window_seconds=self.options.completion_window)
        self.engine.submit(row["id"])
        return self._object(request, row)

    def list(self, request: Request) -> Response:
        if self.options.no_batches_listing:
            raise AnthropicError("invalid_request_error", "Method Not Allowed", status=405)
        after_id, before_id = request.query.get("after_id"), request.query.get("before_id")
        if after_id and before_id:
            raise AnthropicError("invalid_request_error", "Only one of after_id and before_id may be given.")
        rows, has_more = self.batches.page(after_id=after_id, before_id=before_id, limit=_limit(request.query))
        origin = self._origin(request)
        page = [message_batch_object(row, origin=origin, offset=self.clock_offset) for row in rows]
        return json_response(list_page(page, has_more))

    def retrieve(self, request: Request, batch_id: str) -> Response:
        return self._object(request, self._batch(batch_id))

    def cancel(self, request: Request, batch_id: str) -> Response:
        row = self._batch(batch_id)
        if row["status"] == "ended":
            raise AnthropicError(
                "invalid_request_error", f"Message batch {batch_id} has already ended and cannot be canceled."
            )
        if self.batches.start_cancel(batch_id):
            self.engine.submit(batch_id)
        return self._object(request, self._batch(batch_id))  # re-read: the worker may have ended it already

    def delete(self, request: Request, batch_id: str) -> Response:
        row = self._batch(batch_id)
        if row["status"] != "ended":
            raise AnthropicError(
                "invalid_request_error",
                f"Message batch {batch_id} is still {row['status']} and cannot be deleted; "
                "cancel it and wait for it to end first.",
            )
        self.batches.delete(batch_id)
        return json_response(deleted_object(batch_id))

    def results(self, request: Request, batch_id: str) -> Response:
        row = self._batch(batch_id)
        if row["status"] != "ended":
            raise AnthropicError(
                "invalid_request_error",
                f"Results of message batch {batch_id} are not available until it has ended "
                f"(processing_status: {row['status']}).",
            )
        try:
            # Sent from disk a slice at a time by the handler, which closes it.
            results = open(self.batches.results_path(batch_id), "rb")
        except FileNotFoundError:  # ended with no request ever answered cannot happen, but a deleted file can
            raise AnthropicError("not_found_error", f"Results of message batch {batch_id} not found.") from None
        return Response(200, b"", content_type="application/binary", file=results)
