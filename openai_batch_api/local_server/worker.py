"""The batch lifecycle: validating → in_progress → finalizing → completed (or failed, expired, cancelled).

A few worker threads take batches from a queue round-robin, each time doing one bounded step
(validate, answer a chunk of lines, finish), so many batches progress together and a cancel or an
expiry is noticed within a fraction of a second. Each chunk's answers and counters are committed in
one transaction: after a restart (or a killed process) a batch resumes with the lines not yet saved,
none lost and none answered twice.
"""

from __future__ import annotations

import queue
import sqlite3
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from typing import Any

import orjson

from .api_error import error_body
from .disk_full import disk_full_error, disk_full_file
from .faults import FaultInjector
from .ids import new_id
from .options import ServerOptions
from .request_bodies import body_problem, request_tokens
from .responder import respond, usage_tokens
from .store import DATABASE_NAME, TERMINAL_STATUSES, Store
from .upstream import DaemonPool, UpstreamClient, UpstreamUnreachable, upstream_key
from .validation import BatchRequest, InputReader, ParsedInput

BATCH_WORKERS = 3
# A step answers at most this many lines, or for about this long, before other batches get a turn.
CHUNK_LINES = 1000
CHUNK_SECONDS = 0.25
# (succeeded, result line, input tokens, output tokens)
Answered = tuple[bool, bytes, int, int]
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


@dataclass
class BatchRun:
    """What a worker keeps in memory about a batch in progress."""

    requests: list[BatchRequest]
    # Prompt tokens per request when already counted (at validation), else None.
    tokens: list[int] | None
    # Indexes into `requests` not yet answered, popped from the end.
    pending: list[int]


def _ts() -> int:
    return int(time.time())


def result_line(custom_id: str, status: int, body: dict[str, Any]) -> bytes:
    """One line of an output or error file, as the API writes it."""
    return orjson.dumps(
        {
            "id": new_id("batch_req_"),
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": new_id("req_"), "body": body},
            "error": None,
        }
    )


def error_line(custom_id: str, code: str, message: str) -> bytes:
    """A line of the error file for a request that got no HTTP answer at all."""
    return orjson.dumps(
        {
            "id": new_id("batch_req_"),
            "custom_id": custom_id,
            "response": None,
            "error": {"code": code, "message": message},
        }
    )


