"""A typed layer over the SDK's files and batches endpoints, with retries that never pay twice.

The SDK's own retries are switched off: a retried `POST /v1/batches` after a dropped
connection can create a second batch. Here every transient failure is retried with
backoff (honouring Retry-After), and after a failure that may have happened on the
server side (a dropped connection, a timeout, a 5xx) the create calls first look for
what they may already have made. A server that refuses the connection or a name that does
not resolve gets only a few quick attempts: waiting longer rarely helps, and the user is
better told at once. Every retry is logged (the commands show it on stderr).
"""

from __future__ import annotations

import email.utils
import errno
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import openai
from openai import Omit, omit
from openai.pagination import SyncCursorPage
from openai.types import Batch, FileObject
from openai.types.batch_create_params import OutputExpiresAfter

from ..addresses import is_loopback_url
from ..config import Config
from ..errors import ApiError, BatchToolError, ConfigError, LostCreationError, with_filename
from ..files.atomic_files import atomic_writer

T = TypeVar("T")
log = logging.getLogger("openai_batch_api")
API_KEY_ENV = "OPENAI_API_KEY"
# Looking for a batch made from an input file, the listing is read back to that file's creation, less
# this margin: both times are the server's (this machine's clock is never compared with them), the
# margin is for its machines' clocks among themselves.
CLOCK_SKEW_SECONDS = 300
# Seconds a local in-process backend gets to finish its batches before the command exits.
LOCAL_SETTLE_SECONDS = 3.0
# How servers without a listing endpoint answer it.
NO_LISTING_STATUSES = (404, 405, 501)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    # Attempts when nothing listens at the address or its name does not resolve.
    unreachable_attempts: int = 3


DEFAULT_RETRY = RetryPolicy()
UNREACHABLE_ERRNOS = (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH)


# 507 Insufficient Storage: the server's disk is full (the local backend says so), which seconds of
# waiting will not change; the request is not retried, so the user hears of it at once.
INSUFFICIENT_STORAGE = 507


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError) and exc.status_code == INSUFFICIENT_STORAGE:
        return False
    return isinstance(exc, (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError))


