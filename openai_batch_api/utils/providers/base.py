"""The seam between a run and a batch provider: what every provider offers, in the run's terms.

The run's steps (`utils/lifecycle/`) speak only this: capabilities, submitting a shard (each of the
provider's submission steps behind an intent the store records first), finding a lost submission
again, polling many batches, cancelling, fetching results, and listing and deleting what the run
made. Batches are `BatchState`s; failures are the package's errors (`ProviderError`), never a
provider SDK's own. A shard's request file is the neutral form of its requests (`ShardSubmission`),
which the provider encodes as it sends them; the result files it fetches are read by
`result_lines.py` into neutral result records (`ResultRecord`), or a file of successes at once into
their columns (`ANSWER_TABLE_COLUMNS`): all that `utils/answers/` sees.

| operation            | OpenAI files + batches (`openai.py`)     | Anthropic Message Batches (`anthropic.py`)  |
|----------------------|------------------------------------------|---------------------------------------------|
| capabilities         | steps upload, create; tags kept; batches | step create; no tags; batches listed        |
|                      | and files listed                         |                                             |
| encode a request     | the neutral line as is (uploaded as is)  | `{custom_id: <tag>-<shard>-<line>, params}` |
| submit_shard         | upload, then create with tags            | one create carrying the requests            |
| find_lost_submission | by tags, or by input file; else          | by created time and request count, then the |
|                      | unknowable                               | custom ids of its results; else unknowable  |
| poll, list_batches   | listing in pages, GET for the rest       | listing in pages, GET for the rest          |
| cancel, delete       | cancel; delete files                     | cancel; delete the ended batch              |
| fetch_results        | output and error files, as written       | one JSONL stream, on the rows' ids again    |
| result records       | `openai_results.py`                      | `anthropic_results.py`                      |
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ApiError
from ..state.batch_state import BatchState


@dataclass(frozen=True)
class Capabilities:
    """What a provider's server offers, which decides how a run submits and finds things again."""

    # The calls that make a shard's batch, in order, each behind an intent the run records first:
    # ("upload", "create") where a shard's file is uploaded and the batch made from it, ("create",) where
    # one creation carries the requests.
    submission_steps: tuple[str, ...]
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
# A result file whose every line succeeded, as columns instead of records (result_lines.read_answer_table):
# an Arrow table of the row ids and the answers' fields, in Answer's order less the categories (a
# moderation's, which no columnar reader gives).
ANSWER_TABLE_COLUMNS = (
    "custom_id",
    "output",
    "refusal",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
)


@dataclass(frozen=True)
class Lookup:
    """What a search for a lost submission found: a batch, nothing, or that it cannot be known."""

    batch: BatchState | None = None
    unknowable: str | None = None  # why it cannot be known; the words of the error that stops the run

    @property
    def found(self) -> bool:
        return self.batch is not None


@dataclass(frozen=True)
class ShardSubmission:
    """One creation of a shard's batch as the run hands it to a provider: what to send, and how to know it again.

    The request file is the run's neutral form, a line per row: `{"custom_id": the row's id, "method",
    "url", "body": the request}`. It is OpenAI's batch input line as is, so that provider uploads the file
    unchanged (and the shard's sha256, which its batches carry, is the file's); another provider encodes
    each line into its own request when it sends them (Anthropic: `{"custom_id": <tag>-<shard>-<line>,
    "params": body}`). A provider that keeps no tags marks the requests themselves with what the tags say
    (their custom ids), and reads them back from a batch's results to know it again.
    """

    path: Path  # the shard's request file
    index: int  # the shard's number in its attempt
    name: str  # the name an upload of it carries: how a lost upload is found again
    endpoint: str  # where its requests go, e.g. /v1/chat/completions
    tags: dict[str, str]  # this creation (run, shard, submission): how a lost one is found again
    origin: dict[str, str]  # the run's input and data folder: a batch carries them too, where tags are kept
    since: int  # when the run began, by this machine's clock
    exclude: Collection[str]  # batches the run knows as its own: none of them is a lost creation's
    file_id: str | None = None  # its upload, when one was made already


class Intents(Protocol):
    """The run's record of one shard's submission: each step's intent is saved before its call is made.

    A crash between a call and the saving of its answer leaves the intent open, and the next step
    looks for what the call made (find_lost_submission, find_uploads) before anything is made again.
    """

    def begin(self, step: str) -> None:
        """Save that `step` (one of capabilities.submission_steps) is about to be made; nothing when it is already."""

    def uploaded(self, file_id: str) -> None:
        """Save the upload's answer, the file the creation is made from."""


class Provider(Protocol):
    """One session with a provider; its calls retry transient failures and never pay twice.

    The run's steps call only these. A provider reads and writes its own formats: it encodes the
    shard's neutral request lines into its requests when it sends them, and fetches results as it gives
    them, which `result_lines.read_result_file` reads into neutral result records.
    """

    capabilities: Capabilities
    notices: list[str]  # what the commands tell the user about a server that offers less, once each
    calls: int  # calls made, retries included

    # Submitting, and finding a lost submission again

    def submit_shard(self, shard: ShardSubmission, intents: Intents) -> BatchState:
        """Make the batch of a shard, each of the submission steps saved in `intents` before its call.

        After a lost answer the batch the call made is found and returned; when that cannot be known,
        ProviderError (LostCreationError where the server cannot be searched), and nothing is made again.
        """

    def find_lost_submission(self, shard: ShardSubmission) -> Lookup:
        """The batch a creation of `shard` whose answer was lost made, if it made one, or why that cannot
        be known (LostCreationError where the server cannot be searched at all)."""

    def find_uploads(self, sizes: dict[str, int]) -> dict[str, str]:
        """The file ids of the uploads among `sizes` (name: size) that reached the server (none for a
        provider that uploads nothing)."""

    # Batches

    def poll(self, wanted: Mapping[str, int], *, workers: int) -> dict[str, BatchState]:
        """The batches `wanted` (id: created_at, 0 when unknown) as they stand now, by id, in as few calls
        as it takes."""

    def list_batches(self) -> Iterator[BatchState]:
        """Every batch, newest first (ListingMissing when the server lists none)."""

    def cancel(self, batch_id: str) -> BatchState:
        """Cancel a batch; one that finished meanwhile is returned as it now stands."""

    # Results and files

    def fetch_results(self, file_id: str, dest: Path, *, shard: ShardSubmission) -> Path:
        """A finished batch's result file `file_id` (a BatchState's output or error file) at `dest`, whole
        or not at all, each line on its row's id, in the provider's own line format."""

    def download(self, file_id: str, dest: Path) -> Path:
        """A file the run made on the server (a batch's input file) at `dest`, whole or not at all."""

    def file_exists(self, file_id: str) -> bool:
        """Whether a file is still on the server."""

    def delete_file(self, file_id: str) -> bool:
        """Delete a file the run made; False when it was gone already."""

    def answer_now(self, endpoint: str, body: dict) -> tuple[dict | None, str | None]:
        """One request answered at once, at full price (a pilot): (its response body, None), or (None, why)
        when the server refused the request itself."""

    def stop(self) -> None:
        """Make no more calls: a call under way ends as it is (the step was interrupted)."""
