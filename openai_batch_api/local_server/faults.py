"""Injected faults: transient HTTP errors on API calls and failing request lines."""

from __future__ import annotations

import random
import re
import threading
from typing import Any

from .api_error import ApiError, error_body
from .options import ServerOptions

# Without `http_error_paths`, only the files and batches endpoints (OpenAI's and Anthropic's) get faults.
DEFAULT_FAULT_PATHS = re.compile(r"^\w+ /v1/(files|batches|messages/batches)\b")


class FaultInjector:
    """Decides, reproducibly under a seed, which calls and lines fail and how."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self._rng = random.Random(options.seed)
        self._lock = threading.Lock()
        self._paths = re.compile(options.http_error_paths) if options.http_error_paths else DEFAULT_FAULT_PATHS
        self._lines = re.compile(options.line_failure_pattern) if options.line_failure_pattern else None

    def _chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def http_fault(self, method: str, path: str) -> str | None:
        """The fault kind this API call gets ("429", "500", "503", "drop", "drop_after"), or None."""
        if not self._chance(self.options.http_error_rate) or not self._paths.search(f"{method} {path}"):
            return None
        with self._lock:
            return self._rng.choice(self.options.http_error_kinds)

    def http_error(self, kind: str) -> ApiError:
        """The error answer of an injected "429", "500" or "503"."""
        if kind == "429":
            seconds = self.options.retry_after
            return ApiError(
                429,
                "Rate limit reached for requests. Please try again in a moment.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": f"{seconds:g}", "retry-after-ms": str(int(seconds * 1000))},
            )
        if kind == "503":
            return ApiError(503, "The server is overloaded or not ready yet.", type="server_error")
        return ApiError(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )

    def line_failure(self, custom_id: str) -> tuple[int, dict[str, Any]] | None:
        """(status, error body) when this request line is made to fail, else None."""
        matched = self._lines is not None and self._lines.search(custom_id) is not None
        if not matched and not self._chance(self.options.line_failure_rate):
            return None
        status = self.options.line_failure_status
        if status == 429:
            body = error_body("Rate limit reached for requests.", type="requests", code="rate_limit_exceeded")
        elif status >= 500:
            body = error_body(
                "The server had an error while processing your request. Sorry about that!", type="server_error"
            )
        else:
            body = error_body(f"Injected failure of request {custom_id}.", code="injected_failure")
        return status, body

    def shuffler(self, key: str) -> random.Random:
        """The random order of a batch's lines: reproducible for a seed and a batch."""
        if self.options.seed is None:
            return random.Random()
        return random.Random(f"{self.options.seed}:{key}")
