"""The records of a run: what was built, uploaded and submitted, as typed dataclasses.

They live in the run store (`run_store.py`, an sqlite database in data_path); this module
holds the records themselves, the hashes that tie a run to its inputs, and the reader of
the `ledger.json` files earlier versions wrote, which the store imports once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from openai.types import Batch

from ..config import Config
from ..endpoints import DEFAULT_ENDPOINT
from ..errors import BatchToolError, RunChangedError

# The state file of earlier versions, imported once into the run store.
LEDGER_NAME = "ledger.json"
LEDGER_VERSION = 1

# Shard states, in the order a shard moves through them.
PENDING = "pending"  # built; not uploaded yet
UPLOADING = "uploading"  # an upload was started: the file may or may not exist on the API side
UPLOADED = "uploaded"  # file_id known; no batch yet (also: waiting for enqueued-token room)
CREATING = "creating"  # a batch creation was started: it may or may not exist
SUBMITTED = "submitted"  # batch_id known
CANCELLED = "cancelled"  # cancelled while still queued: never to be submitted

# Batch statuses after which a batch never changes again.
FINISHED_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class ShardRecord:
    """One shard file of one attempt and its life on the API side."""

    key: str  # unique within the run, e.g. "a1-s0003"
    attempt: int
    index: int
    path: str  # relative to data_path
    rows: int
    bytes: int
    sha256: str
    prompt_tokens: int
    state: str = PENDING
    submission: int = 1  # bumped when a token-limit failure sends the shard back to the queue
    file_id: str | None = None
    batch_id: str | None = None
    batch: Batch | None = None  # the last snapshot of the batch seen from the API
    requeued_batch_ids: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The batch's status, or where the shard stands before it has a batch."""
        if self.batch is not None:
            return self.batch.status
        if self.state == CANCELLED:
            return "cancelled"
        return "queued" if self.state in (PENDING, UPLOADED) else self.state

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


@dataclass
class Ledger:
    """The whole state of one run."""

    run_id: str
    created_at: int
    input_sha256: str
    request_sha256: str
    rows: int
    token_method: str
    shards: list[ShardRecord] = field(default_factory=list)
    attempts: int = 1
    collated_at: int | None = None
    cancelled_at: int | None = None  # set by a cancel: nothing more is submitted
    version: int = LEDGER_VERSION

    def upload_name(self, shard: ShardRecord) -> str:
        """The filename a shard is uploaded under: how a re-run finds an upload it lost track of."""
        return f"{self.run_id}-{shard.key}.jsonl"

    def batch_metadata(self, shard: ShardRecord) -> dict[str, str]:
        """The tags a shard's batch carries: how a re-run finds a batch it lost track of."""
        return {
            "openai_batch_api_run": self.run_id,
            "shard": shard.key,
            "submission": str(shard.submission),
            "shard_sha256": shard.sha256[:32],
        }

    def origin_tags(self, *, data_path: Path) -> dict[str, str]:
        """The tags that tie a run's batches to its input and data folder: how a lost run is found again."""
        made_from = hashlib.sha256(f"{self.input_sha256}\n{self.request_sha256}".encode()).hexdigest()
        folder = hashlib.sha256(str(Path(data_path).resolve()).encode()).hexdigest()
        return {"openai_batch_api_input": made_from[:32], "openai_batch_api_data": folder[:32]}

    def shard(self, key: str) -> ShardRecord:
        return next(s for s in self.shards if s.key == key)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        """A run from the `ledger.json` of an earlier version."""
        shard_fields = {f.name for f in fields(ShardRecord)}
        shards = []
        for item in data["shards"]:
            shard = ShardRecord(**{k: v for k, v in item.items() if k in shard_fields})
            if shard.batch is not None:
                shard.batch = batch_from_dict(shard.batch)
            shards.append(shard)
        ledger_fields = {f.name for f in fields(cls)} - {"shards", "version"}
        return cls(shards=shards, **{k: v for k, v in data.items() if k in ledger_fields})


def batch_from_dict(data: dict[str, Any]) -> Batch:
    """A stored batch snapshot as the SDK's model, built as leniently as the SDK reads responses."""
    return Batch.construct(**data)


def batch_from_json(text: str | bytes) -> Batch:
    """A stored batch snapshot; validated (fast), or built leniently when a server sent odd fields."""
    try:
        return Batch.model_validate_json(text)
    except ValueError:  # pydantic's ValidationError
        return batch_from_dict(json.loads(text))


def read_legacy_ledger(path: Path) -> Ledger:
    """The run in an earlier version's `ledger.json`; an error naming the file when it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"it holds a JSON {type(data).__name__ if data is not None else 'null'}, not a run")
        if data.get("version") != LEDGER_VERSION:
            raise BatchToolError(
                f"{path}: written by another version of openai_batch_api (ledger version "
                f"{data.get('version')}); use that version, or a new data_path"
            )
        return Ledger.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BatchToolError(
            f"{path}: the run ledger is damaged ({exc}); restore it from a backup, or move it away "
            "to start a new run (its batches stay on the API side)"
        ) from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def request_sha256(config: Config) -> str:
    """A hash of everything besides the table that shapes the request lines."""
    return hashlib.sha256(json.dumps(request_shape(config), sort_keys=True, default=str).encode()).hexdigest()


def request_shape(config: Config) -> dict[str, Any]:
    """Everything besides the table that shapes the request lines, by config key."""
    shape = {
        "prompt": config.prompt,
        "model_params": config.model_params,
        "id_column": config.id_column,
        "content_column": config.content_column,
        "image_url_column": config.image_url_column,
        "image_detail": config.image_detail,
        "batch_size": config.batch_size,
    }
    # Only when set, so runs begun before these keys existed keep their hash.
    if config.endpoint != DEFAULT_ENDPOINT:
        shape["endpoint"] = config.endpoint
    if config.content_template is not None:
        shape["content_template"] = config.content_template
    if config.examples:
        shape["examples"] = config.examples
    return shape


def new_run_id() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S-") + os.urandom(3).hex()


def check_same_inputs(ledger: Ledger, config: Config, *, input_sha256: str, input_file: Path | None = None) -> None:
    """Refuse to mix a run with a changed table, prompt or model parameters, naming what changed.

    `input_file` is the table hashed, when it is not (yet) the config's input_file.
    """
    table_changed = input_sha256 != ledger.input_sha256
    request_changed = request_sha256(config) != ledger.request_sha256
    if not table_changed and not request_changed:
        return
    from ..next_steps import from_python
    from .run_inputs import recorded_inputs, request_changes, table_changes
    from .run_store import store_path

    recorded = recorded_inputs(store_path(config.data_path))
    changed = []
    if request_changed:
        if recorded is not None:
            changed += request_changes(recorded["request"], request_shape(config))
        changed = changed or ["the endpoint, prompt, examples, columns, batch_size or model_params"]
    if table_changed:
        columns = recorded.get("columns") if recorded is not None else None
        changed += table_changes(config, input_file or config.input_file, old_rows=ledger.rows, old_columns=columns)
    # The two steps by name: their --config is the one just given, which the refusal is about.
    collate, delete = ("Run.collate()", "Run.delete()") if from_python(config) else ("collate-output", "delete-tasks")
    raise RunChangedError(
        f"{config.name}: changed since run {ledger.run_id} was created in {config.data_path}: "
        f"{'; '.join(changed)}. To continue that run, restore what it was made from; to start a new run, "
        f"set another data_path (or {collate} and {delete} the old run first)"
    )
