"""A run whose state was lost: finding its batches on the API side, and taking the run up again.

Every batch carries, besides its run and shard tags, a hash of what it was made from (the input
table and the request shape) and of the absolute data_path. Before a new run is submitted,
create-batch looks for batches with those tags: when the run state in data_path was deleted or
lost, its batches still run and bill, and a new run would pay for every row again. Found, the
run is refused, or (`--adopt`) rebuilt from the API: its shards are built again (the same input
gives the same shards, checked against each batch's shard hash), each found batch is put back on
its shard, and only the shards with no batch are submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config
from ..errors import LostRunError
from ..layout import STORE_NAME, shard_file_name
from ..next_steps import next_step, option
from ..providers.base import ListingMissing, Provider, ProviderError
from ..requests import ShardPlan
from ..state.batch_state import ANSWERING_STATUSES, BatchState
from ..state.ledger import Ledger, ShardRecord, file_sha256, request_sha256
from ..state.run_store import RunStore
from .planning import CostReport, attempt_dir, new_ledger, plan_attempt

RUN_TAG = "openai_batch_api_run"
# How far back the batches listing is searched: batches older than this have expired, and their
# result files are gone on OpenAI after 30 days by default.
SEARCH_DAYS = 30
# A found run whose first few batches' input files are all deleted was cleaned up by delete-tasks.
DELETED_CHECKS = 3
# Batches that still answer rows, and bill for them: a run holding one is never cleaned up, whatever
# became of its files (delete-tasks --force cancels them; a cancelling batch answers no more rows).
RUNNING_STATUSES = tuple(sorted(ANSWERING_STATUSES))


@dataclass
class EarlierRuns:
    """What the batches listing holds of earlier runs of this input and data_path."""

    searched: bool  # False: the server does not list batches
    runs: dict[str, list[BatchState]] = field(default_factory=dict)  # run id -> its batches, newest run first
    notices: list[str] = field(default_factory=list)
    # Batches with no metadata at all (a server that keeps none), by input file id: upload_search.py.
    untagged: dict[str, list[BatchState]] = field(default_factory=dict)

    @property
    def newest(self) -> tuple[str, list[BatchState]] | None:
        return next(iter(self.runs.items()), None)


def find_earlier_runs(api: Provider, *, tags: dict[str, str]) -> EarlierRuns:
    """Batches of the last SEARCH_DAYS tagged with `tags` (input and data folder), by run, newest run first.

    The days are counted back from the newest batch, by the server's clock: this machine's may differ.
    """
    since: int | None = None
    runs: dict[str, list[BatchState]] = {}
    untagged: dict[str, list[BatchState]] = {}
    if not api.capabilities.tags_kept:
        return EarlierRuns(
            searched=False,
            notices=[
                "the API keeps no batch metadata: whether a run of this input and data_path was already "
                "submitted (and its run state lost) cannot be checked"
            ],
        )
    try:
        for batch in api.list_batches():
            if since is None:
                since = batch.created_at - SEARCH_DAYS * 86400
            if batch.created_at < since:
                break
            meta = batch.metadata or {}
            if meta.get(RUN_TAG) and all(meta.get(k) == v for k, v in tags.items()):
                runs.setdefault(meta[RUN_TAG], []).append(batch)
            elif not meta and batch.input_file_id:
                untagged.setdefault(batch.input_file_id, []).append(batch)
    except ListingMissing as exc:
        return EarlierRuns(
            searched=False,
            notices=[
                f"the server does not list batches ({exc.status}): whether a run of this input and "
                "data_path was already submitted (and its run state lost) cannot be checked"
            ],
        )
    runs = {run: batches for run, batches in runs.items() if not cleaned_up(api, batches)}
    return EarlierRuns(searched=True, runs=runs, untagged=untagged)


def cleaned_up(api: Provider, batches: list[BatchState]) -> bool:
    """Whether delete-tasks removed this run: none of its batches runs, and their input files are deleted."""
    if any(batch.answering for batch in batches):
        return False
    return not any(api.file_exists(batch.input_file_id) for batch in batches[:DELETED_CHECKS])


def refusal(config: Config, earlier: EarlierRuns, *, config_arg: str) -> LostRunError:
    run_id, batches = earlier.newest  # type: ignore[misc]
    examples = ", ".join(b.id for b in batches[:2])
    others = len(earlier.runs) - 1
    more = f"; batches of {others} earlier {'run' if others == 1 else 'runs'} too" if others else ""
    return LostRunError(
        f"{config.data_path}: no run state here ({STORE_NAME}), but the API holds {len(batches)} "
        f"{'batch' if len(batches) == 1 else 'batches'} of run {run_id} made from this input and data_path "
        f"({examples}{', ...' if len(batches) > 2 else ''}{more}), and a new run would pay for every row again; "
        f"take that run up again with {next_step(config, config_arg, 'create-batch', '--adopt')} (only shards "
        "with no batch are submitted), or set another data_path to start a new run"
    )


@dataclass(frozen=True)
class StartedRun:
    """A run just made in data_path: its store, its plan and cost, and what was adopted."""

    store: RunStore
    plan: ShardPlan
    cost: CostReport
    adopted_batches: int  # batches of a lost run put back on their shards (0 for a new run)
    notices: list[str]


def start_run(api: Provider, config: Config, *, input_hash: str, adopt: bool, config_arg: str) -> StartedRun:
    """Begin the run of data_path (which holds none): refuse, or adopt, when the API holds a lost run's batches."""
    draft = Ledger(
        run_id="", created_at=0, input_sha256=input_hash, request_sha256=request_sha256(config), rows=0,
        token_method="",
    )
    earlier = find_earlier_runs(api, tags=draft.origin_tags(data_path=config.data_path))
    if not earlier.searched and adopt and not api.capabilities.tags_kept:
        raise LostRunError(
            f"{config.data_path}: --adopt finds a run's batches by the tags they carry, which this API does not "
            "keep; look for the run's batches on the server and cancel them, or run create-batch without --adopt"
        )
    if not earlier.searched and adopt:
        raise LostRunError(
            f"{config.data_path}: --adopt needs the server's batches listing, which it does not offer; "
            "look for the run's batches on the server and cancel them, or run create-batch without --adopt"
        )
    if earlier.newest is None and earlier.untagged:
        check_uploads(api, config, draft, earlier, adopt=adopt)
    if earlier.newest is not None and not adopt:
        raise refusal(config, earlier, config_arg=config_arg)
    if earlier.newest is None and adopt:
        # Adopting is asked for when a run is believed lost: starting a new one instead would pay again.
        raise LostRunError(
            f"{config.data_path}: nothing found to adopt: no batch of the last {SEARCH_DAYS} days on the API "
            f"was made from {config.input_file} and this data_path; run "
            f"{next_step(config, config_arg, 'create-batch')} without {option(config, '--adopt', 'adopt=True')} "
            "to start a new run"
        )
    plan, cost = plan_attempt(config, out_dir=attempt_dir(config.data_path, 1))
    ledger = new_ledger(config, plan, input_hash=input_hash)
    adopted = 0
    if earlier.newest is not None:
        run_id, batches = earlier.newest
        adopted = adopt_batches(api, config, ledger, run_id=run_id, batches=batches)
    store = RunStore.create(config.data_path, ledger)
    return StartedRun(store, plan, cost, adopted, earlier.notices)


