"""Answers from an upstream OpenAI-compatible server (Ollama, vLLM, llama.cpp, another backend)."""

from __future__ import annotations

import http.client
import os
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import orjson

from .access import is_loopback
from .api_error import error_body
from .options import ServerOptions

ATTEMPTS = 3
BASE_DELAY = 0.2
MAX_RETRY_AFTER = 10.0
TIMEOUT = 600.0
# An answer is held in memory whole: one bigger than this (far above the largest embedding
# answer) is refused rather than read, whatever the upstream sends.
MAX_ANSWER_BYTES = 256 * 1024 * 1024


class UpstreamUnreachable(Exception):
    """The upstream server could not be reached, even after retries."""


def upstream_key(options: ServerOptions) -> str | None:
    """The key to send to the upstream: only from the variable `upstream_key_env` names, when it does."""
    if not options.upstream_key_env:
        return None
    return os.environ.get(options.upstream_key_env) or None


def upstream_key_problem(options: ServerOptions) -> str | None:
    """Why the upstream's key must not be sent where `options` say, or None when it may."""
    if not options.upstream or not options.upstream_key_env or options.upstream_key_over_http:
        return None
    parts = urllib.parse.urlsplit(options.upstream)
    if parts.scheme == "https" or is_loopback(parts.hostname or ""):
        return None
    return (
        f"--upstream {options.upstream} is plain HTTP beyond loopback: the key in {options.upstream_key_env} "
        "would cross the network readable by anyone on the way; use https://, "
        "or send it anyway with --upstream-key-over-http"
    )


class UpstreamClient:
    """POSTs request bodies to `base_url`, one kept-alive connection per thread."""

    def __init__(self, base_url: str, *, key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._prefix = parts.path
        self._key = key
        self._local = threading.local()

    def path_for(self, endpoint: str) -> str:
        """Where a batch endpoint such as /v1/chat/completions lives under the base URL (".../v1")."""
        if self._prefix.endswith("/v1") and endpoint.startswith("/v1/"):
            return self._prefix + endpoint[3:]
        return self._prefix + endpoint

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=TIMEOUT)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _post_once(self, path: str, payload: bytes) -> tuple[int, dict[str, Any], str | None]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        connection = self._connection()
        try:
            connection.request("POST", path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read(MAX_ANSWER_BYTES + 1)
        except (OSError, http.client.HTTPException):
            self._drop_connection()
            raise
        if len(raw) > MAX_ANSWER_BYTES:
            self._drop_connection()  # the rest of the answer is never read
            message = f"The upstream server's answer is larger than {MAX_ANSWER_BYTES} bytes; it was not kept."
            return 502, error_body(message, type="server_error"), None
        if response.getheader("connection", "").lower() == "close":
            self._drop_connection()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = error_body(
                f"The upstream server answered {response.status} with a body that is not JSON.", type="server_error"
            )
        return response.status, body, response.getheader("retry-after")

    def post(self, endpoint: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, body) of the upstream's answer; transient failures are retried a few times."""
        path = self.path_for(endpoint)
        payload = orjson.dumps(body)
        last_error: Exception | None = None
        for attempt in range(ATTEMPTS):
            retry_after = None
            try:
                status, answer, retry_after = self._post_once(path, payload)
            except (OSError, http.client.HTTPException) as exc:
                last_error = exc
            else:
                if status != 429 and status < 500 or attempt == ATTEMPTS - 1:
                    return status, answer
            delay = BASE_DELAY * 2**attempt
            if retry_after:
                try:
                    delay = min(float(retry_after), MAX_RETRY_AFTER)
                except ValueError:
                    pass
            if attempt < ATTEMPTS - 1:
                time.sleep(delay)
        raise UpstreamUnreachable(f"cannot reach the upstream server at {self.base_url}: {last_error}")


class DaemonPool:
    """A fixed set of daemon threads running submitted calls.

    Not a ThreadPoolExecutor: the interpreter joins those at exit, so a request stuck on a slow
    upstream would keep a stopped server's process alive until the request's timeout.
    """

    def __init__(self, size: int, name: str) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(size)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._tasks.put((future, fn, args))
        return future

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Let the threads end after their current call; calls not started are dropped."""
        for _ in self._threads:
            self._tasks.put(None)
