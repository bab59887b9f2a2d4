"""Startup options of the local backend: which answers it gives and which faults it injects."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..utils.errors import BatchToolError
from .validation import MAX_INPUT_BYTES, MAX_REQUESTS

HTTP_ERROR_KINDS = ("429", "500", "503", "drop", "drop_after")
# Upper bounds of the options in seconds: beyond them a value only overflows the clock or a sleep.
MAX_DELAY_SECONDS = 86400  # a latency or a Retry-After of a day
MAX_COMPLETION_WINDOW = 30 * 86400
# Upstream threads are started at once, one per slot: a huge number would exhaust the process.
MAX_UPSTREAM_CONCURRENCY = 256
# Anthropic's limits on one message batch: 100,000 requests or 256 MB, whichever comes first.
MAX_MESSAGE_BATCH_REQUESTS = 100_000
MAX_MESSAGE_BATCH_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ServerOptions:
    """How the local backend behaves; the defaults answer every line at once and never fail.

    Fault options exist so that clients can be tested against slow lines, failing lines,
    transient HTTP errors and short completion windows without patching anything.
    """

    # Seconds spent on each request line of a batch.
    line_latency: float = 0.0
    # Seconds each files/batches API call waits before it is handled, like a distant server.
    api_latency: float = 0.0
    # Probability that a request line fails with `line_failure_status`.
    line_failure_rate: float = 0.0
    # Regex searched in each custom_id: matching lines fail with `line_failure_status`.
    line_failure_pattern: str | None = None
    line_failure_status: int = 500
    # Probability that a files/batches API call gets one of `http_error_kinds` instead of its answer.
    http_error_rate: float = 0.0
    http_error_kinds: tuple[str, ...] = ("429", "500", "drop")
    # Regex searched in "METHOD /path"; when set, only matching calls get HTTP faults.
    http_error_paths: str | None = None
    # Seconds in the Retry-After header of injected 429s.
    retry_after: float = 1.0
    # Seconds from creation until a batch expires (the API's window is 24h).
    completion_window: float = 86400.0
    # Most prompt tokens enqueued per model (this batch plus the unfinished ones), or None.
    enqueued_token_limit: int | None = None
    # Makes random faults and the completion order reproducible.
    seed: int | None = None
    # Base URL of an OpenAI-compatible server that answers the lines instead of the built-in responder.
    upstream: str | None = None
    # The environment variable whose key is sent to the upstream; None sends no key. Explicit, so the
    # operator's OPENAI_API_KEY never leaves for a server nobody chose to give it to.
    upstream_key_env: str | None = None
    # Send that key even to a plain-HTTP upstream beyond loopback, where anyone on the way can read it.
    upstream_key_over_http: bool = False
    upstream_concurrency: int = 8
    # Limits on one batch input file: OpenAI's by default; set them to imitate another provider's
    # (Azure OpenAI takes 100,000 requests per file). A file over either fails validation.
    max_requests_per_file: int = MAX_REQUESTS
    max_file_bytes: int = MAX_INPUT_BYTES
    # Limits on one Anthropic message batch (its requests come inline): the API's by default.
    max_requests_per_message_batch: int = MAX_MESSAGE_BATCH_REQUESTS
    max_message_batch_bytes: int = MAX_MESSAGE_BATCH_BYTES
    # A completed batch names an error file even when no line failed (empty), as Azure OpenAI does.
    empty_error_file: bool = False
    # Imitate servers that implement less: no GET /v1/files or GET /v1/batches (405), or batches
    # that keep no metadata (always null).
    no_files_listing: bool = False
    no_batches_listing: bool = False
    no_batch_metadata: bool = False
    # Seconds added to every time the backend reports (the objects' `*_at`, the Date header): a server
    # whose clock is behind the client's (negative) or ahead of it. Its own deadlines keep real time.
    clock_offset: float = 0.0

    def __post_init__(self) -> None:
        kinds = self.http_error_kinds
        if isinstance(kinds, str):
            kinds = tuple(kind.strip() for kind in kinds.split(",") if kind.strip())
        elif isinstance(kinds, list):
            kinds = tuple(kinds)
        object.__setattr__(self, "http_error_kinds", kinds)
        for field in dataclasses.fields(self):
            problem = option_problem(field.name, getattr(self, field.name))
            if problem:
                raise BatchToolError(f"ServerOptions.{field.name} {problem}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> ServerOptions:
        """Options from a config's `local_backend:` mapping; a wrong key or value raises BatchToolError."""
        mapping = dict(mapping or {})
        names = [field.name for field in dataclasses.fields(cls)]
        for key, value in mapping.items():
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(names)}"
                raise BatchToolError(f"local_backend: unknown key `{key}`; {hint}")
            problem = option_problem(key, value)
            if problem:
                raise BatchToolError(f"local_backend.{key} {problem}; fix it in the config")
        return cls(**mapping)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _regex_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"must be a regular expression (text), not {value!r}"
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a valid regular expression ({exc})"
    return None


