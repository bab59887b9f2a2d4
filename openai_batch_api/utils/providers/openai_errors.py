"""The OpenAI SDK's errors in the package's terms: which to retry, and the one line each becomes.

The one module besides `openai.py` that knows the SDK: its exceptions stop here, turned into
`ProviderError`s carrying the HTTP status and whether the server was reached.
"""

from __future__ import annotations

import errno
import os
import socket

import openai

from .base import ListingMissing, ProviderError
from .retries import Failure, RetryPolicy, backoff_delay

UNREACHABLE_ERRNOS = (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH)
# How servers without a listing endpoint answer it.
NO_LISTING_STATUSES = (404, 405, 501)


# 507 Insufficient Storage: the server's disk is full (the local backend says so), which seconds of
# waiting will not change; the request is not retried, so the user hears of it at once.
INSUFFICIENT_STORAGE = 507


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError) and exc.status_code == INSUFFICIENT_STORAGE:
        return False
    return isinstance(exc, (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError))


def unreachable_reason(exc: BaseException) -> str | None:
    """Why the server could not be reached at all (refused, unknown name, no route), or None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            request = getattr(exc, "request", None)
            host = request.url.host if request is not None else "the host"
            return f"the name {host} does not resolve"
        if isinstance(cause, OSError) and cause.errno in UNREACHABLE_ERRNOS:
            return "connection refused" if cause.errno == errno.ECONNREFUSED else os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return None


def retry_reason(exc: BaseException) -> str:
    """A few words on a failure about to be retried."""
    if isinstance(exc, openai.APIStatusError):
        return f"the API answered {exc.status_code}"
    if isinstance(exc, openai.APITimeoutError):
        return "no answer in time"
    return unreachable_reason(exc) or "the connection failed"


def may_have_happened(exc: BaseException) -> bool:
    """Whether the server may have carried out the request that failed this way."""
    if unreachable_reason(exc) is not None:
        return False  # refused or never resolved: the request never reached a server
    return isinstance(exc, (openai.APIConnectionError, openai.InternalServerError))


def retry_after(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    return response.headers.get("retry-after") if response is not None else None


def retry_delay(exc: BaseException, attempt: int, policy: RetryPolicy) -> float:
    """Seconds before retrying after `exc`: its Retry-After, else the policy's backoff."""
    return backoff_delay(retry_after(exc), attempt, policy)


def classify(exc: BaseException) -> Failure | None:
    """What the retry loop needs to know of a failed SDK call; None for anything else."""
    if not isinstance(exc, openai.OpenAIError):
        return None
    request = getattr(exc, "request", None)
    return Failure(
        transient=is_transient(exc),
        unreachable=unreachable_reason(exc) is not None,
        may_have_happened=may_have_happened(exc),
        reason=retry_reason(exc),
        where=f" ({request.method} {request.url})" if request is not None else "",
        retry_after=retry_after(exc),
    )


def missing_v1_hint(url) -> str:
    """For a 404 on the files or batches collection: the base_url with its /v1, when it lacks one."""
    path = url.path
    for collection in ("/files", "/batches"):
        if collection in path:
            prefix = path[: path.index(collection)].rstrip("/")
            break
    else:
        return ""
    if prefix.endswith("/v1"):
        return ""
    port = f":{url.port}" if url.port else ""
    return f"; base_url may be missing its /v1: try base_url: {url.scheme}://{url.host}{port}{prefix}/v1"


def describe_api_error(exc: openai.OpenAIError) -> str:
    """One line for an SDK error: HTTP status, the API's message and the request id."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") or exc.message
        request_id = f" (request id {exc.request_id})" if exc.request_id else ""
        hint = missing_v1_hint(exc.request.url) if exc.status_code == 404 else ""
        return f"the API answered {exc.status_code}: {message}{request_id}{hint}"
    if isinstance(exc, openai.APITimeoutError):
        return f"the API did not answer in time ({exc.request.url}); run the command again to continue"
    if isinstance(exc, openai.APIConnectionError):
        return (
            f"cannot reach the API at {exc.request.url}: {unreachable_reason(exc) or exc.__cause__ or exc.message}; "
            "check base_url and the network, then run the command again"
        )
    return str(exc)


def provider_error(exc: openai.OpenAIError, *, listing: bool = False) -> ProviderError:
    """The package's error for an SDK error; a listing the server does not offer is ListingMissing."""
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    kind = ListingMissing if listing and status in NO_LISTING_STATUSES else ProviderError
    error = kind(
        describe_api_error(exc),
        status=status,
        unreachable=unreachable_reason(exc) is not None,
        connection=isinstance(exc, openai.APIConnectionError),
    )
    error.__cause__ = exc
    return error
