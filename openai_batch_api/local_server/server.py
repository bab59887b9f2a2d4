"""LocalServer: the backend's HTTP server, batch workers and on-disk state, started and stopped as one."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..utils.errors import BatchToolError
from ..utils.files.atomic_files import atomic_writer
from ..utils.files.file_lock import LockHeld, take_lock
from .access import KEY_ENV, is_loopback
from .anthropic_endpoints import MessageBatchesApi
from .anthropic_store import MessageBatchStore, remove_message_batch_files
from .anthropic_worker import MessageBatchEngine
from .endpoints import Api
from .faults import FaultInjector
from .handler import ApiHTTPServer
from .options import ServerOptions
from .store import (
    BLOB_DIR_NAME,
    DATABASE_NAME,
    DATABASE_NAMES,
    PARTIAL_DIR_NAME,
    Store,
    remove_if_empty,
    remove_store_files,
)
from .upstream import upstream_key_problem
from .worker import BatchEngine

LOCK_NAME = "server.lock"
# Where the backend holding the lock says how to reach it, so a second command on the same state
# (a status-jobs beside a status-jobs --wait) talks to it instead of being refused.
ADDRESS_NAME = "server.json"
# The address being written, as a process killed meanwhile leaves it (by atomic_files, or an older version).
ADDRESS_TEMP_NAME = re.compile(r"\.server\.json\.([0-9a-f]{16}|[0-9]+)\.part")
# Written on first use: only a folder holding it is the backend's own, to write in and clean up.
MARKER_NAME = "local-backend-state"
MARKER_TEXT = "This folder holds the state of an openai_batch_api local backend; it may remove files it made here.\n"
# What an older backend, from before the marker, left in its folder: such a folder is adopted.
UNMARKED_STATE_NAMES = frozenset({*DATABASE_NAMES, LOCK_NAME, BLOB_DIR_NAME, PARTIAL_DIR_NAME})
# Requests being answered when stop() is called get this long to finish.
STOP_GRACE_SECONDS = 5.0
# How long a command waits for a backend that holds the lock but has not yet said where it listens.
ADDRESS_WAIT_SECONDS = 5.0


class StateDirInUse(BatchToolError):
    """The state dir's lock is held by a live process (`holder` says which)."""

    def __init__(self, message: str, *, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class RunningBackend:
    """A backend another process runs on a state dir: where it listens and the key it accepts."""

    base_url: str
    pid: int
    api_key: str | None


def holder_pid(holder: str) -> int | None:
    """The pid in a lock holder's text, "a local backend (pid 123)"."""
    _, found, rest = holder.rpartition("(pid ")
    number = rest.rstrip(")")
    return int(number) if found and number.isdigit() else None


def read_running_backend(state_dir: str | os.PathLike[str], *, pid: int) -> RunningBackend | None:
    """The address process `pid` recorded for its backend on `state_dir`, or None when it has none (yet)."""
    try:
        record = json.loads((Path(state_dir) / ADDRESS_NAME).read_text(encoding="utf-8"))
        backend = RunningBackend(base_url=str(record["base_url"]), pid=int(record["pid"]), api_key=record["api_key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, or not a record this version wrote
    # A record left by a process that died belongs to no one: only the current holder's counts.
    return backend if backend.pid == pid else None


def still_running(state_dir: str | os.PathLike[str], backend: RunningBackend) -> bool:
    """Whether the backend's process is alive and still serves `state_dir` (it removes its record on stopping)."""
    if read_running_backend(state_dir, pid=backend.pid) is None:
        return False
    if os.name == "nt":  # pragma: no cover - there os.kill(pid, 0) would end the process
        return True
    try:
        os.kill(backend.pid, 0)
    except ProcessLookupError:
        return False  # killed without a chance to remove its record
    except OSError:
        pass  # alive, and another user's: not ours to signal
    return True


class LocalServer:
    """The OpenAI Files and Batches API on loopback, with state under `state_dir`.

    >>> with LocalServer(state_dir="state") as server:
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="any")

    Batches left in progress by an earlier server on the same `state_dir` continue where they stopped.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        options: ServerOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.options = options or ServerOptions()
        self.host = host
        self.port = port
        # When set, only requests bearing this key are answered; required to listen beyond loopback.
        self.api_key = api_key or None
        self.base_url: str | None = None
        self._lock_fd: int | None = None
        self._store: Store | None = None
        self._engine: BatchEngine | None = None
        self._message_batches: MessageBatchStore | None = None
        self._message_engine: MessageBatchEngine | None = None
        self._httpd: ApiHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _claim_state_dir(self) -> None:
        """Make sure `state_dir` is the backend's own folder, marking it so when new or empty.

        The backend removes files it made there; a folder the user keeps other things in (`.`, `~`)
        must never become one, so a non-empty folder without the mark is refused.
        """
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise BatchToolError(f"{self.state_dir} is a file, not a folder; choose a new or empty folder as state dir")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        marker = self.state_dir / MARKER_NAME
        if marker.is_file():
            return
        names = {path.name for path in self.state_dir.iterdir()}
        if names and not (names <= UNMARKED_STATE_NAMES and DATABASE_NAME in names):
            raise BatchToolError(
                f"{self.state_dir} is not empty and is not a local backend state dir; "
                "choose a new or empty folder as state dir"
            )
        marker.write_text(MARKER_TEXT, encoding="utf-8")

    def _take_lock(self) -> None:
        self._claim_state_dir()
        try:
            self._lock_fd = take_lock(self.state_dir / LOCK_NAME, holder=f"a local backend (pid {os.getpid()})")
        except LockHeld as held:
            raise StateDirInUse(
                f"{self.state_dir}: the local backend state is in use by {held.holder}; stop it or use another "
                "state dir",
                holder=held.holder,
            ) from None

    def start(self) -> str:
        """Serve in background threads; returns the base URL, e.g. http://127.0.0.1:8089/v1."""
        if self.base_url is not None:
            return self.base_url
        problem = upstream_key_problem(self.options)
        if problem:
            raise BatchToolError(problem)
        self._take_lock()
        try:
            self._store = Store(self.state_dir)
            faults = FaultInjector(self.options)
            self._engine = BatchEngine(self._store, self.options, faults)
            api = Api(self._store, self._engine, self.options)
            self._message_batches = MessageBatchStore(self._store)
            self._message_engine = MessageBatchEngine(self._message_batches, self.options, faults)
            api.add_routes(MessageBatchesApi(self._message_batches, self._message_engine, self.options).routes())
            try:
                self._httpd = ApiHTTPServer((self.host, self.port), api, faults, api_key=self.api_key)
            except OSError as exc:
                raise BatchToolError(
                    f"cannot listen on {self.host}:{self.port} ({exc.strerror}); choose another --port"
                ) from None
            if self.beyond_loopback and self.api_key is None:
                # Closed before a single request is answered.
                self._httpd.server_close()
                raise BatchToolError(
                    f"--host {self.host} listens beyond loopback, where anyone who reaches this machine could use "
                    f"the backend; set a key with --api-key or {KEY_ENV}, or listen on 127.0.0.1"
                )
        except BaseException:
            self._release()
            raise
        host, port = self._httpd.server_address[:2]
        # The address as bound, 0.0.0.0 included: the URL says where the backend listens.
        shown = f"[{host}]" if ":" in str(host) else host
        self.port = port
        self.base_url = f"http://{shown}:{port}/v1"
        self._engine.start()
        self._message_engine.start()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="local-batch-http", daemon=True
        )
        self._thread.start()
        self._write_address()
        return self.base_url

    def _write_address(self) -> None:
        """Record where this backend listens, readable by this user only (it may hold the key)."""
        if self.beyond_loopback:
            return  # other commands reach such a backend by its URL, as the user set it up
        record = {"base_url": self.base_url, "pid": os.getpid(), "api_key": self.api_key}
        path = self.state_dir / ADDRESS_NAME
        with atomic_writer(path, text=True, mode=0o600) as fh:
            json.dump(record, fh)

    @property
    def beyond_loopback(self) -> bool:
        """Whether the backend listens (or would listen) on an address other machines can reach."""
        host = self._httpd.server_address[0] if self._httpd is not None else self.host
        return not is_loopback(str(host))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no batch is validating, in progress, finalizing or cancelling; False on timeout."""
        if self._store is None:
            return True
        deadline = time.monotonic() + timeout
        while True:
            if not self._store.active_batch_ids() and not self._message_batches.active_ids():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop accepting, let answers in flight finish, stop workers at a line boundary; progress is kept."""
        self._remove_address()
        if self._httpd is not None:
            self._httpd.stopping = True
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections(STOP_GRACE_SECONDS)
        if self._engine is not None:
            self._engine.stop()
        if self._message_engine is not None:
            self._message_engine.stop()
        if self._thread is not None:
            self._thread.join()
        self._release()
        self.base_url = None

    def _remove_address(self) -> None:
        # Gone before the server stops answering: a command it refuses then knows the holder stopped,
        # and one that finds the lock free never reads a stale address.
        if self._lock_fd is not None:
            (self.state_dir / ADDRESS_NAME).unlink(missing_ok=True)

    def _release(self) -> None:
        self._remove_address()
        if self._store is not None:
            self._store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._store = self._engine = self._httpd = self._thread = None
        self._message_batches = self._message_engine = None
        self._lock_fd = None

    def remove_state(self) -> None:
        """Remove the files this backend wrote in `state_dir`, then its folders if that leaves them empty.

        Only names the backend gives its own files are removed, and only in a folder holding its
        marker: a user's file put there, and the folder holding it, stay. Refused while another
        process serves the state (StateDirInUse); must not be called while this one is started.
        """
        if self.base_url is not None:
            raise RuntimeError("stop the backend before removing its state")
        if not (self.state_dir / MARKER_NAME).is_file():
            return  # not a folder the backend has made its own: nothing in it is the backend's to remove
        self._take_lock()
        try:
            remove_message_batch_files(self.state_dir)
            remove_store_files(self.state_dir)
            for path in self.state_dir.iterdir():
                if ADDRESS_TEMP_NAME.fullmatch(path.name):
                    path.unlink(missing_ok=True)
            (self.state_dir / ADDRESS_NAME).unlink(missing_ok=True)
            # The marker goes last but the lock: until then, a removal cut short is finished by the next one.
            (self.state_dir / MARKER_NAME).unlink(missing_ok=True)
            (self.state_dir / LOCK_NAME).unlink(missing_ok=True)
        finally:
            self._release()
        remove_if_empty(self.state_dir)

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
