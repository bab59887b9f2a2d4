"""Who may use the local backend: holders of its key, and without a key, only this machine."""

from __future__ import annotations

import hmac

from ..utils.addresses import is_loopback  # noqa: F401 - the backend's modules import it from here
from .api_error import MISSING_KEY_MESSAGE, ApiError

# The environment variable the command line takes the key from when --api-key is not given.
KEY_ENV = "OPENAI_BATCH_API_LOCAL_KEY"


def key_error(authorization: str, key: str | None) -> ApiError | None:
    """The API's 401 for a request with this Authorization header, or None when it may come in.

    Without a key any bearer token is accepted, as clients must send one; with a key, only that key.
    """
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return ApiError(401, MISSING_KEY_MESSAGE)
    if key is not None and not hmac.compare_digest(token.encode(), key.encode()):
        return ApiError(401, incorrect_key_message(token), code="invalid_api_key")
    return None


def incorrect_key_message(token: str) -> str:
    """The 401 message for a wrong key, showing only enough of it to tell which key was sent."""
    shown = f"{token[:3]}...{token[-4:]}" if len(token) >= 12 else "***"
    return (
        f"Incorrect API key provided: {shown}. This local backend accepts only the key it was started with "
        f"(--api-key or {KEY_ENV})."
    )


