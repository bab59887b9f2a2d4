"""Message batches at work: in_progress → ended (or canceling → ended, or expired on their deadline).

One worker thread takes batches from a queue round-robin, each time doing one bounded step (answer
a slice of requests, or end the batch), so a cancel or an expiry is noticed within a fraction of a
second. Each slice's results and counters are committed in one transaction: after a restart a batch
resumes with the requests not yet saved, none lost and none answered twice.
"""

from __future__ import annotations

import queue
import sqlite3
import sys
import threading
import time
import traceback
from dataclasses import dataclass

import orjson

from .anthropic_messages import message_answer, params_problem
from .anthropic_objects import ended_line, errored_line, succeeded_line
from .anthropic_store import MessageBatchStore
from .anthropic_upstream import CHAT, chat_body, message_from_chat
from .faults import FaultInjector
from .options import ServerOptions
from .upstream import UpstreamClient, UpstreamUnreachable, upstream_key

# A step answers at most this many requests, or for about this long, before other batches get a turn.
CHUNK_REQUESTS = 1000
CHUNK_SECONDS = 0.25
# The error type an injected line failure of each HTTP status becomes.
FAILURE_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                 529: "overloaded_error", 503: "overloaded_error"}  # fmt: skip
# (request index, result type, result line)
Result = tuple[int, str, bytes]


@dataclass
class Run:
    """What the worker keeps in memory about a batch in progress."""

    lines: list[bytes]
    # Indexes into `lines` not yet answered, taken from the end.
    pending: list[int]


def _custom_id(line: bytes) -> str:
    return orjson.loads(line)["custom_id"]


class MessageBatchEngine:
    """Runs the message batches stored in `batches` until `stop()`."""

    def __init__(self, batches: MessageBatchStore, options: ServerOptions, faults: FaultInjector) -> None:
        self.batches = batches
        self.options = options
        self.faults = faults
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._owned: set[str] = set()  # queued or being stepped: never two steps on one batch
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._upstream = UpstreamClient(options.upstream, key=upstream_key(options)) if options.upstream else None

    def start(self) -> None:
        for batch_id in self.batches.active_ids():
            self.submit(batch_id)
        self._thread = threading.Thread(target=self._loop, name="local-message-batch-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop at a request boundary; results saved so far are kept."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def submit(self, batch_id: str) -> None:
        """Make sure the worker looks at this batch soon."""
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
            except Exception:  # a bug must not stop the other batches
                traceback.print_exc(file=sys.stderr)
                again = False
            if again and not self._stopping.is_set():
                self._queue.put(batch_id)
            else:
                with self._lock:
                    self._owned.discard(batch_id)
                if not again:
                    self._runs.pop(batch_id, None)

    def _run_of(self, batch_id: str) -> Run:
        """The batch's run, read back from disk after a restart: only requests without a saved result."""
        run = self._runs.get(batch_id)
        if run is None:
            lines = self.batches.requests_path(batch_id).read_bytes().splitlines()
            answered = self.batches.answered(batch_id)
            pending = [index for index in range(len(lines)) if index not in answered]
            self.faults.shuffler(f"{batch_id}:{len(answered)}").shuffle(pending)
            run = self._runs[batch_id] = Run(lines, pending)
        return run

    def _step(self, batch_id: str) -> bool:
        """One bounded piece of work on a batch; True while it needs more."""
        batch = self.batches.get(batch_id)
        if batch is None or batch["status"] == "ended":
            return False
        if batch["status"] == "canceling":
            return not self._end(batch_id, "canceled")
        if time.time() >= batch["expires_at"]:
            return not self._end(batch_id, "expired")
        run = self._run_of(batch_id)
        results: list[Result] = []
        started = time.monotonic()
        for index in reversed(run.pending[-CHUNK_REQUESTS:]):
            if self._stopping.is_set() or time.time() >= batch["expires_at"]:
                break
            results.append((index, *self._answer(run.lines[index])))
            if time.monotonic() - started > CHUNK_SECONDS:
                break
        self.batches.record(batch_id, results)
        del run.pending[len(run.pending) - len(results) :]
        if not run.pending:
            return not self.batches.end(batch_id)
        return True

    def _end(self, batch_id: str, kind: str) -> bool:
        """End a batch, its requests without a result written as `kind` (canceled, expired)."""
        run = self._run_of(batch_id)
        return self.batches.end(batch_id, [(i, kind, ended_line(_custom_id(run.lines[i]), kind)) for i in run.pending])

    def _answer(self, line: bytes) -> tuple[str, bytes]:
        """(result type, result line) of one request."""
        request = orjson.loads(line)
        custom_id, params = request["custom_id"], request["params"]
        if self.options.line_latency:
            time.sleep(self.options.line_latency)
        failure = self.faults.line_failure(custom_id)
        if failure is not None:
            status, body = failure
            error_type = FAILURE_TYPES.get(status, "api_error")
            return "errored", errored_line(custom_id, error_type, body["error"]["message"])
        problem = params_problem(params)
        if problem is not None:
            return "errored", errored_line(custom_id, "invalid_request_error", problem)
        if self._upstream is not None:
            return self._ask_upstream(custom_id, params)
        try:
            return "succeeded", succeeded_line(custom_id, message_answer(params))
        except Exception as exc:  # a bug met on one request must not fail the batch's others
            traceback.print_exc(file=sys.stderr)
            return "errored", errored_line(custom_id, "api_error", f"The local backend failed on this request: {exc!r}")

    def _ask_upstream(self, custom_id: str, params: dict) -> tuple[str, bytes]:
        """(result type, result line) of a request the upstream answers, one at a time."""
        try:
            status, body = self._upstream.post(CHAT, chat_body(params))
        except UpstreamUnreachable as exc:
            return "errored", errored_line(custom_id, "api_error", str(exc))
        if status == 200:
            try:
                return "succeeded", succeeded_line(custom_id, message_from_chat(params, body))
            except (KeyError, IndexError, TypeError, AttributeError):
                return "errored", errored_line(
                    custom_id, "api_error", "The upstream server's answer is not a chat completion."
                )
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        error_type = FAILURE_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return "errored", errored_line(custom_id, error_type, str(message or f"The upstream server answered {status}."))