def unreachable_reason(exc: BaseException) -> str | None:
    """Why the server could not be reached at all (refused, unknown name, no route), or None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            request = getattr(exc, "request", None)
            host = request.url.host if request is not None else "the host"
            return f"the name {host} does not resolve"
        if isinstance(cause, OSError) and cause.errno in UNREACHABLE_ERRNOS:
            return "connection refused" if cause.errno == errno.ECONNREFUSED else os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return None


def retry_reason(exc: BaseException) -> str:
    """A few words on a failure about to be retried."""
    if isinstance(exc, openai.APIStatusError):
        return f"the API answered {exc.status_code}"
    if isinstance(exc, openai.APITimeoutError):
        return "no answer in time"
    return unreachable_reason(exc) or "the connection failed"


def may_have_happened(exc: BaseException) -> bool:
    """Whether the server may have carried out the request that failed this way."""
    if unreachable_reason(exc) is not None:
        return False  # refused or never resolved: the request never reached a server
    return isinstance(exc, (openai.APIConnectionError, openai.InternalServerError))


def is_missing_listing(exc: BaseException) -> bool:
    """Whether a list call failed because the server has no such listing (some compatible servers)."""
    return isinstance(exc, openai.APIStatusError) and exc.status_code in NO_LISTING_STATUSES


def retry_delay(exc: BaseException, attempt: int, policy: RetryPolicy) -> float:
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            return min(float(header), policy.max_retry_after)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                parsed = None  # neither seconds nor a date: the usual backoff
            if parsed is not None:
                return min(max(parsed.timestamp() - time.time(), 0.0), policy.max_retry_after)
    backoff = min(policy.base_delay * 2**attempt, policy.max_delay)
    return backoff * (0.5 + random.random() / 2)  # jitter, so parallel calls do not retry in step


class CallsStopped(Exception):
    """A call asked of a BatchApi after its step was interrupted (BatchApi.stop)."""


class BatchApi:
    """The files and batches calls the commands make, each retried under one policy."""

    def __init__(
        self, client: openai.OpenAI, *, retry: RetryPolicy | None = None, result_retention: int | None = None
    ) -> None:
        self.client = client
        self.retry = retry or DEFAULT_RETRY
        # What the commands should tell the user about a server that offers less (printed once each).
        self.notices: list[str] = []
        # Seconds the server keeps a batch's output and error files; None leaves its default (30 days).
        self.result_retention = result_retention
        self.calls = 0  # HTTP calls made, retries included: what `--debug` reports of a poll
        self._count_lock = threading.Lock()
        # Set when the step is over early (Ctrl-C): calls still running in worker threads make no
        # new attempt and log nothing; the intents on disk let the next command settle them.
        self.stopped = threading.Event()

    def stop(self) -> None:
        """Make no more calls: a call under way fails as it is, without retries or retry lines."""
        self.stopped.set()

    def _call(self, fn: Callable[[], T], *, recover: Callable[[], T | None] | None = None) -> T:
        """Run `fn`, retrying transient failures; `recover` finds the result of a lost call."""
        for attempt in range(self.retry.attempts):
            if self.stopped.is_set():
                raise CallsStopped("the step was interrupted: no more API calls")
            with self._count_lock:
                self.calls += 1
            try:
                return fn()
            except openai.OpenAIError as exc:
                unreachable = unreachable_reason(exc) is not None
                attempts = self.retry.unreachable_attempts if unreachable else self.retry.attempts
                if not is_transient(exc) or attempt >= attempts - 1 or self.stopped.is_set():
                    raise
                delay = retry_delay(exc, attempt, self.retry)
                request = getattr(exc, "request", None)
                where = f" ({request.method} {request.url})" if request is not None else ""
                reason = retry_reason(exc)
                log.warning("retrying in %.1fs (retry %d of %d): %s%s", delay, attempt + 1, attempts - 1, reason, where)
                self.stopped.wait(delay)  # a sleep that an interrupt cuts short
                if recover is not None and may_have_happened(exc):
                    found = recover()
                    if found is not None:
                        return found
        raise AssertionError("unreachable")

    def _each(self, first_page: Callable[[], SyncCursorPage[T]]) -> Iterator[T]:
        """Every item of a listing, each page fetched under the retry policy on its own."""
        page = self._call(first_page)
        while True:
            yield from page.data
            if not page.has_next_page():
                return
            page = self._call(page.get_next_page)

    # Files

    def _notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    def find_file(self, *, filename: str, size: int) -> FileObject | None:
        """The uploaded batch file with this name and size, if there is one.

        A server that cannot list files gives None: the upload is made again. A duplicate input file
        costs nothing (files are billed by the batches made from them) and expires on the server.
        """
        return self.find_files({filename: size}).get(filename)

    def find_files(self, sizes: dict[str, int]) -> dict[str, FileObject]:
        """The uploaded batch files among `sizes` (filename: size), by filename, from one listing."""
        found: dict[str, FileObject] = {}
        try:
            for item in self._each(lambda: self.client.files.list(purpose="batch")):
                if sizes.get(item.filename) == item.bytes and item.filename not in found:  # the newest
                    found[item.filename] = item
                    if len(found) == len(sizes):
                        break
        except openai.APIStatusError as exc:
            if not is_missing_listing(exc):
                raise
            self._notice(
                f"the server does not list files ({exc.status_code}): an upload whose answer was lost is made "
                "again; the earlier copy, if one was made, is not used and, as nothing lists it, stays on the "
                "server until it expires (30 days on OpenAI)"
            )
        return found

    def list_files(self) -> Iterator[FileObject]:
        """Every uploaded batch input file, newest first."""
        return self._each(lambda: self.client.files.list(purpose="batch"))

    def upload_file(self, path: Path, *, filename: str) -> FileObject:
        size = path.stat().st_size

        def upload() -> FileObject:
            with open(path, "rb") as fh:
                return self.client.files.create(file=(filename, fh, "application/jsonl"), purpose="batch")

        return self._call(upload, recover=lambda: self.find_file(filename=filename, size=size))

    def download_file(self, file_id: str, dest: Path) -> Path:
        """Stream a file's content to `dest`, atomically: a half download is never at `dest`."""

        def download() -> Path:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # A temporary name of its own: a status-jobs run beside a collate-output may fetch the same file.
            try:
                with atomic_writer(dest) as fh:
                    with self.client.files.with_streaming_response.content(file_id) as response:
                        for chunk in response.iter_bytes(1 << 20):
                            fh.write(chunk)
            except OSError as exc:
                raise with_filename(exc, dest) from None
            return dest

        return self._call(download)

    def retrieve_file(self, file_id: str) -> FileObject:
        return self._call(lambda: self.client.files.retrieve(file_id))

    def delete_file(self, file_id: str) -> bool:
        """Delete a file; False when it was already gone."""
        try:
            self._call(lambda: self.client.files.delete(file_id))
            return True
        except openai.NotFoundError:
            return False

    # Batches

    def find_batch(
        self,
        *,
        metadata: dict[str, str],
        input_file_id: str,
        exclude: Collection[str] = (),
    ) -> Batch | None:
        """The batch tagged with `metadata` and made from `input_file_id`, newest first.

        The listing is read back to the creation of `input_file_id` by the server's own clock (no batch
        made from a file is older than it), or to its end when the file cannot be read.
        On a server that keeps no metadata, the batch made from `input_file_id` (an upload of this
        run's, used by no other batch but those in `exclude`). When neither can tell, it refuses to
        guess, raising BatchToolError: creating the batch again could pay twice.
        """
        since = self.file_created_at(input_file_id)
        untagged: list[Batch] = []
        try:
            for batch in self._each(lambda: self.client.batches.list(limit=100)):
                if since is not None and batch.created_at < since - CLOCK_SKEW_SECONDS:
                    break
                tags = batch.metadata or {}
                if tags and all(tags.get(k) == v for k, v in metadata.items()):
                    return batch
                if not tags and batch.id not in exclude and input_file_id and batch.input_file_id == input_file_id:
                    untagged.append(batch)
        except openai.APIStatusError as exc:
            if not is_missing_listing(exc):
                raise
            raise LostCreationError([(metadata.get("shard", "?"), input_file_id)], status=exc.status_code) from None
        if len(untagged) > 1:
            ids = ", ".join(batch.id for batch in untagged)
            raise ApiError(
                f"shard {metadata.get('shard', '?')}: batches {ids} were all made from input file {input_file_id} "
                "and the server keeps no metadata to tell which is this run's; check them and cancel the extra "
                "ones before going on"
            )
        if untagged:
            self._notice("the server keeps no batch metadata: batches are found again by their input file")
        return untagged[0] if untagged else None

    def file_created_at(self, file_id: str) -> int | None:
        """When the server made the file, by its clock; None when it cannot say (the file is gone)."""
        try:
            return self.retrieve_file(file_id).created_at
        except (openai.NotFoundError, openai.UnprocessableEntityError):
            return None

    def list_batches(self, *, page_size: int = 100) -> Iterator[Batch]:
        """Every batch, newest first, a page of `page_size` at a time."""
        return self._each(lambda: self.client.batches.list(limit=page_size))

    def create_batch(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        metadata: dict[str, str],
        exclude: Collection[str] = (),
    ) -> Batch:
        expiry: OutputExpiresAfter | Omit = omit
        if self.result_retention is not None:
            expiry = {"anchor": "created_at", "seconds": self.result_retention}

        def create() -> Batch:
            return self.client.batches.create(
                input_file_id=input_file_id,
                endpoint=endpoint,  # type: ignore[arg-type]  # one of endpoints.ENDPOINTS, checked with the config
                completion_window="24h",
                metadata=metadata,
                output_expires_after=expiry,
            )

        return self._call(
            create,
            recover=lambda: self.find_batch(metadata=metadata, input_file_id=input_file_id, exclude=exclude),
        )

    def retrieve_batch(self, batch_id: str) -> Batch:
        return self._call(lambda: self.client.batches.retrieve(batch_id))

    def cancel_batch(self, batch_id: str) -> Batch:
        """Cancel a batch; one that finished meanwhile (409) is returned as it now stands."""
        try:
            return self._call(lambda: self.client.batches.cancel(batch_id))
        except openai.ConflictError:
            return self.retrieve_batch(batch_id)