def check_no_lost_run(api: Provider, config: Config, *, input_hash: str, config_arg: str) -> list[str]:
    """Refuse (LostRunError) a run of data_path, which holds none, while the API holds a lost run's batches.

    For a run begun without batches (a pilot): the next create-batch continues it, and would otherwise
    pay again for the lost run's rows. Returns what the search could not check (notices).
    """
    draft = Ledger(
        run_id="", created_at=0, input_sha256=input_hash, request_sha256=request_sha256(config), rows=0,
        token_method="",
    )
    earlier = find_earlier_runs(api, tags=draft.origin_tags(data_path=config.data_path))
    if earlier.newest is None and earlier.untagged:
        check_uploads(api, config, draft, earlier, adopt=False)
    if earlier.newest is not None:
        raise refusal(config, earlier, config_arg=config_arg)
    return earlier.notices


def check_uploads(api: Provider, config: Config, draft: Ledger, earlier: EarlierRuns, *, adopt: bool) -> None:
    """On a server that keeps no batch metadata, refuse when a lost run of this input is found by its uploads.

    Called only with `earlier.untagged`: batches with no metadata, by the input file they were made
    from, which only a provider that uploads has.
    """
    from .upload_search import find_run_by_uploads
    from .upload_search import refusal as uploads_refusal

    try:
        found = find_run_by_uploads(api, tag=draft.upload_tag(data_path=config.data_path), untagged=earlier.untagged)
    except ListingMissing:
        earlier.notices.append(
            "the server keeps no batch metadata and does not list files: whether a run of this input and data_path "
            "was already submitted (and its run state lost) cannot be checked"
        )
        return
    if found is not None:
        raise uploads_refusal(config, found, adopt=adopt)


