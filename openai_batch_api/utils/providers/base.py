"""The seam between a run and a batch provider: what every provider offers, in the run's terms.

The run's steps (`utils/lifecycle/`) speak only this: capabilities, a submission (an upload when
the provider needs one, then a creation, each behind an intent the store records first), finding
a lost submission again, polling many batches, cancelling, fetching result files, and listing and
deleting what the run made. Batches are `BatchState`s; failures are the package's errors
(`ProviderError`), never a provider SDK's own.

| operation            | OpenAI files + batches (`openai.py`)       | Anthropic Message Batches (next)         |
|----------------------|--------------------------------------------|------------------------------------------|
| capabilities         | upload needed, tags kept, batches and files listed | no upload, no tags, batches listed |
| submit a shard       | upload, then create with tags              | one create carrying the requests         |
| find a lost one      | by tags, or by input file; else unknowable | by created time and request count        |
| poll many            | listing in pages, GET for the rest         | listing in pages, GET for the rest       |
| cancel, delete       | cancel; delete files                       | cancel; delete the ended batch           |
| results              | output and error files                     | one JSONL stream                         |
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ApiError
from ..state.batch_state import BatchState


@dataclass(frozen=True)
class Capabilities:
    """What a provider's server offers, which decides how a run submits and finds things again."""

    upload_needed: bool  # a shard's file is uploaded before its batch is made from it
    tags_kept: bool  # a batch keeps the tags (metadata) it was made with: a lost one is found by them
    batches_listed: bool  # batches can be listed: lost ones are searched for
    files_listed: bool  # uploaded files can be listed: a lost upload is found again


class ProviderError(ApiError):
    """A provider refused a call or could not be reached: one line, and what the run needs to decide.

    `status` is the HTTP status (None when no answer came); `unreachable` says nothing listened at
    the address or its name did not resolve; `connection` that the connection failed or timed out.
    """

    def __init__(
        self, message: str, *, status: int | None = None, unreachable: bool = False, connection: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable
        self.connection = connection


class ListingMissing(ProviderError):
    """The server has no such listing (some compatible servers offer no batches or files list)."""


# A request's result in no provider's words: what `answers/` reads of a result line, whichever provider
# wrote it. Plain tuples, not objects: collate reads a million of them, and a tuple is made several
# times faster than a NamedTuple.
#
# The answer: (the answer itself: the text, an embedding vector or a moderation's flag; the refusal; the
# finish reason, in chat completions' words; a moderation's flagged categories; then the prompt,
# completion and total tokens).
Answer = tuple[Any, str | None, str | None, str | None, int | None, int | None, int | None]
NO_ANSWER: Answer = (None, None, None, None, None, None, None)
# A request that did not succeed: (api_status: error, expired or cancelled; the error, "code: message";
# the code; whether a later attempt may succeed).
Failure = tuple[str, str, str, bool]
# One result line: (the row's id, its answer, and its failure: None when it succeeded).
ResultRecord = tuple[str, Answer, Failure | None]


@dataclass(frozen=True)
class Lookup:
    """What a search for a lost submission found: a batch, nothing, or that it cannot be known."""

    batch: BatchState | None = None
    unknowable: str | None = None  # why it cannot be known; the words of the error that stops the run

    @property
    def found(self) -> bool:
        return self.batch is not None


@dataclass(frozen=True)
class InlineShard:
    """A shard as a provider without uploads sends it: its request file, and the tags of this creation.

    Such a provider keeps no tags: it marks the requests themselves (their custom ids) with what the
    tags say, and reads them back from a batch's results to know it again.
    """

    path: Path  # the shard's request file: a line per row, its id and the request body
    index: int  # the shard's number in its attempt
    tags: dict[str, str]  # what tags would say of this creation (run, shard, submission)


class Provider(Protocol):
    """One session with a provider; its calls retry transient failures and never pay twice."""

    capabilities: Capabilities
    notices: list[str]  # what the commands tell the user about a server that offers less, once each
    calls: int  # calls made, retries included

    def upload(self, path: Path, *, name: str) -> str:
        """Upload a shard file under `name` (how it is found again); return its file id."""

    def find_uploads(self, sizes: dict[str, int]) -> dict[str, str]:
        """The file ids of the uploads among `sizes` (name: size) that reached the server."""

    def create(
        self, *, input_file_id: str, endpoint: str, tags: dict[str, str], since: int, exclude: Collection[str]
    ) -> BatchState:
        """Make a batch of an uploaded shard, carrying `tags`."""

    def find_submission(
        self, *, tags: dict[str, str], since: int, input_file_id: str | None, exclude: Collection[str]
    ) -> Lookup:
        """The batch a creation whose answer was lost made, if it made one, or why that cannot be known."""

    def poll(self, batches: Collection[BatchState | str], *, workers: int) -> dict[str, BatchState]:
        """The batches as they stand now, by id, in as few calls as it takes."""

    def list_batches(self) -> Iterator[BatchState]:
        """Every batch, newest first (ListingMissing when the server lists none)."""

    def cancel(self, batch_id: str) -> BatchState:
        """Cancel a batch; one that finished meanwhile is returned as it now stands."""

    def download(self, file_id: str, dest: Path) -> Path:
        """A result or input file's content at `dest`, whole or not at all."""

    def file_exists(self, file_id: str) -> bool:
        """Whether a file is still on the server."""

    def delete_file(self, file_id: str) -> bool:
        """Delete a file the run made; False when it was gone already."""

    def answer_now(self, endpoint: str, body: dict) -> tuple[dict | None, str | None]:
        """One request answered at once, at full price (a pilot): (its response body, None), or (None, why)
        when the server refused the request itself."""

    def stop(self) -> None:
        """Make no more calls: a call under way ends as it is (the step was interrupted)."""

    # Providers without uploads (capabilities.upload_needed False) take a shard's requests in the
    # creation itself, and give its results as one stream, named by the batch.

    def create_inline(self, shard: InlineShard, *, since: int, exclude: Collection[str]) -> BatchState:
        """Make the batch of a shard's requests, sent in the creation."""

    def find_inline_submission(self, shard: InlineShard, *, since: int, exclude: Collection[str]) -> Lookup:
        """The batch a creation of `shard` whose answer was lost made, if it made one, or why that cannot be known."""

    def download_inline(self, batch_id: str, dest: Path, *, shard: InlineShard) -> Path:
        """An ended batch's results at `dest`, each on its row's id, whole or not at all."""