def missing_v1_hint(url) -> str:
    """For a 404 on the files or batches collection: the base_url with its /v1, when it lacks one."""
    path = url.path
    for collection in ("/files", "/batches"):
        if collection in path:
            prefix = path[: path.index(collection)].rstrip("/")
            break
    else:
        return ""
    if prefix.endswith("/v1"):
        return ""
    port = f":{url.port}" if url.port else ""
    return f"; base_url may be missing its /v1: try base_url: {url.scheme}://{url.host}{port}{prefix}/v1"


def describe_api_error(exc: openai.OpenAIError) -> str:
    """One line for an SDK error: HTTP status, the API's message and the request id."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") or exc.message
        request_id = f" (request id {exc.request_id})" if exc.request_id else ""
        hint = missing_v1_hint(exc.request.url) if exc.status_code == 404 else ""
        return f"the API answered {exc.status_code}: {message}{request_id}{hint}"
    if isinstance(exc, openai.APITimeoutError):
        return f"the API did not answer in time ({exc.request.url}); run the command again to continue"
    if isinstance(exc, openai.APIConnectionError):
        return (
            f"cannot reach the API at {exc.request.url}: {unreachable_reason(exc) or exc.__cause__ or exc.message}; "
            "check base_url and the network, then run the command again"
        )
    return str(exc)


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file, as python-dotenv reads them (comments, `export`, quotes).

    Values are taken literally: `${NAME}` is not expanded, as a key never holds one.
    """
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path, interpolate=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return {key: value for key, value in values.items() if value is not None}


