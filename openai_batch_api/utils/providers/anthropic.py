"""Anthropic's Message Batches behind the provider seam: one create carrying the requests, no upload, no tags.

The one module (with `anthropic_errors.py`) that imports the anthropic SDK. A shard's request file
is the run's neutral one (a line per row: its id and the request body); here its lines are encoded as
`{"custom_id": "<run tag>-<shard>-<line>", "params": body}` (see requests/custom_ids.py) and go in
the body of one create call. The results come back on those custom ids, and are written to disk each
on its row's id again (anthropic_results.write_mapped_results), for result_lines.py to read.

Exactly once with no tags: the API keeps no metadata and takes no idempotency key, and a batch shows
only counts and times until it ends. A create whose answer was lost (a dropped connection after the
server acted, a kill between send and save) is searched for among the batches created since the
intent was recorded that hold as many requests as the shard; a candidate is this shard's only when
the custom ids of its results carry this run's tag and this shard's number, which can be read once
it has ended. No candidate: nothing was made, and creating is safe. A candidate still running: it
cannot be known yet, and the run refuses (one line) rather than create blind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import anthropic
import orjson

from ..config import Config
from ..requests.custom_ids import CustomIdMap, creation_tag, parse_custom_id
from ..state.batch_state import BatchState
from .anthropic_errors import classify, provider_error
from .anthropic_key import ANTHROPIC_BASE_URL_ENV, anthropic_api_key
from .anthropic_results import write_mapped_results
from .base import Capabilities, Intents, Lookup, ProviderError, ShardSubmission
from .local import check_local_settings, local_backend
from .retries import DEFAULT_RETRY, Retrier, RetryPolicy

LIST_PAGE = 100
# The API's own machines' clocks differ by a little: a search by the server's time looks this much further back.
CLOCK_SKEW_SECONDS = 300
# The SDK's own timeout per call; creating a batch of 256 MB takes a while to send.
TIMEOUT_SECONDS = 600.0


def _http_date(value: str | None) -> float | None:
    """An HTTP Date header as a Unix time; None when absent or unreadable."""
    try:
        return parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError):
        return None


def _epoch(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


def batch_state(batch: Any) -> BatchState:
    """A Message Batch in the run's words: ended becomes completed, cancelled or expired."""
    counts = batch.request_counts
    if batch.processing_status == "in_progress":
        status = "in_progress"
    elif batch.processing_status == "canceling":
        status = "cancelling"
    elif batch.cancel_initiated_at is not None:
        status = "cancelled"
    elif counts.expired:
        status = "expired"
    else:
        status = "completed"
    total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
    return BatchState(
        id=batch.id,
        status=status,
        created_at=_epoch(batch.created_at) or 0,
        in_progress_at=_epoch(batch.created_at),
        expires_at=_epoch(batch.expires_at),
        # The results are one stream, named by the batch: its id stands for the output file.
        output_file_id=batch.id if batch.results_url else None,
        completed=counts.succeeded,
        failed=counts.errored + counts.canceled + counts.expired,
        total=total,
        raw=batch.model_dump(mode="json"),
    )


def shard_ids(path: Path, *, tag: str, shard: int) -> CustomIdMap:
    """The custom ids of a shard's request file and the way back to its row ids (read once, in order)."""
    row_ids = []
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                row_ids.append(orjson.loads(line)["custom_id"])
    return CustomIdMap(tag, shard, row_ids)


def encode_requests(path: Path, ids: CustomIdMap) -> list[dict[str, Any]]:
    """The requests of a create call, each of the shard's neutral request lines encoded as a Message
    Batches request: its body as the params, under its custom id."""
    requests = []
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                requests.append({"custom_id": ids.custom_id(len(requests)), "params": orjson.loads(line)["body"]})
    return requests


def creation_ids(shard: ShardSubmission) -> CustomIdMap:
    """The custom ids of one creation of a shard: its tags' tag, its number, its rows' lines."""
    return shard_ids(shard.path, tag=creation_tag(shard.tags), shard=shard.index)


