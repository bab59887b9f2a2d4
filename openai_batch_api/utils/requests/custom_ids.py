"""Custom ids for a provider that takes only `^[a-zA-Z0-9_-]{1,64}$`, unique in a batch (Anthropic).

Row ids are anything (spaces, unicode, slashes, 200 characters, "7" beside "07"), so a row's custom id
is not its id but its place: `<run tag>-<shard>-<line>`, the shard's number and the row's line in the
shard's request file, which lists the row ids in the same order. The way back is that file's ids.

The run tag is what lets a run recognise its own batch on a server that keeps no tags: a batch whose
results carry `<run tag>-<shard>-...` custom ids was made from that shard of that run, and no other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The API's rule for a custom id.
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# A run tag: letters and digits only, so the '-' between the parts is never inside one.
RUN_TAG = re.compile(r"[a-zA-Z0-9]{1,20}")
RUN_TAG_LENGTH = 12


def run_tag(run_id: str) -> str:
    """The tag of a run in its custom ids: 12 hex digits of its id's hash (ids of any form fit in 64)."""
    return hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:RUN_TAG_LENGTH]


def creation_tag(tags: Mapping[str, str]) -> str:
    """The tag of one creation of a shard: of the tags a provider with metadata would carry (run, shard,
    submission), so a shard submitted again (requeued, or retried) is told apart from its earlier batch."""
    return run_tag("\n".join(f"{key}={value}" for key, value in sorted(tags.items())))


@dataclass(frozen=True)
class Place:
    """Where a custom id says a request came from."""

    tag: str
    shard: int
    line: int  # 0-based line of the shard's request file


def custom_id(tag: str, shard: int, line: int) -> str:
    """The custom id of the request on `line` (0-based) of shard `shard` of the run tagged `tag`."""
    if not RUN_TAG.fullmatch(tag):
        raise ValueError(f"run tag {tag!r} must be 1 to 20 letters or digits")
    if shard < 0 or line < 0:
        raise ValueError("shard and line are counted from 0")
    return f"{tag}-{shard}-{line}"


def parse_custom_id(text: str) -> Place | None:
    """The place a custom id of ours names, or None when it is not one (another tool's request)."""
    if not isinstance(text, str) or not CUSTOM_ID.fullmatch(text):
        return None
    parts = text.split("-")
    if len(parts) != 3 or not RUN_TAG.fullmatch(parts[0]):
        return None
    shard, line = parts[1], parts[2]
    # Digits only, without leading zeros: one place has one custom id, so "07" is nobody's.
    for number in (shard, line):
        if not number.isdigit() or not number.isascii() or (len(number) > 1 and number[0] == "0"):
            return None
    return Place(tag=parts[0], shard=int(shard), line=int(line))


class CustomIdMap:
    """The custom ids of one shard and the way back to its row ids, verbatim."""

    def __init__(self, tag: str, shard: int, row_ids: Sequence[str]):
        self.tag = tag
        self.shard = shard
        self.row_ids = row_ids

    def custom_id(self, line: int) -> str:
        return custom_id(self.tag, self.shard, line)

    def row_id(self, text: str) -> str | None:
        """The row id a custom id of this shard stands for; None when it names another run, shard or line."""
        place = parse_custom_id(text)
        if place is None or place.tag != self.tag or place.shard != self.shard:
            return None
        if place.line >= len(self.row_ids):
            return None
        return self.row_ids[place.line]