def find_api_key(config: Config) -> str:
    """The key from OPENAI_API_KEY, else from a .env beside the config or in the working folder."""
    key = os.environ.get(API_KEY_ENV)
    if key:
        return key
    for folder in (config.path.parent, Path.cwd()):
        key = read_dotenv(folder / ".env").get(API_KEY_ENV)
        if key:
            return key
    raise ConfigError(
        f"no API key: set {API_KEY_ENV} in the environment or in a .env file beside {config.path.name}, "
        "or set `base_url: local` in the config to use the local backend"
    )


# Sent to a server on this machine when no key is set: a local backend needs none from the user.
LOOPBACK_PLACEHOLDER_KEY = "local"


def api_key_for(config: Config) -> str:
    """The key to send: found by find_api_key, or a placeholder for a server on loopback."""
    base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
    try:
        return find_api_key(config)
    except BatchToolError:
        if is_loopback_url(base_url):
            return LOOPBACK_PLACEHOLDER_KEY
        raise


def check_api_settings(config: Config) -> None:
    """Fail before any work on what open_api would refuse: a missing key, bad local_backend options."""
    if not config.is_local:
        api_key_for(config)
        return
    from ...local_server import ServerOptions
    from ...local_server.upstream import upstream_key_problem

    problem = upstream_key_problem(ServerOptions.from_mapping(config.local_backend))
    if problem:
        raise ConfigError(problem)  # the words LocalServer.start would say, before any work


def local_state_dir(config: Config) -> Path:
    return config.data_path / "local_backend"


def remove_local_backend_state(config: Config) -> None:
    """Remove the files the run's local backend wrote (see LocalServer.remove_state); a user's stay."""
    from ...local_server import LocalServer

    LocalServer(state_dir=local_state_dir(config)).remove_state()


@contextmanager
def stopped_on_exit(api: BatchApi) -> Iterator[BatchApi]:
    """`api`, stopped when the step ends: worker threads an interrupt left behind make no more calls."""
    try:
        yield api
    finally:
        api.stop()


@contextmanager
def open_api(config: Config) -> Iterator[BatchApi]:
    """A BatchApi for the config's server; with `base_url: local`, a local backend runs meanwhile.

    When another command already runs the local backend on this run's state (a status-jobs --wait),
    this one talks to that backend over loopback rather than starting its own.
    """
    if not config.is_local:
        client = openai.OpenAI(api_key=api_key_for(config), base_url=config.base_url, max_retries=0)
        with client, stopped_on_exit(BatchApi(client, result_retention=config.result_retention)) as api:
            yield api
        return

    from ...local_server import LocalServer, ServerOptions
    from ...local_server.server import StateDirInUse

    options = ServerOptions.from_mapping(config.local_backend)
    # A key of this command's own: the backend's address is recorded on disk for other commands of
    # this user, and no other process on the machine should be able to use it.
    server = LocalServer(state_dir=local_state_dir(config), options=options, api_key=secrets.token_urlsafe(24))
    try:
        server.start()
    except StateDirInUse as busy:
        with borrowed_local_backend(config, busy) as api:
            yield api
        return
    try:
        with openai.OpenAI(api_key=server.api_key, base_url=server.base_url, max_retries=0) as client:
            # Stopped before the backend is: the calls it cuts off then end without retry lines.
            with stopped_on_exit(BatchApi(client, result_retention=config.result_retention)) as api:
                yield api
        # The local backend answers only while a command runs: give small batches time to finish.
        server.wait_idle(timeout=LOCAL_SETTLE_SECONDS)
    finally:
        server.stop()


@contextmanager
def borrowed_local_backend(config: Config, busy: BatchToolError) -> Iterator[BatchApi]:
    """A BatchApi on the local backend another live command runs on this run's state."""
    from ...local_server.server import ADDRESS_WAIT_SECONDS, holder_pid, read_running_backend, still_running

    state_dir = local_state_dir(config)
    pid = holder_pid(getattr(busy, "holder", ""))
    backend = None
    # The holder writes its address a moment after taking the lock: give a starting one that moment.
    deadline = time.monotonic() + ADDRESS_WAIT_SECONDS
    while pid is not None:
        backend = read_running_backend(state_dir, pid=pid)
        if backend is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if backend is None:
        raise busy  # a server from an older version, or one listening beyond loopback
    key = backend.api_key or LOOPBACK_PLACEHOLDER_KEY
    client = openai.OpenAI(api_key=key, base_url=backend.base_url, max_retries=0)
    # Refused at once: the holder has stopped, and waiting would not bring it back.
    retry = RetryPolicy(unreachable_attempts=1)
    with client:
        try:
            with stopped_on_exit(BatchApi(client, retry=retry, result_retention=config.result_retention)) as api:
                yield api
        except openai.APIConnectionError:
            if still_running(state_dir, backend):
                raise  # a failure of its own, said as any other
            raise BatchToolError(
                f"{state_dir}: the local backend of process {backend.pid}, which this command was using, "
                "stopped; run the command again"
            ) from None