class AnthropicProvider:
    """One session with Anthropic's Message Batches API (or the local backend speaking it)."""

    capabilities = Capabilities(submission_steps=("create",), tags_kept=False, batches_listed=True, files_listed=False)

    def __init__(self, client: anthropic.Anthropic, *, policy: RetryPolicy = DEFAULT_RETRY) -> None:
        self.client = client
        self.retrier = Retrier(policy, classify=classify)
        self.notices: list[str] = []

    @property
    def calls(self) -> int:
        return self.retrier.calls

    def stop(self) -> None:
        self.retrier.stop()

    def close(self) -> None:
        self.client.close()

    def _call(self, fn, *, recover=None):
        try:
            return self.retrier.call(fn, recover=recover)
        except anthropic.AnthropicError as exc:
            raise provider_error(exc) from exc

    # The seam's calls (see base.py): no upload, one create carrying the requests, results as one stream

    def submit_shard(self, shard: ShardSubmission, intents: Intents) -> BatchState:
        """One creation carrying the shard's requests, its intent saved first; the run's tags go in their custom ids."""
        intents.begin("create")
        name = shard.tags.get("shard")
        return self.create_from_file(
            shard.path, ids=creation_ids(shard), since=shard.since, exclude=shard.exclude, name=name
        )

    def find_lost_submission(self, shard: ShardSubmission) -> Lookup:
        ids = creation_ids(shard)
        name = shard.tags.get("shard")
        count = len(ids.row_ids)
        return self.find_submission(ids=ids, count=count, since=shard.since, exclude=shard.exclude, name=name)

    def fetch_results(self, file_id: str, dest: Path, *, shard: ShardSubmission) -> Path:
        """A batch's results (its id stands for its one result file), each custom id back to its row's id."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.download_results(file_id, dest, ids=creation_ids(shard))
        return dest

    def delete_file(self, file_id: str) -> bool:
        """The run's remote "files" here are its ended batches (the results are the batch's): delete one."""
        return self.delete_batch(file_id)

    def file_exists(self, file_id: str) -> bool:
        try:
            self.retrieve(file_id)
        except ProviderError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def find_uploads(self, sizes: dict[str, int]) -> dict[str, str]:
        return {}  # nothing is ever uploaded

    def download(self, file_id: str, dest: Path) -> Path:
        raise TypeError("a Message Batch has no input file, and its results are fetched with fetch_results")

    # Creating, and finding a lost creation

    def create_from_file(
        self, path: Path, *, ids: CustomIdMap, since: int, exclude: Collection[str] = (), name: str | None = None
    ) -> BatchState:
        """Make the batch of a shard's request file; after a lost answer, the one it made is found or refused."""
        requests = encode_requests(path, ids)

        def create() -> BatchState:
            return batch_state(self.client.messages.batches.create(requests=requests))  # type: ignore[arg-type]

        def recover() -> BatchState | None:
            lookup = self.find_submission(ids=ids, count=len(requests), since=since, exclude=exclude, name=name)
            if lookup.unknowable:
                raise ProviderError(lookup.unknowable)
            return lookup.batch

        return self._call(create, recover=recover)

    def find_submission(
        self, *, ids: CustomIdMap, count: int, since: int, exclude: Collection[str] = (), name: str | None = None
    ) -> Lookup:
        """The batch a creation of this shard whose answer was lost made, if it made one, or why that cannot be known.

        Candidates are the batches created since `since` (less the clock skew) holding `count`
        requests, but those in `exclude` (the run's other batches). An ended one is confirmed or ruled
        out by the custom ids of its results; one still running cannot be told apart yet.
        """
        undecided = []
        server_date: list[float] = []
        for batch in self.list_batches(server_date=server_date):
            # `since` is by this machine's clock, created_at by the server's: compare them on the server's,
            # through its Date header. Without one, the whole listing is read: a clock ahead must never pay twice.
            lag = time.time() - server_date[0] if server_date else None
            if lag is not None and batch.created_at < since - lag - CLOCK_SKEW_SECONDS:
                break
            if batch.id in exclude or batch.total != count:
                continue
            if batch.output_file_id is None:
                undecided.append(batch)
            elif self._results_are_of(batch.id, ids):
                return Lookup(batch=batch)
        if undecided:
            names = ", ".join(f"{b.id} ({b.status}, expires at {_when(b.expires_at)})" for b in undecided)
            label = name or f"shard {ids.shard}"
            return Lookup(
                unknowable=f"{label}: a batch creation's answer was lost, and batch {names} made since then "
                f"holds {count} requests like this shard; it can be confirmed as this run's only from its results, "
                "once it has ended: run the command again then (creating another now could pay twice)"
            )
        return Lookup()

    def _results_are_of(self, batch_id: str, ids: CustomIdMap) -> bool:
        """Whether an ended batch's results are this shard's: the first line's custom id tells."""

        def first_custom_id() -> str | None:
            with self.client.messages.batches.with_streaming_response.results(batch_id) as response:
                for line in response.iter_lines():
                    if line.strip():
                        return orjson.loads(line).get("custom_id")
            return None

        place = parse_custom_id(self._call(first_custom_id) or "")
        return place is not None and place.tag == ids.tag and place.shard == ids.shard

    # Reading batches

    def list_batches(self, *, server_date: list[float] | None = None) -> Iterator[BatchState]:
        """Every batch, newest first, a page at a time; the first page's Date header (the server's clock,
        as a Unix time) is appended to `server_date` when given and sent."""

        def first_page() -> Any:
            raw = self.client.messages.batches.with_raw_response.list(limit=LIST_PAGE)
            date = _http_date(raw.headers.get("date"))
            if server_date is not None and date is not None:
                server_date.append(date)
            return raw.parse()

        page = self._call(first_page)
        while True:
            yield from (batch_state(item) for item in page.data)
            if not page.has_next_page():
                return
            page = self._call(page.get_next_page)

    def retrieve(self, batch_id: str) -> BatchState:
        return batch_state(self._call(lambda: self.client.messages.batches.retrieve(batch_id)))

    def poll(self, wanted: Mapping[str, int], *, workers: int = 1) -> dict[str, BatchState]:
        """The batches `wanted` (id: created_at) as they stand now: by the listing down to the oldest, the
        rest one by one."""
        if not wanted:
            return {}
        found: dict[str, BatchState] = {}
        if len(wanted) > 1:
            oldest = min(wanted.values())
            for batch in self.list_batches():
                if batch.id in wanted:
                    found[batch.id] = batch
                if len(found) == len(wanted) or batch.created_at < oldest - CLOCK_SKEW_SECONDS:
                    break
        for batch_id in wanted:
            if batch_id not in found:
                found[batch_id] = self.retrieve(batch_id)
        return found

    # Results, cancelling, deleting

    def download_results(self, batch_id: str, dest: Path, *, ids: CustomIdMap) -> int:
        """Stream an ended batch's results to `dest` line by line, each custom id back to its row id."""

        def download() -> int:
            with self.client.messages.batches.with_streaming_response.results(batch_id) as response:
                return write_mapped_results(response.iter_lines(), dest, ids=ids)

        return self._call(download)

    def cancel(self, batch_id: str) -> BatchState:
        """Cancel a batch; one that ended meanwhile is returned as it now stands."""
        try:
            return batch_state(self._call(lambda: self.client.messages.batches.cancel(batch_id)))
        except ProviderError as exc:
            if exc.status in (400, 409):
                return self.retrieve(batch_id)
            raise

    def delete_batch(self, batch_id: str) -> bool:
        """Delete an ended batch and its results; False when it was gone already."""
        try:
            self._call(lambda: self.client.messages.batches.delete(batch_id))
        except ProviderError as exc:
            if exc.status == 404:
                return False
            raise
        return True