class BatchEngine:
    """Runs the batches stored in `store` until `stop()`."""

    def __init__(self, store: Store, options: ServerOptions, faults: FaultInjector) -> None:
        self.store = store
        self.options = options
        self.faults = faults
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._owned: set[str] = set()  # queued or being stepped: never two workers on one batch
        self._lock = threading.Lock()
        self._runs: dict[str, BatchRun] = {}
        self._readers: dict[str, InputReader] = {}  # input files being read, a slice per step
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._upstream = UpstreamClient(options.upstream, key=upstream_key(options)) if options.upstream else None
        self._pool = DaemonPool(options.upstream_concurrency, "local-batch-upstream") if options.upstream else None

    def start(self) -> None:
        for batch_id in self.store.active_batch_ids():
            self.submit(batch_id)
        for number in range(BATCH_WORKERS):
            thread = threading.Thread(target=self._loop, name=f"local-batch-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop at a line boundary; answers given so far are saved."""
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        if self._pool is not None:
            self._pool.shutdown()

    def submit(self, batch_id: str) -> None:
        """Make sure a worker will look at this batch soon."""
        with self._lock:
            if batch_id in self._owned:
                return
            self._owned.add(batch_id)
        self._queue.put(batch_id)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            batch_id = self._queue.get()
            if batch_id is None or self._stopping.is_set():
                return
            try:
                again = self._step(batch_id)
            except sqlite3.ProgrammingError:
                return  # the store was closed under us: the server is stopping
            except Exception as exc:  # a bug must not leave a batch hanging forever
                full = disk_full_file(exc, database=self.store.root / DATABASE_NAME)
                if full is None:
                    traceback.print_exc(file=sys.stderr)
                    reason = f"The local backend failed on this batch: {exc!r}"
                else:
                    reason = disk_full_error(full).message  # no traceback: a full disk is not a bug
                try:
                    self._fail(batch_id, "server_error", reason)
                except sqlite3.ProgrammingError:
                    return
                except (OSError, sqlite3.OperationalError) as again_full:
                    if disk_full_file(again_full, database=self.store.root / DATABASE_NAME) is None:
                        raise
                    # Not even the failure could be saved: the batch stays in progress, taken up again
                    # when the backend next starts with room on its disk.
                again = False
            if again and not self._stopping.is_set():
                self._queue.put(batch_id)
            else:
                with self._lock:
                    self._owned.discard(batch_id)
                if not again:
                    self._runs.pop(batch_id, None)
                    self._readers.pop(batch_id, None)

    def _step(self, batch_id: str) -> bool:
        """One bounded piece of work on a batch; True while it needs more."""
        batch = self.store.get_batch(batch_id)
        if batch is None or batch["status"] in TERMINAL_STATUSES:
            return False
        status = batch["status"]
        if status == "cancelling":
            return not self.store.finish_batch(
                batch_id, status="cancelled", only_if=("cancelling",), cancelled_at=_ts()
            )
        if status in ("validating", "in_progress") and time.time() >= batch["deadline"]:
            return not self._expire(batch)
        if status == "validating":
            return self._validate(batch)
        if status == "in_progress":
            return self._answer_chunk(batch)
        if status == "finalizing":
            return not self.store.finish_batch(
                batch_id,
                status="completed",
                only_if=("finalizing",),
                keep_empty=("error",) if self.options.empty_error_file else (),
                completed_at=_ts(),
            )
        return False

    def _fail(self, batch_id: str, code: str, message: str, line: int | None = None) -> None:
        errors = {"object": "list", "data": [{"code": code, "message": message, "param": None, "line": line}]}
        self.store.update_batch(
            batch_id,
            only_if=("validating", "in_progress", "finalizing", "cancelling"),
            status="failed",
            failed_at=_ts(),
            errors=orjson.dumps(errors).decode(),
        )

    def _read_step(self, batch: sqlite3.Row, *, count_tokens: bool = False) -> ParsedInput | bool:
        """Check the next slice of a batch's input file: its requests once read whole, else True while
        more is to be read, False when the batch failed.

        In slices, so that a batch of a few lines is not kept waiting behind big ones being read.
        """
        batch_id = batch["id"]
        path = self.store.blob_path(batch["input_file_id"])
        try:
            reader = self._readers.get(batch_id)
            if reader is None:
                reader = InputReader(
                    endpoint=batch["endpoint"],
                    size=path.stat().st_size,
                    count_tokens=count_tokens,
                    max_requests=self.options.max_requests_per_file,
                    max_bytes=self.options.max_file_bytes,
                )
                self._readers[batch_id] = reader
            if not reader.done:
                with open(path, "rb") as f:
                    f.seek(reader.offset)
                    reader.read(f, max_lines=CHUNK_LINES, max_seconds=CHUNK_SECONDS)
        except FileNotFoundError:
            self._readers.pop(batch_id, None)
            self._fail(batch_id, "input_file_missing", f"The input file {batch['input_file_id']} is gone.")
            return False
        if not reader.done:
            return True
        del self._readers[batch_id]
        parsed = reader.parsed
        if parsed.errors and batch["status"] != "validating":
            # It passed validation before: the file was changed on disk behind the server's back.
            problem = parsed.errors[0]
            self._fail(batch_id, "input_file_changed", f"The input file changed: {problem['message']}")
            return False
        if parsed.errors:
            self.store.update_batch(
                batch_id,
                only_if=("validating",),
                status="failed",
                failed_at=_ts(),
                errors=orjson.dumps({"object": "list", "data": parsed.errors}).decode(),
            )
            return False
        return parsed

    def _validate(self, batch: sqlite3.Row) -> bool:
        parsed = self._read_step(batch, count_tokens=True)
        if not isinstance(parsed, ParsedInput):
            return parsed
        requests, model, tokens = parsed.requests, parsed.model, parsed.tokens
        if tokens is None:  # read without counting, for an expiry that did not happen after all
            tokens = [request_tokens(batch["endpoint"], request.body) for request in requests]
        limit = self.options.enqueued_token_limit
        admitted = self.store.admit_batch(
            batch["id"],
            limit=limit,
            model=model,
            prompt_tokens=sum(tokens),
            status="in_progress",
            in_progress_at=_ts(),
            total=len(requests),
        )
        if not admitted:
            if self.store.get_batch(batch["id"])["status"] == "validating":
                self._fail(
                    batch["id"],
                    "token_limit_exceeded",
                    f"Enqueued token limit reached for {model} in organization org-local. "
                    f"Limit: {limit:,} enqueued tokens. Please try again once some in_progress batches "
                    "have been completed.",
                )
                return False
            return True  # cancelled meanwhile: the next step finishes it
        pending = list(range(len(requests)))
        self.faults.shuffler(str(batch["seq"])).shuffle(pending)
        self._runs[batch["id"]] = BatchRun(requests, tokens, pending)
        return True

    def _run_of(self, batch: sqlite3.Row) -> BatchRun | bool:
        """The batch's run, rebuilt from disk after a restart: only lines without a saved answer.

        While its input is still being read back, True (come back); False when the batch failed.
        """
        run = self._runs.get(batch["id"])
        if run is not None:
            return run
        parsed = self._read_step(batch)
        if not isinstance(parsed, ParsedInput):
            return parsed
        requests = parsed.requests
        answered = self.store.answered_lines(batch["id"])
        pending = [i for i, request in enumerate(requests) if request.line not in answered]
        self.faults.shuffler(f"{batch['seq']}:{len(answered)}").shuffle(pending)
        run = BatchRun(requests, None, pending)
        self._runs[batch["id"]] = run
        return run

    def _answer(self, endpoint: str, request: BatchRequest, prompt_tokens: int | None) -> Answered:
        """(succeeded, the result line, input tokens, output tokens) of one request line."""
        if self.options.line_latency:
            time.sleep(self.options.line_latency)
        failure = self.faults.line_failure(request.custom_id)
        if failure is not None:
            status, body = failure
        elif self._upstream is not None:
            problem = body_problem(endpoint, request.body)
            if problem is not None:  # the API's own 400: not worth a round trip
                return False, result_line(request.custom_id, 400, problem), 0, 0
            try:
                status, body = self._upstream.post(endpoint, request.body)
            except UpstreamUnreachable as exc:
                return False, error_line(request.custom_id, "upstream_unreachable", str(exc)), 0, 0
        else:
            try:
                status, body = respond(endpoint, request.body, prompt_tokens=prompt_tokens)
            except Exception as exc:  # a bug met on one line must not fail the batch's other lines
                traceback.print_exc(file=sys.stderr)
                status = 500
                body = error_body(f"The local backend failed on this request: {exc!r}", type="server_error")
        ok = 200 <= status < 300
        used_in, used_out = usage_tokens(body) if ok else (0, 0)
        return ok, result_line(request.custom_id, status, body), used_in, used_out

    def answer_now(self, endpoint: str, body: Any) -> tuple[int, dict[str, Any]]:
        """A synchronous request, answered as a batch's line is: after --line-latency, by the upstream when set."""
        if self.options.line_latency:
            time.sleep(self.options.line_latency)
        if self._upstream is None or not isinstance(body, dict):
            return respond(endpoint, body)
        problem = body_problem(endpoint, body)
        if problem is not None:  # the API's own 400: not worth a round trip
            return 400, problem
        try:
            return self._upstream.post(endpoint, body)
        except UpstreamUnreachable as exc:
            return 502, error_body(str(exc), type="server_error")

    def _answer_chunk(self, batch: sqlite3.Row) -> bool:
        run = self._run_of(batch)
        if not isinstance(run, BatchRun):
            return run
        endpoint, deadline = batch["endpoint"], batch["deadline"]
        answered: list[tuple[int, bool, bytes, int, int]] = []
        if self._pool is not None:
            take = run.pending[-self.options.upstream_concurrency * 2 :]
            futures = {self._pool.submit(self._answer, endpoint, run.requests[i], None): i for i in reversed(take)}
            waiting = set(futures)
            # On stop, lines still waiting for the upstream are left unanswered, to be sent again later.
            while waiting and not self._stopping.is_set():
                done, waiting = wait(waiting, timeout=0.1, return_when=FIRST_COMPLETED)
                answered.extend((futures[future], *future.result()) for future in done)
        else:
            started = time.monotonic()
            for index in reversed(run.pending[-CHUNK_LINES:]):
                if self._stopping.is_set() or time.time() >= deadline:
                    break
                tokens = run.tokens[index] if run.tokens is not None else None
                answered.append((index, *self._answer(endpoint, run.requests[index], tokens)))
                if time.monotonic() - started > CHUNK_SECONDS:
                    break
        self.store.record_results(
            batch["id"],
            [(run.requests[i].line, ok, data) for i, ok, data, _, _ in answered],
            input_tokens=sum(a[3] for a in answered),
            output_tokens=sum(a[4] for a in answered),
        )
        if all(run.pending[-1 - n] == a[0] for n, a in enumerate(answered)):
            # The usual case: lines are taken from the end of `pending`, and all of those were answered.
            del run.pending[len(run.pending) - len(answered) :]
        else:
            done = {a[0] for a in answered}
            run.pending = [i for i in run.pending if i not in done]
        if not run.pending:
            self.store.update_batch(batch["id"], only_if=("in_progress",), status="finalizing", finalizing_at=_ts())
        return True

    def _expire(self, batch: sqlite3.Row) -> bool:
        """End a batch whose window passed: answers kept, the rest written as batch_expired."""
        fields: dict[str, Any] = {"expired_at": _ts()}
        if batch["status"] == "validating":
            parsed = self._read_step(batch)
            if not isinstance(parsed, ParsedInput):
                return True  # more to read, or failed: the next step sees which
            run = BatchRun(parsed.requests, None, list(range(len(parsed.requests))))
            fields["total"] = len(parsed.requests)
        else:
            run = self._run_of(batch)
            if not isinstance(run, BatchRun):
                return True
        expired = [error_line(run.requests[i].custom_id, "batch_expired", EXPIRED_MESSAGE) for i in run.pending]
        return self.store.finish_batch(
            batch["id"],
            status="expired",
            only_if=("validating", "in_progress"),
            extra_error_lines=expired,
            **fields,
        )
