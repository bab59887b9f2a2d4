"""The API's routes: files, batches, and the synchronous endpoints (answered by the responder, or the upstream)."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from .api_error import ApiError, not_found
from .multipart import Readable, parse_multipart
from .objects import batch_object, file_deleted, file_object, list_page
from .options import ServerOptions
from .responder import HANDLERS
from .store import Store
from .validation import BATCH_ENDPOINTS, UNSUPPORTED_BATCH_ENDPOINTS, check_upload
from .worker import BatchEngine

COMPLETION_WINDOWS = ("24h",)
CANCELLABLE = ("validating", "in_progress", "finalizing")
METADATA_MAX_KEYS, METADATA_MAX_KEY, METADATA_MAX_VALUE = 16, 64, 512
# The range the API allows for `expires_after.seconds` and `output_expires_after.seconds`.
EXPIRY_MIN_SECONDS, EXPIRY_MAX_SECONDS = 3600, 2_592_000
# Expired files are swept at most this often (seconds), not on every call.
EXPIRY_SWEEP_SECONDS = 1.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes
    # A file upload's body, left unread for the route to stream (then `body` is empty).
    stream: Readable | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # An open file sent as the body instead of `body`, then closed.
    file: BinaryIO | None = None


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, orjson.dumps(data))


def _json_body(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
            "JSON.)",
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return data


def _limit(query: dict[str, str], *, default: int, maximum: int) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid 'limit': expected an integer, got '{raw}'.", param="limit") from None
    if not 1 <= value <= maximum:
        raise ApiError(
            400,
            f"Invalid 'limit': integer below minimum value or above maximum value (1 to {maximum}).",
            param="limit",
        )
    return value


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ApiError(400, "Invalid type for 'metadata': expected an object.", param="metadata")
    if len(metadata) > METADATA_MAX_KEYS:
        raise ApiError(400, f"Invalid 'metadata': too many properties (at most {METADATA_MAX_KEYS}).", param="metadata")
    for key, value in metadata.items():
        if len(key) > METADATA_MAX_KEY:
            raise ApiError(
                400, f"Invalid 'metadata': key '{key[:20]}...' is longer than {METADATA_MAX_KEY}.", param="metadata"
            )
        if not isinstance(value, str) or len(value) > METADATA_MAX_VALUE:
            raise ApiError(
                400,
                f"Invalid 'metadata.{key}': expected a string of at most {METADATA_MAX_VALUE} characters.",
                param=f"metadata.{key}",
            )


def _expiry_seconds(value: Any, param: str) -> int | None:
    """Seconds after creation from an expiration policy {anchor: created_at, seconds: N}; None if absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, f"Invalid type for '{param}': expected an object.", param=param)
    if value.get("anchor") != "created_at":
        raise ApiError(
            400,
            f"Invalid value for '{param}.anchor': '{value.get('anchor')}'. Supported values are: 'created_at'.",
            param=f"{param}.anchor",
            code="invalid_value",
        )
    seconds = value.get("seconds")
    if isinstance(seconds, str) and seconds.strip().isdigit():  # multipart fields arrive as text
        seconds = int(seconds)
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise ApiError(400, f"Invalid type for '{param}.seconds': expected an integer.", param=f"{param}.seconds")
    if not EXPIRY_MIN_SECONDS <= seconds <= EXPIRY_MAX_SECONDS:
        raise ApiError(
            400,
            f"Invalid '{param}.seconds': expected a value from {EXPIRY_MIN_SECONDS} to {EXPIRY_MAX_SECONDS}, "
            f"but got {seconds} instead.",
            param=f"{param}.seconds",
        )
    return seconds


def _form_object(form: dict[str, Any], name: str) -> dict[str, str] | None:
    """A nested form field the SDK sends as `name[key]` parts, e.g. expires_after[seconds]."""
    prefix = f"{name}["
    found = {
        key[len(prefix) : -1]: part.data.decode("utf-8", "replace")
        for key, part in form.items()
        if key.startswith(prefix) and key.endswith("]")
    }
    return found or None