def _when(epoch: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch)) if epoch else "an unknown time"


def sdk_base_url(base_url: str) -> str:
    """The SDK's base URL for a server's address: the SDK adds /v1 itself."""
    return base_url.rstrip("/").removesuffix("/v1")


def open_provider(*, api_key: str, base_url: str | None, policy: RetryPolicy = DEFAULT_RETRY) -> AnthropicProvider:
    """A session; the SDK's own retries are off (a retried create could make a second batch)."""
    client = anthropic.Anthropic(
        api_key=api_key,
        base_url=sdk_base_url(base_url) if base_url else None,
        max_retries=0,
        timeout=TIMEOUT_SECONDS,
    )
    return AnthropicProvider(client, policy=policy)


def check_anthropic_settings(config: Config) -> None:
    """Fail before any work on what open_anthropic would refuse: a missing key, bad local_backend options."""
    if config.is_local:
        check_local_settings(config)
    else:
        anthropic_api_key(config)


@contextmanager
def open_anthropic(config: Config) -> Iterator[AnthropicProvider]:
    """A session with Anthropic's API (base_url, else ANTHROPIC_BASE_URL, else the real API), or with
    the local backend for `base_url: local`, which runs meanwhile."""
    if not config.is_local:
        base_url = config.base_url or os.environ.get(ANTHROPIC_BASE_URL_ENV)
        provider = open_provider(api_key=anthropic_api_key(config), base_url=base_url)
        try:
            yield provider
        finally:
            provider.stop()
            provider.close()
        return
    with local_backend(config) as backend:
        policy = RetryPolicy(unreachable_attempts=1) if backend.borrowed else DEFAULT_RETRY
        provider = open_provider(api_key=backend.api_key, base_url=backend.base_url, policy=policy)
        try:
            yield provider
        except ProviderError as exc:
            if exc.connection:
                backend.check_running()  # its command stopped: one clear error; else a failure of its own
            raise
        finally:
            provider.stop()
            provider.close()
