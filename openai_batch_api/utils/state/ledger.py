"""The records of a run: what was built, uploaded and submitted, as typed dataclasses.

A record changes only through its transition methods (`ShardRecord.requeue`, `Ledger.cancel_queued`,
...): every step moves a shard the same way, and no module outside the state assigns a status.
They live in the run store (`run_store.py`, an sqlite database in data_path), which persists them;
this module also holds the hashes that tie a run to its inputs, and the reader of the `ledger.json`
files earlier versions wrote, which the store imports once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import Config
from ..endpoints import DEFAULT_ENDPOINT
from ..errors import BatchToolError, RunChangedError
from .batch_state import BatchState, batch_state_from_openai

LEDGER_VERSION = 1

# Shard states, in the order a shard moves through them.
PENDING = "pending"  # built; not uploaded yet
UPLOADING = "uploading"  # an upload was started: the file may or may not exist on the API side
UPLOADED = "uploaded"  # file_id known; no batch yet (also: waiting for enqueued-token room)
CREATING = "creating"  # a batch creation was started: it may or may not exist
SUBMITTED = "submitted"  # batch_id known
CANCELLED = "cancelled"  # cancelled while still queued: never to be submitted

# The intents recorded before a call that changes the API side, and the state each puts a shard in.
INTENT_STATES = {"upload": UPLOADING, "create": CREATING}


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
    batch: BatchState | None = None  # the last snapshot of the batch seen from the API
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
        return self.batch.finished if self.batch is not None else self.state == CANCELLED

    @property
    def is_running(self) -> bool:
        """A batch was made and has not finished (cancelling counts: it may still answer a few rows)."""
        return self.state == SUBMITTED and not self.finished

    @property
    def is_waiting(self) -> bool:
        """Queued to be submitted: built, or uploaded, with no batch yet."""
        return self.state in (PENDING, UPLOADED)

    @property
    def needs_upload(self) -> bool:
        """Queued with no file on the API side yet."""
        return self.state == PENDING

    def needs(self, step: str) -> bool:
        """Whether this shard's submission still has `step` ("upload", "create") to make: it waits, and an
        upload is made once."""
        return self.needs_upload if step == "upload" else self.is_waiting

    @property
    def in_doubt(self) -> bool:
        """Caught between an upload or a creation and its answer: what `reconcile` settles."""
        return self.open_intent is not None

    @property
    def open_intent(self) -> str | None:
        """The call begun and not settled ("upload" or "create"), if any."""
        return next((kind for kind, state in INTENT_STATES.items() if state == self.state), None)

    @property
    def holds_enqueued_tokens(self) -> bool:
        """Its prompt tokens count against max_enqueued_tokens: a batch is being made or still runs."""
        return self.state in (CREATING, SUBMITTED) and not self.finished

    # Transitions

    def begin(self, kind: str) -> None:
        """An upload or a creation (`kind`) is about to be made: until settled, it may or may not exist."""
        self.state = INTENT_STATES[kind]

    def uploaded(self, file_id: str | None) -> None:
        """The upload's answer: its file, or None when it was lost and never made (uploaded again later)."""
        self.file_id, self.state = (file_id, UPLOADED) if file_id else (None, PENDING)

    def submitted(self, batch: BatchState | None) -> None:
        """The creation's answer: its batch, or None when none was made (the shard waits for another)."""
        if batch is None:
            self.state = UPLOADED
            return
        self.batch_id, self.batch, self.state = batch.id, batch, SUBMITTED

    def observe(self, batch: BatchState) -> bool:
        """The batch as the API now shows it; True when that sent the shard back to the queue."""
        self.batch = batch
        if batch.failed_for_token_limit:
            self.requeue(batch.id)
            return True
        return False

    def batch_cancelled(self, batch: BatchState) -> None:
        """The batch as its cancel left it: the run is being cancelled, so nothing goes back to the queue."""
        self.batch = batch

    def requeue(self, batch_id: str) -> None:
        """Back to the queue after `batch_id` was refused for the token limit: submitted again later,
        under a new submission number, and never mistaken for that batch."""
        self.requeued_batch_ids.append(batch_id)
        self.batch_id, self.batch, self.state = None, None, UPLOADED
        self.submission += 1

    def adopt(self, batches: list[BatchState], *, submission: int) -> None:
        """Take up the batches of a lost run made for this shard (oldest first): the latest is its batch,
        the earlier ones were requeued; a latest one refused for the token limit sends it back to the queue."""
        latest = batches[-1]
        self.requeued_batch_ids = [b.id for b in batches[:-1]]
        self.submission = submission
        self.file_id = latest.input_file_id
        self.submitted(latest)
        if latest.failed_for_token_limit:  # the queue was full: as a poll does, back to the queue
            self.requeue(latest.id)

    def cancel_queued(self) -> bool:
        """Never to be submitted (the run was cancelled); False when the shard is not queued."""
        if not self.is_waiting:
            return False
        self.state = CANCELLED
        return True


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
    # Read from the run's per-row records (row_requests.py), not the run table: rows the pilot answered
    # that the table still asks, and requests in shards that the table no longer asks (edited, removed).
    pilot_rows: int = 0
    stale_rows: int = 0

    def upload_name(self, shard: ShardRecord, *, data_path: Path, tag: str | None = None) -> str:
        """The filename a shard is uploaded under: how a re-run finds an upload it lost track of.

        It carries the run, the shard and `upload_tag` (`tag`, when worked out already): on a server
        that keeps no batch metadata, the uploads are what tie a lost run to its input and data folder
        (lifecycle/upload_search.py).
        """
        return f"{self.run_id}-{shard.key}-{tag or self.upload_tag(data_path=data_path)}.jsonl"

    def upload_tag(self, *, data_path: Path) -> str:
        """A short digest of `origin_tags`: the input, the request shape and the data folder."""
        tags = self.origin_tags(data_path=data_path)
        return hashlib.sha256("\n".join(tags.values()).encode()).hexdigest()[:16]

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

    # Views

    def running_shards(self) -> list[ShardRecord]:
        return [s for s in self.shards if s.is_running]

    def waiting_shards(self) -> list[ShardRecord]:
        return [s for s in self.shards if s.is_waiting]

    def in_doubt_shards(self) -> list[ShardRecord]:
        return [s for s in self.shards if s.in_doubt]

    def enqueued_tokens(self) -> int:
        """Prompt tokens of the batches the API is still holding for this run."""
        return sum(s.prompt_tokens for s in self.shards if s.holds_enqueued_tokens)

    # Transitions

    def cancel(self, now: int | None = None) -> list[ShardRecord]:
        """Cancelled: nothing more is submitted; the queued shards are cancelled, and returned."""
        self.cancelled_at = int(time.time()) if now is None else now
        return self.cancel_queued()

    def cancel_queued(self) -> list[ShardRecord]:
        """Cancel the queued shards (a cancelled run's), returning them."""
        return [s for s in self.shards if s.cancel_queued()]

    def mark_collated(self, now: int | None = None) -> None:
        self.collated_at = int(time.time()) if now is None else now

    def add_attempt(self, attempt: int, shards: list[ShardRecord]) -> None:
        """A retry attempt: its shards join the run, which is collated and running again."""
        self.shards.extend(shards)
        self.attempts = attempt
        self.collated_at = None
        self.cancelled_at = None  # asking for a retry takes a cancelled run up again

    def take_up_table(
        self,
        *,
        input_sha256: str,
        rows: int,
        attempt: int | None,
        shards: list[ShardRecord],
        pilot_rows: int,
        stale_rows: int,
    ) -> None:
        """The run continues with a changed table (its new hash and row count), to be collated again; with
        `attempt`, the shards sending its new and edited rows join it."""
        self.input_sha256 = input_sha256
        self.rows = rows
        self.pilot_rows = pilot_rows
        self.stale_rows = stale_rows
        self.collated_at = None
        if attempt is not None:
            self.shards.extend(shards)
            self.attempts = attempt

    def pilot_answered(self) -> None:
        """One more row answered by the pilot."""
        self.pilot_rows += 1

    def adopt_run(self, run_id: str, *, created_at: int) -> None:
        """Become run `run_id` again, found on the API after its state was lost."""
        self.run_id = run_id
        self.created_at = created_at

    def adopt_shard(self, shard: ShardRecord) -> None:
        """A retry attempt's shard of a lost run, rebuilt from its batch's input file."""
        self.shards.append(shard)
        self.attempts = max(self.attempts, shard.attempt)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        """A run from the `ledger.json` of an earlier version."""
        shard_fields = {f.name for f in fields(ShardRecord)}
        shards = []
        for item in data["shards"]:
            shard = ShardRecord(**{k: v for k, v in item.items() if k in shard_fields})
            if shard.batch is not None:  # OpenAI's batch object, as earlier versions kept it
                shard.batch = batch_state_from_openai(shard.batch)
            shards.append(shard)
        ledger_fields = {f.name for f in fields(cls)} - {"shards", "version"}
        return cls(shards=shards, **{k: v for k, v in data.items() if k in ledger_fields})


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


