"""The request lines of a run, and the JSONL shard files that hold them."""

from __future__ import annotations

from .request_lines import build_request_body, config_request_body
from .shards import Shard, ShardPlan, remove_shards, write_shards

__all__ = ["Shard", "ShardPlan", "build_request_body", "config_request_body", "remove_shards", "write_shards"]
