"""`Run`: one run of a table through the Batch API, each step a method; the commands stand on it.

A `Run` owns the config, the run's lock, its state in data_path (the run store) and the API.
Every step that changes the run holds the lock for its whole length, submits only after the
steps a crash left half-done are settled (`reconcile`), refuses a changed table or prompt, and
saves each call's intent before making it: a row is never paid for twice, a batch never
forgotten. The methods return dataclasses and print nothing.

    run = Run.from_config("config.yaml")
    run.create()
    run.submit()
    run.wait()
    table = run.collate().table
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .step_results import Cancelled, Collated, Created, Deleted, Piloted, PilotUsage, Retried, RunStatus, Submitted
from .utils.config import (
    REQUIRED_KEYS,
    Config,
    interval_problem,
    load_config,
    validate_config_mapping,
)
from .utils.errors import BatchApiToolError, ConfigError, CostOverLimitError, LostCreationError, RunLockedError
from .utils.layout import DRY_RUN_PREFIX, STORE_NAME, imported_ledger_path, lock_path, store_path, tasks_dir
from .utils.lifecycle.result_files import download_results, recorded_result_files, results_on_disk, run_result_files
from .utils.lifecycle.submission import cancel_batches, reconcile, refresh, run_progress, submit_waiting
from .utils.next_steps import next_step, option
from .utils.state.ledger import Ledger, check_same_inputs, request_shape
from .utils.state.row_requests import PilotAnswer, answer_sources, answer_usage, pilot_answers
from .utils.state.run_inputs import record_inputs
from .utils.state.run_lock import run_lock
from .utils.state.run_store import RunStore, has_run, open_run, require_run, sidecars
from .utils.state.step_traces import StepTraces
from .utils.words import plural

# The modules of the table (pandas, pyarrow, tiktoken) are imported by the steps that read or build
# it: status-jobs on a finished run, which needs none of them, starts in well under a second.

if TYPE_CHECKING:
    from .utils.lifecycle.settling import Settled
    from .utils.lifecycle.waiting import WaitUpdate
    from .utils.providers.base import Provider

# The result files status() reads: enough to say why requests failed.
ERROR_FILES = ("errors",)
# The config path a mapping is reported under: the keys of a mapping have no file to name.
MAPPING_NAME = "<mapping>"


class Run:
    """One run: the config, and data_path's lock, state and the API behind every step.

    Make one with `Run.from_config(path)` or `Run.from_mapping(dict, base_dir=...)`. Errors are
    `BatchApiToolError` subclasses, each with a one-line message saying what to fix.
    """

    def __init__(self, config: Config, *, config_arg: str | None = None, command: str | None = None) -> None:
        self.config = config
        # How messages name the config ("run create-batch --config ... first").
        self.config_arg = config_arg or str(config.path)
        # How a process refused by this one's lock hears of it; by default the step (`Run.submit`).
        self.command = command
        self._lock_holder: str | None = None
        self._hashed: tuple[tuple[int, int, int], str] | None = None
        # The provider session (and local backend) of the `session()` block under way, opened at its first use.
        self._scope: ExitStack | None = None
        self._provider: Provider | None = None
        self._settings_checked = False

    @classmethod
    def from_config(cls, path: str | Path, *, config_arg: str | None = None) -> Run:
        """The run of the YAML config at `path` (relative paths in it are relative to its folder)."""
        return cls(load_config(path), config_arg=config_arg or str(path))

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, Any],
        *,
        base_dir: str | Path = ".",
        source: str = "Run.from_mapping()",
        keywords: Sequence[str] | None = None,
    ) -> Run:
        """The run of a config given as a mapping, checked by the same schema as the YAML.

        Relative paths are relative to `base_dir`; output_file may be left out (collate then
        returns the table without writing it). Messages name `source` (the call the mapping was
        given to) and the methods to call next; `keywords` are that call's own keyword arguments,
        among which a mistyped key is matched too.
        """
        path = Path(base_dir).expanduser().resolve() / MAPPING_NAME
        required = tuple(key for key in REQUIRED_KEYS if key != "output_file")
        return cls(
            validate_config_mapping(dict(mapping), path=path, required=required, source=source, keywords=keywords)
        )

    # The lock, the store and the API

    @contextmanager
    def locked(self, command: str = "Run") -> Iterator[None]:
        """Hold the run's lock across several steps (each step takes it on its own otherwise).

        Raises RunLockedError at once when another process holds it; `command` is how that
        process's message names this one.
        """
        if self._lock_holder is not None:
            yield
            return
        traces = StepTraces(self.config)  # before the lock makes data_path
        try:
            with run_lock(self.config.data_path, command=self.command or command), self.session():
                self._lock_holder = command
                try:
                    yield
                finally:
                    self._lock_holder = None
        finally:
            traces.remove_if_no_run()  # a refused or dry run, or no run found, leaves nothing behind

    @contextmanager
    def session(self) -> Iterator[Run]:
        """Keep one provider session, and with `base_url: local` one local backend, for the steps in the block.

        Opened at the first step that calls the API, closed when the block ends. Outside such a block
        (and `locked`, which holds one) each step opens and closes its own.
        """
        if self._scope is not None:
            yield self
            return
        with ExitStack() as stack:
            self._scope = stack
            try:
                yield self
            finally:
                self._scope = None
                self._provider = None

    def __enter__(self) -> Run:
        self._outer_session = self.session()
        return self._outer_session.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._outer_session.__exit__(*exc)

    @contextmanager
    def _api(self, *, own: bool = False) -> Iterator[Provider]:
        """The provider session of the step: the block's (`session`), or (`own`, or outside one) its own."""
        try:
            if self._provider is not None and not own:
                yield self._provider
                return
            from .utils.providers.sessions import open_api

            if self._scope is not None and not own:
                self._provider = self._scope.enter_context(open_api(self.config))
                yield self._provider
                return
            with open_api(self.config) as provider:
                yield provider
        except LostCreationError as exc:
            raise exc.for_config(self.config_arg) from None  # its way out names the config as given

    def require(self) -> None:
        """Raise an error saying how to start the run when data_path holds none."""
        require_run(self.config, config_arg=self.config_arg)

    def exists(self) -> bool:
        """Whether data_path holds a run."""
        return has_run(self.config.data_path)

    def preload_estimator(self) -> None:
        """Start loading the token encoding `create` estimates with, when data_path holds no run yet.

        It loads in a process of its own (`utils/costs/token_worker.py`) while this one goes on, e.g.
        importing the SDK; `create` starts it itself otherwise.
        """
        from .utils.costs.tokens import preload_estimator

        if not self.exists():
            preload_estimator(self.config.model)

    def check_api_settings(self) -> None:
        """Raise ConfigError when the API cannot be called (no key), before anything is written.

        Checked once per Run: the config does not change under it.
        """
        if self._settings_checked:
            return
        from .utils.providers.sessions import check_api_settings

        check_api_settings(self.config)
        self._settings_checked = True

    def check_inputs(
        self, *, input_hash: str | None = None, input_file: Path | None = None, table_may_change: bool = False
    ) -> None:
        """Raise RunChangedError when the table or the request settings differ from the run's.

        `input_hash` and `input_file`: the table to compare, when it is not (yet) the config's input_file.
        `table_may_change`: only the request settings and the table's columns must be the run's (`create`
        continues a run with a table whose rows changed).
        """
        with open_run(self.config, config_arg=self.config_arg, writable=False) as store:
            check_same_inputs(
                store.ledger,
                self.config,
                input_sha256=input_hash or self._input_hash(),
                input_file=input_file,
                table_may_change=table_may_change,
            )

    # The steps

    def create(self, *, dry_run: bool = False, adopt: bool = False) -> Created:
        """Validate every row and write the shard files; record the run in data_path (nothing is uploaded).

        Data_path holding this run already: nothing is done (a changed table or prompt raises
        RunChangedError). `dry_run=True` builds and checks every request and estimates the
        cost, then removes what it wrote and records nothing.

        Before a new run is recorded, the API's batches are searched for a run of this input and
        data_path whose run state was lost: its batches still run and bill, so a new run is refused
        with LostRunError. `adopt=True` takes that run up again instead: its batches are put back
        on their shards, and `submit` submits only the shards with no batch; with no such run found,
        it raises LostRunError and starts nothing.
        """
        from .utils.costs.tokens import preload_estimator
        from .utils.lifecycle.adoption import start_run
        from .utils.lifecycle.planning import attempt_dir, plan_attempt

        config = self.config
        # A dry run refuses what the real run would refuse before any work (a missing key, bad
        # local_backend options): its "all clear" must hold for the real run.
        self.check_api_settings()  # before any task file or run state is written
        if dry_run or not self.exists():
            preload_estimator(config.model)  # loads while the API is searched and the table read
        if dry_run:
            with self.locked("Run.create"):
                config.data_path.mkdir(parents=True, exist_ok=True)
                scratch = tempfile.mkdtemp(prefix=DRY_RUN_PREFIX, dir=config.data_path)
                try:
                    plan, cost = plan_attempt(config, out_dir=tasks_dir(Path(scratch)))
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
            return Created(
                run_id=None,
                rows=plan.rows,
                shards=len(plan.shards),
                bytes=sum(s.bytes for s in plan.shards),
                new=False,
                dry_run=True,
                cost=cost,
                line_breaks=plan.line_breaks,
                missing_cells=plan.missing_cells,
            )
        with self.locked("Run.create"):
            input_hash = self._input_hash()
            store = RunStore.open(config.data_path, writable=True)
            if store is not None:
                with store:
                    ledger = store.ledger
                    check_same_inputs(ledger, config, input_sha256=input_hash, table_may_change=True)
                    if input_hash != ledger.input_sha256 or not ledger.shards:
                        return self._continue(store, input_hash=input_hash)
                    return Created(
                        run_id=ledger.run_id,
                        rows=ledger.rows,
                        shards=len(ledger.shards),
                        bytes=sum(s.bytes for s in ledger.shards),
                        new=False,
                    )
            with self._api() as api:
                started = start_run(api, config, input_hash=input_hash, adopt=adopt, config_arg=self.config_arg)
            plan = started.plan
            with started.store as store:
                with store.step() as db:  # what the run is made from, so a refusal can say what changed
                    record_inputs(db, config, shape=request_shape(config))
                return Created(
                    run_id=store.ledger.run_id,
                    rows=plan.rows,
                    shards=len(plan.shards),
                    bytes=sum(s.bytes for s in plan.shards),
                    new=True,
                    task_dir=attempt_dir(config.data_path, 1),
                    cost=started.cost,
                    line_breaks=plan.line_breaks,
                    missing_cells=plan.missing_cells,
                    adopted_batches=started.adopted_batches,
                    notices=list(started.notices),
                )

    def _continue(self, store: RunStore, *, input_hash: str) -> Created:
        """The run takes up the table as it is now: its new and edited rows go out as the next attempt."""
        from .utils.lifecycle.continuation import continue_run

        continued = continue_run(self.config, store, input_hash=input_hash)
        ledger = store.ledger
        return Created(
            run_id=ledger.run_id,
            rows=continued.rows,
            shards=continued.shards,
            bytes=sum(s.bytes for s in ledger.shards if s.attempt == continued.attempt),
            new=False,
            task_dir=continued.task_dir,
            cost=continued.cost,
            continued=continued,
        )

    def pilot(self, rows: int, *, sample_seed: int | None = None) -> Piloted:
        """Answer `rows` rows at once through the synchronous endpoint, at full price; submit no batch.

        The rows are the first `rows` of the table, or with `sample_seed` a sample drawn with that seed;
        those whose request the run holds already (an earlier pilot's answer, a batch) are not sent again,
        so a pilot run again after an interruption buys only what it lacked. Every row of the table is
        checked first. Each
        answer is saved in the run (made here when data_path holds none) as it arrives: `create`
        does not send those rows again and `collate` uses their answers. The output tokens the
        answers measure estimate the whole run's cost again; when that estimate passes max_cost,
        CostOverLimitError is raised (its `piloted` holds what the pilot answered).
        """
        from .utils.lifecycle.adoption import check_no_lost_run
        from .utils.lifecycle.continuation import held_requests
        from .utils.lifecycle.pilot import (
            answer_rows,
            check_pilot_cost,
            choose_rows,
            estimate_from_pilot,
            new_pilot_ledger,
            pilot_cost,
            pilot_table,
            table_requests,
        )
        from .utils.state.row_requests import pilot_answers

        config = self.config
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise BatchApiToolError(f"a pilot needs a whole number of rows of at least 1, got {rows!r}")
        self.check_api_settings()
        if config.provider != "openai":  # the pilot's requests go to OpenAI's synchronous endpoints
            raise ConfigError(
                f"{config.name}: provider {config.provider}: a pilot answers rows through OpenAI's synchronous "
                "endpoints, which this provider has not; run create-batch without --pilot"
            )
        with self.locked("Run.pilot"):
            input_hash = self._input_hash()
            store = RunStore.open(config.data_path, writable=True)
            if store is not None:
                with store:
                    check_same_inputs(store.ledger, config, input_sha256=input_hash, table_may_change=True)
            table = table_requests(config)  # every row checked before anything is paid for
            with self._api() as api:
                new_run = store is None
                if new_run:
                    check_no_lost_run(api, config, input_hash=input_hash, config_arg=self.config_arg)
                    ledger = new_pilot_ledger(config, input_hash=input_hash, token_method=table.token_method)
                    store = RunStore.create(config.data_path, ledger)
                else:
                    store = RunStore.open(config.data_path, writable=True)
                with store:
                    chosen, to_send = choose_rows(table.requests, held_requests(store), rows=rows, seed=sample_seed)
                    calls = answer_rows(api, store, config, to_send)
                    answers = pilot_answers(store)
                    run_id = store.ledger.run_id
            order = {r.custom_id: i for i, r in enumerate(chosen)}
            answered = sorted(calls.answered, key=lambda answer: order[answer.custom_id])
            estimate = estimate_from_pilot(config, table, answers)
            piloted = Piloted(
                run_id=run_id,
                new_run=new_run,
                endpoint=config.endpoint,
                model=config.model,
                chosen=len(chosen),
                held=len(chosen) - len(to_send),
                answered=len(answered),
                failures=calls.failures,
                table=pilot_table(config, answered, [r.custom_id for r in chosen]),
                cost=pilot_cost(config, answered),
                estimate=estimate,
            )
        problem = check_pilot_cost(config, estimate)
        if problem is not None:
            error = CostOverLimitError(problem)
            error.piloted = piloted  # type: ignore[attr-defined]
            raise error
        return piloted

    def submit(self) -> Submitted:
        """Upload the waiting shards and create their batches, exactly once each.

        Steps a crash left half-done are settled first: an upload or a batch that reached the
        API is found again and adopted, never made twice. Shards beyond max_enqueued_tokens
        stay queued (`wait` submits them as room frees). A cancelled run submits nothing.
        """
        config = self.config
        self.check_api_settings()
        with self.locked("Run.submit"), self._store(writable=True) as store, self._api() as api:
            ledger = store.ledger
            check_same_inputs(ledger, config, input_sha256=self._input_hash())
            found = reconcile(api, store)
            requeued = refresh(api, store, workers=config.concurrency)
            if ledger.cancelled_at:
                raise BatchApiToolError(
                    f"{config.data_path}: run {ledger.run_id} was cancelled; collate what it has, or submit its "
                    f"unanswered rows again with {next_step(config, self.config_arg, 'create-batch', '--retry')}"
                )
            was_waiting = len(ledger.waiting_shards())
            submitted = submit_waiting(api, store, config)
            return Submitted(
                run_id=ledger.run_id,
                rows=ledger.rows,
                shards=len(ledger.shards),
                batches=sum(1 for s in ledger.shards if s.batch_id),
                submitted=len(submitted),
                was_waiting=was_waiting,
                queued=len(ledger.waiting_shards()),
                requeued=len(requeued),
                found=found,
                notices=list(api.notices),
            )

    def settle(self, settlements: Mapping[str, str | None]) -> Settled:
        """Say what became of batch creations whose answers were lost where the server lists no batches.

        `settlements` maps a shard key to its batch id (the server must hold that batch, made from the
        shard's input file) or to None: no batch was made, and the next `submit` submits the shard
        again (where the server lists batches, that is checked too). Every settlement is checked
        before any is recorded. A step of its own rather than a keyword of `create` or `submit`:
        `wait`, `cancel` and `delete` meet the same unsettled shards, and each can follow it.
        """
        from .utils.lifecycle.settling import settle_shards

        self.require()  # before the lock makes data_path
        with self.locked("Run.settle"), self._store(writable=True) as store, self._api() as api:
            return settle_shards(api, store, settlements)

    def retry(self, *, include_all: bool = False) -> Retried:
        """Add an attempt holding the rows whose last attempt failed retryably or has no result.

        `include_all=True` also takes the rows that failed for other reasons (e.g. 400s). Every
        batch must be finished. The new shards are submitted by the next `submit`.
        """
        from .utils.lifecycle.resubmission import add_retry_attempt

        config = self.config
        with self.locked("Run.retry"):
            if not self.exists():
                raise BatchApiToolError(
                    f"{config.data_path}: no run to retry yet; run "
                    f"{next_step(config, self.config_arg, 'create-batch')} first"
                )
            with self._store(writable=True) as store, self._api() as api:
                ledger = store.ledger
                check_same_inputs(ledger, config, input_sha256=self._input_hash())
                found = reconcile(api, store)
                refresh(api, store, workers=config.concurrency)
                added = add_retry_attempt(api, store, config, include_all=include_all)
                rows, shards, cost = added if added is not None else (0, 0, None)
                return Retried(
                    run_id=ledger.run_id, attempt=ledger.attempts, rows=rows, shards=shards, cost=cost, found=found
                )

    def status(self) -> RunStatus:
        """The run's batches as the API sees them now, and why failed rows failed.

        What it learns is saved when the lock is free; while another process holds it, the
        run is only read.
        """
        self.require()  # before the lock makes data_path
        with ExitStack() as stack:
            try:
                stack.enter_context(self.locked("Run.status"))
                writable = True
            except RunLockedError:
                writable = False
            store = stack.enter_context(self._store(writable=writable))
            if not store.ledger.running_shards() and results_on_disk(
                store.ledger, self.config.data_path, kinds=ERROR_FILES
            ):
                # Finished batches never change: a finished run is read from its store, no API opened.
                return self._status(None, store, since_calls=0)
            api = stack.enter_context(self._api())
            calls = api.calls
            refresh(api, store, workers=self.config.concurrency)
            return self._status(api, store, since_calls=calls)

    def wait(
        self, *, interval: float | None = None, on_update: Callable[[WaitUpdate], None] | None = None
    ) -> RunStatus:
        """Poll until every batch is finished, submitting queued shards as room frees.

        Rows that failed retryably are sent again up to max_retries times. `on_update` is called
        after each poll with a `WaitUpdate` (progress, statuses, time left). Interrupting the
        wait loses nothing: the next `wait` or `submit` picks up where it stopped.
        """
        from .utils.lifecycle.waiting import wait_for_run

        self.require()  # before the lock makes data_path
        config = self.config
        problem = interval_problem(interval) if interval is not None else None
        if problem:
            raise BatchApiToolError(f"interval {problem}")
        with self.locked("Run.wait"), self._store(writable=True) as store, self._api() as api:
            calls = api.calls
            wait_for_run(
                api,
                store,
                config,
                interval=interval or config.poll_interval,
                on_update=on_update or (lambda update: None),
            )
            return self._status(api, store, since_calls=calls)

    def cancel(self, *, confirm: Callable[[Cancelled], bool] | None = None) -> Cancelled:
        """Cancel the run's unfinished batches and its queued shards; finished rows are kept.

        `confirm` is asked first with what would be cancelled (`cancelled=False`); returning
        False cancels nothing.
        """
        self.require()  # before the lock makes data_path
        with self.locked("Run.cancel"), self._store(writable=True) as store, self._api() as api:
            ledger = store.ledger
            reconcile(api, store)  # a batch an interrupted create-batch made is cancelled too
            refresh(api, store, workers=self.config.concurrency)  # batches finished since the last look
            running = ledger.running_shards()
            queued = ledger.waiting_shards()
            plan = Cancelled(run_id=ledger.run_id, running=len(running), queued=len(queued), cancelled=False)
            if not running and not queued or (confirm is not None and not confirm(plan)):
                return plan
            # Recorded first: a crash halfway leaves a cancelled run that submits nothing more.
            store.cancel()
            cancel_batches(api, store, running)
            return Cancelled(run_id=ledger.run_id, running=len(running), queued=len(queued), cancelled=True)

    def collate(self, *, table: bool = True) -> Collated:
        """Download the finished batches' results and join them onto the input rows, in input order.

        Returns the table with the answer columns (`api_status`, `api_output`, ...), and writes it
        to output_file when the config names one. A run still going is collated as far as it goes
        (its rows `pending`). `table=False` writes output_file a shard at a time and returns no
        table (`Collated.table` is None), so the rows need never fit in memory at once.
        """
        from .utils.lifecycle.collation import check_output_format, collate_results, collate_to_file

        config = self.config
        check_output_format(config)
        if not table and config.output_file is None:
            raise BatchApiToolError(
                f"{config.path}: collate(table=False) writes the table to output_file, and the config names none; "
                "set output_file, or call collate() for the table"
            )
        with self.locked("Run.collate"), self._store(writable=True) as store:
            ledger = store.ledger
            check_same_inputs(ledger, config, input_sha256=self._input_hash())
            with self._api() as api:
                refresh(api, store, workers=config.concurrency)
                files = run_result_files(api, store, workers=config.concurrency)
            answered = answer_sources(store)
            answers = pilot_answers(store)
            if config.output_file is not None:
                collation = collate_to_file(
                    config, ledger, files, path=config.output_file, keep_table=table, **answered
                )
            else:
                collation = collate_results(config, ledger, files, **answered)
            counts = collation.status_counts()
            if not counts.get("pending"):
                store.mark_collated()
        summary = collation.summary
        # The table's rows the pilot answered: their usage is the pilot's, billed apart at full price.
        in_table = [answer_usage(a) for a in answers if a.custom_id in answered["pilot_ids"]]
        return Collated(
            table=collation.table,
            output_file=config.output_file,
            status_counts=counts,
            failures=collation.failures,
            retryable_rows=summary.retryable_rows,
            ledger=ledger,
            rows=summary.rows,
            json_errors=summary.json_errors,
            finish_reasons=dict(summary.finish_reasons),
            refusals=summary.refusals,
            input_tokens=summary.input_tokens - sum(u[0] for u in in_table),
            output_tokens=summary.output_tokens - sum(u[1] for u in in_table),
            pilot=self._pilot_usage(answers),
        )

    def delete(
        self,
        *,
        force: bool = False,
        keep_remote: bool = False,
        confirm: Callable[[Deleted], bool] | None = None,
    ) -> Deleted:
        """Delete the files the run recorded in data_path, its state, and its files on the API side.

        Other files in data_path stay. Refused while batches run or before the results are
        collated, unless `force`: then the run's unfinished batches are cancelled first, since once
        its state is gone nothing would stop them billing, and a new run would pay for their rows
        again. `keep_remote` keeps the files on the API side. `confirm` is asked first with what
        would be deleted (`deleted=False`); returning False deletes nothing.
        """
        from .utils.lifecycle.deletion import delete_local_files, delete_remote_files, remote_file_ids

        config = self.config
        if not self.exists():
            return Deleted(run_id=None)
        with self.locked("Run.delete"):
            with self._store(writable=True) as store:
                ledger = store.ledger
                # A session of its own: a local backend stops before its state is removed below.
                with self._api(own=True) as api:
                    reconcile(api, store)  # a batch an interrupted create-batch made is cancelled too
                    refresh(api, store, workers=config.concurrency)
                    self._check_deletable(ledger, force=force)
                    running = [s for s in ledger.running_shards() if s.status != "cancelling"]
                    remote = 0 if keep_remote else len(remote_file_ids(ledger))
                    plan = Deleted(run_id=ledger.run_id, remote_files=remote, cancelled_batches=len(running))
                    if confirm is not None and not confirm(plan):
                        return plan
                    cancel_batches(api, store, running)
                    deleted_remote = 0 if keep_remote else delete_remote_files(api, store, workers=config.concurrency)
                local_files = delete_local_files(store, workers=config.concurrency)
            if config.is_local:
                from .utils.providers.local import remove_local_backend_state

                remove_local_backend_state(config)
            # The run's state goes last: a crash before this line leaves a run delete can finish.
            database = store_path(config.data_path)
            backup = imported_ledger_path(config.data_path)
            for path in (backup, *sidecars(database), database):
                path.unlink(missing_ok=True)
        lock_path(config.data_path).unlink(missing_ok=True)
        try:
            config.data_path.rmdir()
        except OSError:
            pass  # the user keeps other files there
        return Deleted(
            run_id=ledger.run_id,
            local_files=local_files,
            remote_files=deleted_remote,
            deleted=True,
            cancelled_batches=len(running),
        )

    # Pieces of the steps

    def _store(self, *, writable: bool) -> RunStore:
        return open_run(self.config, config_arg=self.config_arg, writable=writable)

    def _input_hash(self) -> str:
        """The input table's digest; hashed again only when the file changed (a large table takes a while)."""
        from .utils.lifecycle.planning import input_sha256

        path = self.config.input_file
        if not isinstance(path, Path) or not path.is_file():
            # A URL (its digest is a request per object, not a read), a dataset, or a missing file: the
            # digest raises the error naming it.
            return input_sha256(self.config)
        try:
            stat = path.stat()
        except OSError:
            return input_sha256(self.config)  # raises the error naming the missing file
        key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if self._hashed is None or self._hashed[0] != key:
            self._hashed = (key, input_sha256(self.config))
        return self._hashed[1]

    def _status(self, api: Provider | None, store: RunStore, *, since_calls: int) -> RunStatus:
        ledger = store.ledger
        # Why requests failed, from the error files of the finished batches (each downloaded once).
        if api is None:  # every one is on disk
            error_files = recorded_result_files(store, kinds=ERROR_FILES)
        else:
            error_files = download_results(api, store, workers=self.config.concurrency, kinds=ERROR_FILES)
        failures = []
        if error_files:
            from .utils.answers.failures import latest_failure_groups

            failures = latest_failure_groups(ledger, self.config.data_path)
        batches = [s.batch for s in ledger.shards if s.batch is not None]
        return RunStatus(
            ledger=ledger,
            progress=run_progress(ledger),
            failures=failures,
            input_tokens=sum(b.input_tokens for b in batches),
            output_tokens=sum(b.output_tokens for b in batches),
            api_calls=api.calls - since_calls if api is not None else 0,
            pilot=self._pilot_usage(pilot_answers(store)),
        )

    def _pilot_usage(self, answers: list[PilotAnswer]) -> PilotUsage | None:
        """What the pilot's answers used, and cost at the full price they were bought at."""
        from .utils.costs.pricing import estimate_cost

        if not answers:
            return None
        used = [answer_usage(answer) for answer in answers]
        input_tokens, output_tokens = sum(u[0] for u in used), sum(u[1] for u in used)
        cost = estimate_cost(
            model=self.config.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            overrides=self.config.prices,
            batch=False,
        )
        return PilotUsage(rows=len(answers), input_tokens=input_tokens, output_tokens=output_tokens, cost=cost)

    def _check_deletable(self, ledger: Ledger, *, force: bool) -> None:
        if force:
            return
        config, config_arg = self.config, self.config_arg
        force_option = option(config, "--force", "force=True")
        running = ledger.running_shards()
        if running:
            raise BatchApiToolError(
                f"{config.data_path}: {plural(len(running), 'batch', 'batches')} of run {ledger.run_id} still "
                f"running; wait for them ({next_step(config, config_arg, 'status-jobs', '--wait')}), cancel them "
                f"({next_step(config, config_arg, 'status-jobs', '--cancel')}), or pass {force_option} to cancel "
                "them and delete the run"
            )
        if ledger.collated_at is None:
            raise BatchApiToolError(
                f"{config.data_path}: the results of run {ledger.run_id} are not collated yet; run "
                f"{next_step(config, config_arg, 'collate-output')} first, or pass {force_option}"
            )


__all__ = [
    "STORE_NAME",
    "Cancelled",
    "Collated",
    "Created",
    "Deleted",
    "Piloted",
    "Retried",
    "Run",
    "RunStatus",
    "Submitted",
]