def check_same_inputs(
    ledger: Ledger,
    config: Config,
    *,
    input_sha256: str,
    input_file: Path | None = None,
    table_may_change: bool = False,
) -> None:
    """Refuse to mix a run with a changed table, prompt or model parameters, naming what changed.

    `input_file` is the table hashed, when it is not (yet) the config's input_file. `table_may_change`:
    the step takes up a table whose rows changed (create continues the run with it), so only a change
    of what shapes every request, or of the table's columns, is refused.
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
    table = []
    if table_changed:
        columns = recorded.get("columns") if recorded is not None else None
        table = table_changes(config, input_file or config.input_file, old_rows=ledger.rows, old_columns=columns)
    columns_changed = any(change.startswith("columns of ") for change in table)
    if not request_changed and not columns_changed:
        if table_may_change:
            return
        # Only its rows changed: create-batch continues the run with them.
        name = getattr(config.input_file, "name", str(config.input_file))
        raise RunChangedError(
            f"{config.name}: the input table {name} changed since run {ledger.run_id} took it up in "
            f"{config.data_path}: {'; '.join(table)}; run create-batch to continue the run with the table as it "
            "is now (only its new and edited rows are sent), or restore the table"
        )
    # A step that takes up the rows' changes names only what it refuses.
    changed += [change for change in table if not table_may_change or change.startswith("columns of ")]
    # The two steps by name: their --config is the one just given, which the refusal is about.
    collate, delete = ("Run.collate()", "Run.delete()") if from_python(config) else ("collate-output", "delete-tasks")
    raise RunChangedError(
        f"{config.name}: changed since run {ledger.run_id} was created in {config.data_path}: "
        f"{'; '.join(changed)}. To continue that run, restore what it was made from; to start a new run, "
        f"set another data_path (or {collate} and {delete} the old run first)"
    )