def adopt_batches(api: Provider, config: Config, ledger: Ledger, *, run_id: str, batches: list[BatchState]) -> int:
    """Make `ledger` run `run_id` again, its shards holding `batches`; return how many batches were adopted.

    The first attempt's shards were just built again; a retry attempt's shard files are the input
    files of its batches, downloaded. Each is checked against the shard hash its batch carries.
    """
    ledger.adopt_run(run_id, created_at=min(b.created_at for b in batches))
    by_shard: dict[str, list[BatchState]] = {}
    for batch in batches:
        by_shard.setdefault((batch.metadata or {}).get("shard", ""), []).append(batch)
    built = {s.key: s for s in ledger.shards}
    for key in sorted(by_shard, key=shard_order):
        found = sorted(by_shard[key], key=lambda b: (submission_of(b), b.created_at))
        shard = built.get(key) or downloaded_shard(api, config, key=key, batch=found[-1])
        if shard.sha256[:32] != (found[-1].metadata or {}).get("shard_sha256"):
            raise LostRunError(
                f"{config.data_path}: batch {found[-1].id} (shard {key} of run {run_id}) was made from other "
                "content than this input gives for that shard now; the run cannot be taken up again safely: "
                "set another data_path to start a new run"
            )
        if key not in built:
            ledger.adopt_shard(shard)
        shard.adopt(found, submission=submission_of(found[-1]))
    ledger.shards.sort(key=lambda s: (s.attempt, s.index))
    if any(s.batch is not None and s.batch.status in ("cancelling", "cancelled") for s in ledger.shards):
        # The lost run was cancelled: its shards with no batch stay unsubmitted, as a cancel leaves them.
        ledger.cancel()
    return len(by_shard)


def shard_order(key: str) -> tuple[int, int]:
    """(attempt, index) of a shard key such as "a2-s0003"; an unknown key sorts first and is refused."""
    attempt, _, index = key.partition("-s")
    try:
        return int(attempt.removeprefix("a")), int(index)
    except ValueError:
        return (0, 0)


def submission_of(batch: BatchState) -> int:
    try:
        return int((batch.metadata or {}).get("submission", "1"))
    except ValueError:
        return 1


def downloaded_shard(api: Provider, config: Config, *, key: str, batch: BatchState) -> ShardRecord:
    """A retry attempt's shard, its file fetched from the batch's input file."""
    attempt, index = shard_order(key)
    if attempt < 2:
        raise LostRunError(
            f"{config.data_path}: batch {batch.id} carries shard tag '{key}', which this input does not make; "
            "the run cannot be taken up again safely: set another data_path to start a new run"
        )
    path = attempt_dir(config.data_path, attempt) / shard_file_name(index)
    try:
        api.download(batch.input_file_id, path)
    except ProviderError as exc:
        if exc.status != 404:
            raise
        raise LostRunError(
            f"{config.data_path}: the input file {batch.input_file_id} of batch {batch.id} (retry shard {key}) is "
            "gone from the server, so which rows it holds is unknown; the run cannot be taken up again safely: "
            "set another data_path to start a new run"
        ) from None
    with open(path, "rb") as fh:
        rows = sum(1 for line in fh if line.strip())
    size = path.stat().st_size
    return ShardRecord(
        key=key,
        attempt=attempt,
        index=index,
        path=path.relative_to(config.data_path).as_posix(),
        rows=rows,
        bytes=size,
        sha256=file_sha256(path),
        prompt_tokens=size // 4,  # a rough count: it only weighs the shard in the enqueued-token queue
    )
