"""OpenAI's files and batches API as a provider (`base.Provider`): the SDK is imported here and in
`openai_errors.py`, which turns its errors into ours; nothing else in the package sees it.

A shard is uploaded, then a batch is made from it carrying the run's tags; a creation whose answer
was lost is found again by those tags (or, on a server that keeps no metadata, by its input file).
Every call goes through one retry loop (`retries.py`) under which nothing is made twice.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import openai
from openai import Omit, omit
from openai.pagination import SyncCursorPage
from openai.types import Batch
from openai.types.batch_create_params import OutputExpiresAfter

from ..config import Config
from ..errors import LostCreationError, with_filename
from ..files.atomic_files import atomic_writer
from ..files.parallel import run_in_parallel
from ..state.batch_state import BatchState, batch_state_from_openai
from .api_key import api_key_for
from .base import Capabilities, Intents, ListingMissing, Lookup, ProviderError, ShardSubmission
from .local import local_backend, local_state_dir
from .openai_errors import classify, describe_api_error, provider_error, retry_delay
from .retries import DEFAULT_RETRY, CallsStopped, Retrier, RetryPolicy
from .sessions import check_openai_settings as check_api_settings  # where callers have found it

T = TypeVar("T")
# Looking for a batch made from an input file, the listing is read back to that file's creation, less
# this margin: both times are the server's (this machine's clock is never compared with them), the
# margin is for its machines' clocks among themselves.
CLOCK_SKEW_SECONDS = 300
# Batches a page of `GET /v1/batches` holds (the API's maximum).
LIST_PAGE = 100

OPENAI_CAPABILITIES = Capabilities(
    submission_steps=("upload", "create"), tags_kept=True, batches_listed=True, files_listed=True
)

__all__ = [
    "BatchApi",
    "CallsStopped",
    "RetryPolicy",
    "check_api_settings",
    "describe_api_error",
    "local_state_dir",
    "open_api",
    "retry_delay",
]


def batch_state(batch: Batch) -> BatchState:
    return batch_state_from_openai(batch.model_dump(mode="json", exclude_unset=True))


class BatchApi:
    """One session with an OpenAI-compatible files and batches API, each call retried under one policy."""

    capabilities = OPENAI_CAPABILITIES

    def __init__(
        self, client: openai.OpenAI, *, retry: RetryPolicy | None = None, result_retention: int | None = None
    ) -> None:
        self.client = client
        self.retrier = Retrier(retry or DEFAULT_RETRY, classify=classify)
        # What the commands should tell the user about a server that offers less (printed once each).
        self.notices: list[str] = []
        # Seconds the server keeps a batch's output and error files; None leaves its default (30 days).
        self.result_retention = result_retention

    @property
    def calls(self) -> int:
        """HTTP calls made, retries included: what `--debug` reports of a poll."""
        return self.retrier.calls

    def stop(self) -> None:
        """Make no more calls: a call under way fails as it is, without retries or retry lines."""
        self.retrier.stop()

    def _call(self, fn: Callable[[], T], *, recover: Callable[[], T | None] | None = None, listing: bool = False) -> T:
        """Run `fn` under the retry policy; an SDK error leaves as our ProviderError."""
        try:
            return self.retrier.call(fn, recover=recover)
        except openai.OpenAIError as exc:
            raise provider_error(exc, listing=listing) from exc

    def _each(self, first_page: Callable[[], SyncCursorPage[T]]) -> Iterator[T]:
        """Every item of a listing, each page fetched under the retry policy on its own."""
        page = self._call(first_page, listing=True)
        while True:
            yield from page.data
            if not page.has_next_page():
                return
            page = self._call(page.get_next_page, listing=True)

    def _notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    # The seam's calls (see base.py): upload, then create with tags; results as output and error files

    def submit_shard(self, shard: ShardSubmission, intents: Intents) -> BatchState:
        """Upload the shard's file as it is (unless an upload was made already), then make its batch, carrying
        the creation's tags and the run's origin; each call's intent saved first."""
        file_id = shard.file_id
        if file_id is None:
            intents.begin("upload")
            file_id = self.upload(shard.path, name=shard.name)
            intents.uploaded(file_id)
        intents.begin("create")
        return self.create(
            input_file_id=file_id,
            endpoint=shard.endpoint,
            tags={**shard.tags, **shard.origin},
            since=shard.since,
            exclude=shard.exclude,
        )

    def find_lost_submission(self, shard: ShardSubmission) -> Lookup:
        return self.find_submission(
            tags=shard.tags, since=shard.since, input_file_id=shard.file_id, exclude=shard.exclude
        )

    def fetch_results(self, file_id: str, dest: Path, *, shard: ShardSubmission) -> Path:
        """An output or error file, as the API wrote it (its lines carry the rows' ids already)."""
        return self.download(file_id, dest)

    # Files

    def find_uploads(self, sizes: dict[str, int]) -> dict[str, str]:
        """The ids of the uploaded batch files among `sizes` (filename: size), by filename, from one listing.

        A server that cannot list files finds none: the upload is made again. A duplicate input file
        costs nothing (files are billed by the batches made from them) and expires on the server.
        """
        found: dict[str, str] = {}
        try:
            for item in self._each(lambda: self.client.files.list(purpose="batch")):
                if sizes.get(item.filename) == item.bytes and item.filename not in found:  # the newest
                    found[item.filename] = item.id
                    if len(found) == len(sizes):
                        break
        except ListingMissing as exc:
            self._notice(
                f"the server does not list files ({exc.status}): an upload whose answer was lost is made "
                "again; the earlier copy, if one was made, is not used and, as nothing lists it, stays on the "
                "server until it expires (30 days on OpenAI)"
            )
        return found

    def upload(self, path: Path, *, name: str) -> str:
        """Upload a shard file under `name`; its file id."""
        size = path.stat().st_size

        def upload() -> str:
            with open(path, "rb") as fh:
                return self.client.files.create(file=(name, fh, "application/jsonl"), purpose="batch").id

        return self._call(upload, recover=lambda: self.find_uploads({name: size}).get(name))

    def download(self, file_id: str, dest: Path) -> Path:
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

    def file_exists(self, file_id: str) -> bool:
        try:
            self._call(lambda: self.client.files.retrieve(file_id))
            return True
        except ProviderError as exc:
            if exc.status == 404:
                return False
            raise

    def delete_file(self, file_id: str) -> bool:
        """Delete a file; False when it was already gone."""
        try:
            self._call(lambda: self.client.files.delete(file_id))
            return True
        except ProviderError as exc:
            if exc.status == 404:
                return False
            raise

    # Batches

    def find_submission(
        self,
        *,
        tags: dict[str, str],
        since: int,
        input_file_id: str | None = None,
        exclude: Collection[str] = (),
    ) -> Lookup:
        """The batch tagged with `tags` (newest first), read back to the creation of `input_file_id`.

        Both times are the server's: `since` (when the run began, by this machine's clock, which may be
        ahead of the server's) is not compared with them; no batch made from a file is older than the
        file, and when the file cannot be read the whole listing is. On a server that keeps no metadata,
        the batch made from `input_file_id` (an upload of this run's, used by no other batch but those in
        `exclude`). When neither can tell, the answer is unknowable: creating the batch again could pay
        twice. A server without a batches listing raises LostCreationError (the user settles the shard).
        """
        cutoff = self.file_created_at(input_file_id) if input_file_id else None
        untagged: list[BatchState] = []
        try:
            for item in self._each(lambda: self.client.batches.list(limit=LIST_PAGE)):
                if cutoff is not None and item.created_at < cutoff - CLOCK_SKEW_SECONDS:
                    break
                batch_tags = item.metadata or {}
                if batch_tags and all(batch_tags.get(k) == v for k, v in tags.items()):
                    return Lookup(batch=batch_state(item))
                if not batch_tags and item.id not in exclude and input_file_id and item.input_file_id == input_file_id:
                    untagged.append(batch_state(item))
        except ListingMissing as exc:
            raise LostCreationError([(tags.get("shard", "?"), input_file_id or "?")], status=exc.status or 0) from None
        if len(untagged) > 1:
            ids = ", ".join(batch.id for batch in untagged)
            return Lookup(
                unknowable=f"shard {tags.get('shard', '?')}: batches {ids} were all made from input file "
                f"{input_file_id} and the server keeps no metadata to tell which is this run's; check them and "
                "cancel the extra ones before going on"
            )
        if untagged:
            self._notice("the server keeps no batch metadata: batches are found again by their input file")
        return Lookup(batch=untagged[0] if untagged else None)

    def find_batch(
        self,
        *,
        metadata: dict[str, str],
        since: int,
        input_file_id: str | None = None,
        exclude: Collection[str] = (),
    ) -> BatchState | None:
        """The lost submission's batch, or None; an ApiError when that cannot be known."""
        lookup = self.find_submission(tags=metadata, since=since, input_file_id=input_file_id, exclude=exclude)
        if lookup.unknowable:
            raise ProviderError(lookup.unknowable)
        return lookup.batch

    def file_created_at(self, file_id: str) -> int | None:
        """When the server made the file, by its clock; None when it cannot say (the file is gone)."""
        try:
            return self._call(lambda: self.client.files.retrieve(file_id)).created_at
        except ProviderError as exc:
            if exc.status in (404, 422):
                return None
            raise

    def list_uploads(self) -> Iterator[tuple[str, str]]:
        """(file id, name) of every uploaded batch input file, newest first (ListingMissing when not offered)."""
        return ((item.id, item.filename) for item in self._each(lambda: self.client.files.list(purpose="batch")))

    def list_batches(self, *, page_size: int = LIST_PAGE) -> Iterator[BatchState]:
        """Every batch, newest first, a page of `page_size` at a time (ListingMissing when not offered)."""
        return (batch_state(item) for item in self._each(lambda: self.client.batches.list(limit=page_size)))

    def create(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        tags: dict[str, str],
        since: int,
        exclude: Collection[str] = (),
    ) -> BatchState:
        """Make a batch of an uploaded shard, carrying `tags`; after a lost answer, the one it made is found."""
        expiry: OutputExpiresAfter | Omit = omit
        if self.result_retention is not None:
            expiry = {"anchor": "created_at", "seconds": self.result_retention}

        def create() -> BatchState:
            return batch_state(
                self.client.batches.create(
                    input_file_id=input_file_id,
                    endpoint=endpoint,  # type: ignore[arg-type]  # one of endpoints.ENDPOINTS, checked with the config
                    completion_window="24h",
                    metadata=tags,
                    output_expires_after=expiry,
                )
            )

        return self._call(
            create,
            recover=lambda: self.find_batch(metadata=tags, since=since, input_file_id=input_file_id, exclude=exclude),
        )

    def retrieve(self, batch_id: str) -> BatchState:
        return batch_state(self._call(lambda: self.client.batches.retrieve(batch_id)))

    # Answers at once

    def answer_now(self, endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """One request answered synchronously at `endpoint` (e.g. /v1/chat/completions), at full price.

        Returns (the response body, None), or (None, why) when the server refused the request itself (a
        4xx other than 429). Retried under the policy as every call is: a 429 or a 5xx is not billed, and
        a connection lost mid-call may be (a pilot's at most one call in flight per worker).
        """
        path = endpoint.removeprefix("/v1")  # the client's base URL ends in /v1
        try:
            return self._call(lambda: self.client.post(path, body=body, cast_to=object)), None
        except ProviderError as exc:
            if exc.status is None or exc.status == 429 or exc.status >= 500:
                raise
            return None, str(exc)

    def poll(self, wanted: Mapping[str, int], *, workers: int) -> dict[str, BatchState]:
        """The batches `wanted` (batch id: its created_at, 0 when unknown) as they stand now, by id, in as
        few API calls as it takes.

        `GET /v1/batches` pages (newest first) answer up to a hundred batches a call. The listing stops
        once it passes the oldest of them, or once it has cost as many calls as fetching the rest one by
        one would (an account busy with many newer batches); the batches it did not reach, or a server
        without a listing, are fetched one by one.
        """
        if not wanted:
            return {}
        oldest = min(wanted.values())
        found: dict[str, BatchState] = {}
        if len(wanted) > 1:
            try:
                for seen, batch in enumerate(self.list_batches(page_size=LIST_PAGE), 1):
                    if batch.id in wanted:
                        found[batch.id] = batch
                    left = len(wanted) - len(found)
                    if not left or batch.created_at < oldest or (seen % LIST_PAGE == 0 and seen // LIST_PAGE >= left):
                        break
            except ListingMissing:
                pass  # a server without a batches listing: every batch is fetched on its own
        missing = [batch_id for batch_id in wanted if batch_id not in found]

        def fetch(batch_id: str) -> None:
            found[batch_id] = self.retrieve(batch_id)

        run_in_parallel(fetch, missing, workers=workers)
        return found

    def cancel(self, batch_id: str) -> BatchState:
        """Cancel a batch; one that finished meanwhile (409) is returned as it now stands."""
        try:
            return batch_state(self._call(lambda: self.client.batches.cancel(batch_id)))
        except ProviderError as exc:
            if exc.status == 409:
                return self.retrieve(batch_id)
            raise


@contextmanager
def session(
    config: Config, *, base_url: str | None, api_key: str, retry: RetryPolicy | None = None
) -> Iterator[BatchApi]:
    """A BatchApi on one client, stopped when the block ends: worker threads an interrupt left behind
    make no more calls (stopped before a local backend is, so the calls it cuts off end without retry lines)."""
    with openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0) as client:
        api = BatchApi(client, retry=retry, result_retention=config.result_retention)
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
        with session(config, base_url=config.base_url, api_key=api_key_for(config)) as api:
            yield api
        return
    with local_backend(config) as backend:
        # A borrowed backend refusing at once has stopped: waiting would not bring it back.
        retry = RetryPolicy(unreachable_attempts=1) if backend.borrowed else None
        try:
            with session(config, base_url=backend.base_url, api_key=backend.api_key, retry=retry) as api:
                yield api
        except (ProviderError, openai.APIConnectionError) as exc:
            if isinstance(exc, openai.APIConnectionError) or exc.connection:
                backend.check_running()  # its command stopped: one clear error; else a failure of its own
            raise