def option_problem(name: str, value: Any) -> str | None:
    """What is wrong with `value` for option `name` ("must be ..."), or None when it is fine."""
    if name in ("line_latency", "api_latency", "retry_after"):
        if not _is_number(value) or not 0 <= value <= MAX_DELAY_SECONDS:
            return f"must be a number of seconds from 0 to {MAX_DELAY_SECONDS}, not {value!r}"
    elif name == "clock_offset":
        if not _is_number(value) or not -MAX_COMPLETION_WINDOW <= value <= MAX_COMPLETION_WINDOW:
            limit = MAX_COMPLETION_WINDOW
            return f"must be a number of seconds from -{limit} to {limit}, not {value!r}"
    elif name == "completion_window":
        if not _is_number(value) or not 0 < value <= MAX_COMPLETION_WINDOW:
            return f"must be a number of seconds > 0 and at most {MAX_COMPLETION_WINDOW} (30 days), not {value!r}"
    elif name in ("line_failure_rate", "http_error_rate"):
        if not _is_number(value) or not 0 <= value <= 1:
            return f"must be a probability from 0 to 1, not {value!r}"
    elif name == "line_failure_status":
        if not _is_int(value) or not 400 <= value <= 599:
            return f"must be an HTTP error status from 400 to 599, not {value!r}"
    elif name in ("line_failure_pattern", "http_error_paths"):
        return _regex_problem(value)
    elif name == "http_error_kinds":
        if isinstance(value, str):
            value = [kind.strip() for kind in value.split(",") if kind.strip()]
        if not isinstance(value, (list, tuple)) or not value:
            return f"must be a list of {', '.join(HTTP_ERROR_KINDS)}, not {value!r}"
        unknown = [kind for kind in value if kind not in HTTP_ERROR_KINDS]
        if unknown:
            return f"has unknown kind {unknown[0]!r}; choose among {', '.join(HTTP_ERROR_KINDS)}"
    elif name == "enqueued_token_limit":
        if value is not None and (not _is_int(value) or value <= 0):
            return f"must be a whole number of tokens > 0 or null, not {value!r}"
    elif name == "seed":
        if value is not None and not _is_int(value):
            return f"must be a whole number or null, not {value!r}"
    elif name == "upstream":
        if value is not None and (not isinstance(value, str) or not re.match(r"https?://", value)):
            return f"must be an http:// or https:// base URL or null, not {value!r}"
    elif name == "upstream_key_env":
        if value is not None and (not isinstance(value, str) or not value):
            return f"must be the name of an environment variable or null, not {value!r}"
    elif name in (
        "max_requests_per_file",
        "max_file_bytes",
        "max_requests_per_message_batch",
        "max_message_batch_bytes",
    ):
        if not _is_int(value) or value < 1:
            return f"must be a whole number >= 1, not {value!r}"
    elif name in (
        "empty_error_file",
        "no_files_listing",
        "no_batches_listing",
        "no_batch_metadata",
        "upstream_key_over_http",
    ):
        if not isinstance(value, bool):
            return f"must be true or false, not {value!r}"
    elif name == "upstream_concurrency":
        if not _is_int(value) or not 1 <= value <= MAX_UPSTREAM_CONCURRENCY:
            return f"must be a whole number from 1 to {MAX_UPSTREAM_CONCURRENCY}, not {value!r}"
    return None
