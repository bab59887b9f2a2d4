"""HTTP plumbing: keep-alive connections, the key check before any body is read, and injected HTTP faults."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from .access import key_error
from .anthropic_access import anthropic_key_error
from .anthropic_endpoints import BATCHES_PATH, is_anthropic_path
from .anthropic_objects import as_anthropic
from .api_error import ApiError
from .disk_full import disk_full_error, disk_full_file
from .endpoints import Api, Request, Response
from .faults import DEFAULT_FAULT_PATHS, FaultInjector
from .ids import new_id
from .request_body import MAX_JSON_BODY_BYTES, MAX_UPLOAD_BODY_BYTES, BodyError, RequestBody
from .store import DATABASE_NAME

# An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 120
# The rate-limit headers the API sends on every answer; some client libraries read them
# unconditionally. The local backend has no limits, so they describe an untouched budget.
RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "30000",
    "x-ratelimit-remaining-requests": "29999",
    "x-ratelimit-reset-requests": "2ms",
    "x-ratelimit-limit-tokens": "150000000",
    "x-ratelimit-remaining-tokens": "149999990",
    "x-ratelimit-reset-tokens": "0s",
}
# Connections waiting to be accepted: 50 clients opening connections at once must all get in, where
# the socketserver default of 5 refuses some.
LISTEN_BACKLOG = 1024
FILE_SLICE_BYTES = 1024 * 1024


class ApiHTTPServer(ThreadingHTTPServer):
    """A threading server that knows its open connections, so that stopping can close them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], api: Api, faults: FaultInjector, *, api_key: str | None) -> None:
        self.api = api
        self.faults = faults
        # With a key, only requests bearing it get in; without, any bearer token does (loopback only).
        self.api_key = api_key
        self.stopping = False
        self.busy = 0
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, ApiRequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer is normal (and injected drops are on purpose).
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def enter(self) -> None:
        with self._lock:
            self.busy += 1

    def leave(self) -> None:
        with self._lock:
            self.busy -= 1

    def close_connections(self, grace: float) -> None:
        """Let requests being answered finish (up to `grace` seconds), then cut every connection."""
        deadline = time.monotonic() + grace
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ApiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openai-batch-api-local"
    timeout = IDLE_TIMEOUT
    server: ApiHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, by the server's clock (moved by clock_offset, as its objects' times are)."""
        if timestamp is None:
            timestamp = time.time() + self.server.api.clock_offset
        return super().date_time_string(timestamp)

    def version_string(self) -> str:
        return self.server_version

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the base class raises itself (a malformed request line or header) in the API's envelope."""
        self.close_connection = True
        text = message or self.responses.get(code, ("Error",))[0]
        self._send(Response(code, orjson.dumps(ApiError(code, text).body())))

    def handle_expect_100(self) -> bool:
        """Ask for the body (100 Continue) only when the key lets the request in."""
        if self._key_error(urllib.parse.urlsplit(self.path).path) is None:
            return super().handle_expect_100()
        return True  # no 100 Continue: the 401 follows, and the body is never asked for

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:  # answered like GET; _send leaves the body out
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _send(self, response: Response) -> None:
        body = getattr(self, "_body", None)
        if body is not None and not body.finished:
            self.close_connection = True  # what is left of the body must not be read as the next request
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        size = os.fstat(response.file.fileno()).st_size if response.file else len(response.body)
        self.send_header("Content-Length", str(size))
        self.send_header("x-request-id", new_id("req_"))
        started = getattr(self, "_started", None)
        elapsed = time.monotonic() - started if started is not None else 0.0
        self.send_header("openai-processing-ms", str(int(elapsed * 1000)))
        for name, value in {**RATE_LIMIT_HEADERS, **response.headers}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.file is not None:
            with response.file:
                if self.command != "HEAD":
                    shutil.copyfileobj(response.file, self.wfile, FILE_SLICE_BYTES)
        elif self.command != "HEAD":
            self.wfile.write(response.body)

    def _send_error(self, error: ApiError) -> None:
        self._send(self._error_response(error))

    def _error_response(self, error: ApiError) -> Response:
        if getattr(self, "_anthropic", False):
            error = as_anthropic(error)
        return Response(error.status, orjson.dumps(error.body()), headers=error.headers)

    def _key_error(self, path: str) -> ApiError | None:
        """Anthropic's routes take the key their way and need anthropic-version; the rest, OpenAI's."""
        if is_anthropic_path(path.rstrip("/")):
            return anthropic_key_error(self.headers, self.server.api_key)
        return key_error(self.headers.get("Authorization", ""), self.server.api_key)

    def _body_limit(self, path: str, *, upload: bool) -> int:
        if upload:
            return MAX_UPLOAD_BODY_BYTES
        if self.command == "POST" and path.rstrip("/") == BATCHES_PATH:
            # Requests come inline: a batch may be as large as the limit on one batch.
            return max(MAX_JSON_BODY_BYTES, self.server.faults.options.max_message_batch_bytes)
        return MAX_JSON_BODY_BYTES

    def _handle(self) -> None:
        self._started = time.monotonic()
        self.server.enter()
        try:
            self._handle_request()
        finally:
            self.server.leave()

    def _handle_request(self) -> None:
        self._body: RequestBody | None = None
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        query = dict(urllib.parse.parse_qsl(parts.query))
        # An upload is streamed to disk by its route; every other body is JSON, read whole.
        upload = self.command == "POST" and path.rstrip("/") == "/v1/files"
        self._anthropic = is_anthropic_path(path.rstrip("/"))
        try:
            # Only its headers are looked at here: the key is checked before a byte of the body is
            # read, so a request nobody let in costs no memory, however large it says it is.
            self._body = RequestBody(self.rfile, self.headers, limit=self._body_limit(path, upload=upload))
            error = self._key_error(path)
            if error is not None:
                self._send_error(error)
                return
            body = b"" if upload else self._body.read_all()
        except BodyError as exc:
            self.close_connection = True
            self._send_error(ApiError(exc.status, str(exc)))
            return
        if self.server.stopping:
            self.close_connection = True
            self._send_error(ApiError(503, "The local backend is shutting down.", type="server_error"))
            return
        latency = self.server.faults.options.api_latency
        if latency and DEFAULT_FAULT_PATHS.search(f"{self.command} {path}"):
            time.sleep(latency)  # a distant server: what concurrent clients are measured against
        fault = self.server.faults.http_fault(self.command, path)
        if fault == "drop":
            self.close_connection = True  # closed before anything is done: nothing happened
            return
        if fault in ("429", "500", "503"):
            self._send_error(self.server.faults.http_error(fault))
            return
        method = "GET" if self.command == "HEAD" else self.command
        request = Request(
            method,
            path,
            query,
            self.headers.get("Content-Type", ""),
            body,
            stream=self._body if upload else None,
            headers=self.headers,
        )
        try:
            response = self.server.api.dispatch(request)
        except BodyError as exc:
            self.close_connection = True
            response = self._error_response(ApiError(exc.status, str(exc)))
        except ApiError as exc:
            response = self._error_response(exc)
        except Exception as exc:
            full = disk_full_file(exc, database=self.server.api.store.root / DATABASE_NAME)
            if full is None:
                traceback.print_exc(file=sys.stderr)
                error = ApiError(500, f"The local backend failed on this request: {exc!r}", type="server_error")
            else:
                error = disk_full_error(full)  # every later request would fail the same way: no traceback
            response = self._error_response(error)
        if fault == "drop_after":
            self.close_connection = True  # done and committed, but the client never hears of it
            if response.file is not None:
                response.file.close()
            return
        self._send(response)
