"""Who may use the Message Batches routes: the key by x-api-key or Authorization: Bearer (newer SDKs
send the latter), and the anthropic-version header every call must carry."""

from __future__ import annotations

import hmac
from email.message import Message

from .anthropic_objects import AnthropicError


def anthropic_key_error(headers: Message, key: str | None) -> AnthropicError | None:
    """The API's 401 (or its 400 for a missing anthropic-version), or None when the request may come in.

    Without a key any key is accepted, as clients must send one; with a key, only that key.
    """
    token = headers.get("x-api-key", "").strip()
    if not token:
        scheme, _, bearer = headers.get("Authorization", "").partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else ""
    if not token:
        return AnthropicError("authentication_error", "x-api-key header is required")
    if key is not None and not hmac.compare_digest(token.encode(), key.encode()):
        return AnthropicError("authentication_error", "invalid x-api-key")
    if not headers.get("anthropic-version", "").strip():
        return AnthropicError("invalid_request_error", "anthropic-version: header is required")
    return None
