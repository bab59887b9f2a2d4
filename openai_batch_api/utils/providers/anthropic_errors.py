"""The anthropic SDK's errors in the package's terms: which to retry, and the one line each becomes.

The one module besides `anthropic.py` that knows the SDK: its exceptions stop here, turned into
`ProviderError`s carrying the HTTP status and whether the server was reached. Anthropic's 529
(overloaded_error) is transient like a 5xx.
"""

from __future__ import annotations

import errno
import os
import socket

import anthropic

from .base import ProviderError
from .retries import Failure

UNREACHABLE_ERRNOS = (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH)


def unreachable_reason(exc: BaseException) -> str | None:
    """Why the server could not be reached at all (refused, unknown name, no route), or None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            request = getattr(exc, "request", None)
            return f"the name {request.url.host if request is not None else 'the host'} does not resolve"
        if isinstance(cause, OSError) and cause.errno in UNREACHABLE_ERRNOS:
            return "connection refused" if cause.errno == errno.ECONNREFUSED else os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, anthropic.APIConnectionError | anthropic.RateLimitError | anthropic.InternalServerError):
        return True
    return isinstance(exc, anthropic.APIStatusError) and exc.status_code in (408, 409, 529)


def may_have_happened(exc: BaseException) -> bool:
    """Whether the server may have carried out the request that failed this way."""
    if unreachable_reason(exc) is not None:
        return False  # refused or never resolved: the request never reached a server
    if isinstance(exc, anthropic.APIConnectionError):
        return True
    return isinstance(exc, anthropic.APIStatusError) and exc.status_code >= 500


def classify(exc: BaseException) -> Failure | None:
    """What the retry loop needs to know of a failed SDK call; None for anything else."""
    if not isinstance(exc, anthropic.AnthropicError):
        return None
    request = getattr(exc, "request", None)
    response = getattr(exc, "response", None)
    if isinstance(exc, anthropic.APIStatusError):
        reason = f"the API answered {exc.status_code}"
    elif isinstance(exc, anthropic.APITimeoutError):
        reason = "no answer in time"
    else:
        reason = unreachable_reason(exc) or "the connection failed"
    return Failure(
        transient=is_transient(exc),
        unreachable=unreachable_reason(exc) is not None,
        may_have_happened=may_have_happened(exc),
        reason=reason,
        where=f" ({request.method} {request.url})" if request is not None else "",
        retry_after=response.headers.get("retry-after") if response is not None else None,
    )


def describe_api_error(exc: anthropic.AnthropicError) -> str:
    """One line for an SDK error: HTTP status, the API's message and the request id."""
    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("error") if isinstance(body.get("error"), dict) else {}
        message = detail.get("message") or exc.message
        request_id = f" (request id {exc.request_id})" if exc.request_id else ""
        return f"the API answered {exc.status_code}: {message}{request_id}"
    if isinstance(exc, anthropic.APITimeoutError):
        return f"the API did not answer in time ({exc.request.url}); run the command again to continue"
    if isinstance(exc, anthropic.APIConnectionError):
        return (
            f"cannot reach the API at {exc.request.url}: {unreachable_reason(exc) or exc.__cause__ or exc.message}; "
            "check base_url and the network, then run the command again"
        )
    return str(exc)


def provider_error(exc: anthropic.AnthropicError) -> ProviderError:
    """The package's error for an SDK error."""
    status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else None
    error = ProviderError(
        describe_api_error(exc),
        status=status,
        unreachable=unreachable_reason(exc) is not None,
        connection=isinstance(exc, anthropic.APIConnectionError),
    )
    error.__cause__ = exc
    return error
