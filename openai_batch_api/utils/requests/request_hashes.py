"""The hash of a request's body: how a run knows a row it already paid for, whatever attempt or pilot sent it.

Two request lines built from the same row content, prompt and model_params have the same body, so
the same hash; an edited row has another. The body is hashed as orjson writes it back from the line,
which is the same bytes for the same body every time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


def body_sha256(body: Any) -> str:
    """The hex sha256 of a request body."""
    return hashlib.sha256(orjson.dumps(body)).hexdigest()


def line_requests(path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(custom_id, body hash, body) of each request line of a shard file, in order."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                request = orjson.loads(line)
                yield request["custom_id"], body_sha256(request["body"]), request["body"]


def shard_hashes(path: Path) -> dict[str, str]:
    """custom_id -> body hash of a shard file's lines."""
    return {custom_id: digest for custom_id, digest, _ in line_requests(path)}