class Api:
    """Turns a parsed HTTP request into a Response, or raises ApiError."""

    def __init__(self, store: Store, engine: BatchEngine, options: ServerOptions) -> None:
        self.store = store
        self.engine = engine
        self.options = options
        self.clock_offset = round(options.clock_offset)
        self._next_sweep = 0.0
        ident = r"([^/]+)"
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = [
            ("POST", re.compile(r"/v1/files"), self.create_file),
            ("GET", re.compile(r"/v1/files"), self.list_files),
            ("GET", re.compile(rf"/v1/files/{ident}"), self.retrieve_file),
            ("DELETE", re.compile(rf"/v1/files/{ident}"), self.delete_file),
            ("GET", re.compile(rf"/v1/files/{ident}/content"), self.file_content),
            ("POST", re.compile(r"/v1/batches"), self.create_batch),
            ("GET", re.compile(r"/v1/batches"), self.list_batches),
            ("GET", re.compile(rf"/v1/batches/{ident}"), self.retrieve_batch),
            ("POST", re.compile(rf"/v1/batches/{ident}/cancel"), self.cancel_batch),
        ]
        for endpoint in HANDLERS:
            self.routes.append(("POST", re.compile(re.escape(endpoint)), self.answer_now))

    def add_routes(self, routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]]) -> None:
        """Serve another protocol's routes beside these (Anthropic's Message Batches)."""
        self.routes.extend(routes)

    def dispatch(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + EXPIRY_SWEEP_SECONDS
            self.store.expire_files(now=now)
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                return handler(request, *match.groups())
        raise ApiError(404, f"Invalid URL ({request.method} {request.path})")

    # -- files ---------------------------------------------------------------------------------

    def create_file(self, request: Request) -> Response:
        # Streamed to a temporary file beside the blobs: an upload never sits in memory whole.
        spool = self.store.new_upload_path()
        try:
            try:
                form = parse_multipart(
                    request.content_type, request.stream or io.BytesIO(request.body), file_path=spool
                )
            except OSError as exc:
                if exc.filename is None:
                    exc.filename = str(spool)  # a write to the spool failed (a full disk): the file to name
                raise
            purpose = form["purpose"].data.decode("utf-8", "replace") if "purpose" in form else None
            upload = form.get("file")
            check_upload(
                purpose=purpose,
                filename=upload.filename if upload else None,
                size=upload.size if upload else None,
                path=upload.path if upload else None,
            )
            lifetime = _expiry_seconds(_form_object(form, "expires_after"), "expires_after")
            row = self.store.create_file(
                data=spool, filename=upload.filename or "upload", purpose=purpose, lifetime=lifetime
            )
        finally:
            spool.unlink(missing_ok=True)
        return json_response(file_object(row, self.clock_offset))

    def list_files(self, request: Request) -> Response:
        if self.options.no_files_listing:
            raise ApiError(405, "Method Not Allowed")
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, f"Invalid value for 'order': '{order}'. Use 'asc' or 'desc'.", param="order")
        rows, has_more = self.store.list_files(
            purpose=request.query.get("purpose"),
            after=request.query.get("after"),
            limit=_limit(request.query, default=10_000, maximum=10_000),
            ascending=order == "asc",
        )
        return json_response(list_page([file_object(row, self.clock_offset) for row in rows], has_more))

    def _file(self, file_id: str, param: str = "id") -> Any:
        row = self.store.get_file(file_id)
        if row is None:
            raise not_found("file", file_id, param=param)
        return row

    def retrieve_file(self, request: Request, file_id: str) -> Response:
        return json_response(file_object(self._file(file_id), self.clock_offset))

    def delete_file(self, request: Request, file_id: str) -> Response:
        if not self.store.delete_file(file_id):
            raise not_found("file", file_id)
        return json_response(file_deleted(file_id))

    def file_content(self, request: Request, file_id: str) -> Response:
        self._file(file_id)
        try:
            # Sent from disk a slice at a time: an output file can be hundreds of megabytes.
            content = open(self.store.blob_path(file_id), "rb")  # the handler sends and closes it
        except FileNotFoundError:
            raise not_found("file", file_id) from None
        return Response(200, b"", content_type="application/octet-stream", file=content)

    # -- batches -------------------------------------------------------------------------------

    def create_batch(self, request: Request) -> Response:
        body = _json_body(request)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(name):
                raise ApiError(400, f"Missing required parameter: '{name}'.", param=name)
        endpoint = body["endpoint"]
        if endpoint in UNSUPPORTED_BATCH_ENDPOINTS:
            raise ApiError(
                400,
                f"The local backend does not answer {endpoint} batches; use one of {', '.join(BATCH_ENDPOINTS)}.",
                param="endpoint",
            )
        if endpoint not in BATCH_ENDPOINTS:
            allowed = ", ".join(f"'{e}'" for e in BATCH_ENDPOINTS + UNSUPPORTED_BATCH_ENDPOINTS)
            raise ApiError(
                400,
                f"Invalid value: '{endpoint}'. Supported values are: {allowed}.",
                param="endpoint",
                code="invalid_value",
            )
        window = body["completion_window"]
        if window not in COMPLETION_WINDOWS:
            raise ApiError(
                400,
                f"Invalid value: '{window}'. Supported values are: '24h'.",
                param="completion_window",
                code="invalid_value",
            )
        _check_metadata(body.get("metadata"))
        output_lifetime = _expiry_seconds(body.get("output_expires_after"), "output_expires_after")
        file_row = self._file(str(body["input_file_id"]), param="input_file_id")
        if file_row["purpose"] != "batch":
            raise ApiError(
                400,
                f"The input file {file_row['id']} has purpose '{file_row['purpose']}'; batch input files must be "
                "uploaded with purpose 'batch'.",
                param="input_file_id",
            )
        row = self.store.create_batch(
            endpoint=endpoint,
            input_file_id=file_row["id"],
            completion_window=window,
            metadata=(
                orjson.dumps(body["metadata"]).decode()
                if body.get("metadata") and not self.options.no_batch_metadata
                else None
            ),
            window_seconds=self.options.completion_window,
            output_lifetime=output_lifetime,
        )
        self.engine.submit(row["id"])
        return json_response(batch_object(row, self.clock_offset))

    def list_batches(self, request: Request) -> Response:
        if self.options.no_batches_listing:
            raise ApiError(405, "Method Not Allowed")
        rows, has_more = self.store.list_batches(
            after=request.query.get("after"), limit=_limit(request.query, default=20, maximum=100)
        )
        return json_response(list_page([batch_object(row, self.clock_offset) for row in rows], has_more))

    def _batch(self, batch_id: str) -> Any:
        row = self.store.get_batch(batch_id)
        if row is None:
            raise not_found("batch", batch_id)
        return row

    def retrieve_batch(self, request: Request, batch_id: str) -> Response:
        return json_response(batch_object(self._batch(batch_id), self.clock_offset))

    def cancel_batch(self, request: Request, batch_id: str) -> Response:
        status = self._batch(batch_id)["status"]
        if status in CANCELLABLE:
            now = int(time.time())
            if self.store.update_batch(batch_id, only_if=CANCELLABLE, status="cancelling", cancelling_at=now):
                self.engine.submit(batch_id)
                status = "cancelling"
            else:  # it moved on meanwhile
                status = self._batch(batch_id)["status"]
        if status != "cancelling":
            raise ApiError(409, f"Cannot cancel a batch with status '{status}'.")
        # Re-read: a worker may have finished cancelling already.
        return json_response(batch_object(self._batch(batch_id), self.clock_offset))

    # -- synchronous endpoints -------------------------------------------------------------------

    def answer_now(self, request: Request) -> Response:
        body = _json_body(request)
        status, answer = self.engine.answer_now(request.path.rstrip("/"), body)
        return json_response(answer, status)
