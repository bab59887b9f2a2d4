"""What `Run`'s steps return: one dataclass per step, data rather than printed text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from .utils.answers.results import FailureGroup
    from .utils.costs.pricing import CostEstimate
    from .utils.files.table import LineBreakCells
    from .utils.lifecycle.continuation import Continued
    from .utils.lifecycle.pilot import PilotEstimate, PilotFailure
    from .utils.lifecycle.planning import CostReport
    from .utils.lifecycle.submission import RunProgress
    from .utils.state.ledger import Ledger


@dataclass(frozen=True)
class Created:
    """The run `create` made, found, or (on a dry run) would make."""

    run_id: str | None  # None on a dry run
    rows: int
    shards: int
    bytes: int
    new: bool  # False when data_path already held this run
    dry_run: bool = False
    task_dir: Path | None = None  # where the shard files were written (a new run)
    cost: CostReport | None = None  # the estimate (a new run, or a dry run)
    line_breaks: LineBreakCells | None = None
    missing_cells: dict[str, int] = field(default_factory=dict)
    adopted_batches: int = 0  # batches of a lost run put back on their shards (create with adopt)
    notices: list[str] = field(default_factory=list)  # e.g. the server cannot list batches
    # A run that took up a changed table: the rows reused, new, edited and removed, and the attempt sent.
    continued: Continued | None = None


@dataclass(frozen=True)
class Piloted:
    """What a pilot answered at once, and the run's cost estimated again from the output it measured."""

    run_id: str
    new_run: bool  # the pilot made the run in data_path
    endpoint: str
    model: str
    chosen: int  # the pilot's rows
    held: int  # of them, rows the run holds already (an earlier pilot's answer, a batch): not sent again
    answered: int  # rows answered now (the others sent are in `failures`)
    failures: list[PilotFailure]
    table: pd.DataFrame  # the answered rows' ids and answer columns
    cost: CostEstimate | None  # what the pilot's calls cost, at full price
    estimate: PilotEstimate  # the whole run at batch prices, by the measured output


@dataclass(frozen=True)
class Submitted:
    """What `submit` did: batches found again after a crash, created now, and left queued."""

    run_id: str
    rows: int
    shards: int
    batches: int  # batches on the API side, over the whole run
    submitted: int  # batches created by this call
    was_waiting: int  # shards that were waiting for a batch before this call
    queued: int  # shards still waiting (the enqueued-token limit)
    requeued: int  # batches refused for the token limit, back in the queue
    found: list[str]  # "shard: file/batch id" found again after an interrupted run
    notices: list[str]  # what the API layer learned about the server (limits it lacks)


@dataclass(frozen=True)
class Retried:
    """The attempt `retry` added, or `rows == 0` when no row needed one."""

    run_id: str
    attempt: int
    rows: int
    shards: int
    cost: CostReport | None
    found: list[str]


@dataclass(frozen=True)
class PilotUsage:
    """What the pilot's answers used and cost: they were answered at once, at the full price."""

    rows: int
    input_tokens: int
    output_tokens: int
    cost: CostEstimate | None  # None when the model has no known price


@dataclass(frozen=True)
class RunStatus:
    """Where the run stands: its shards with their batches, counts, and why rows failed."""

    ledger: Ledger
    progress: RunProgress
    failures: list[FailureGroup]
    input_tokens: int  # the usage the API reported for the batches
    output_tokens: int
    api_calls: int  # the HTTP calls this look made
    pilot: PilotUsage | None = None  # the pilot's answers, billed apart at full price

    @property
    def run_id(self) -> str:
        return self.ledger.run_id

    @property
    def finished(self) -> bool:
        return self.progress.finished

    def _repr_html_(self) -> str:
        """How a notebook shows it: batches per state, a progress bar, the batches that need attention."""
        from .status_html import status_html

        return status_html(self)


@dataclass(frozen=True)
class Cancelled:
    """What `cancel` did; `cancelled` is False when there was nothing to cancel or it was declined."""

    run_id: str
    running: int
    queued: int
    cancelled: bool


@dataclass(frozen=True)
class Collated:
    """The input table with the answer columns, and what the summary of it needs."""

    table: pd.DataFrame | None  # None when collate was asked to write output_file only
    output_file: Path | None  # where the table was written, when the config names a file
    status_counts: dict[str, int]  # rows per api_status
    failures: list[FailureGroup]
    retryable_rows: int
    ledger: Ledger
    rows: int = 0
    json_errors: int = 0  # answers that did not parse as the JSON asked for (api_json_error)
    finish_reasons: dict[str, int] = field(default_factory=dict)  # answers per api_finish_reason
    refusals: int = 0  # answers the model refused (api_refusal)
    input_tokens: int = 0  # the usage the API reported, over every row the batches answered
    output_tokens: int = 0
    pilot: PilotUsage | None = None  # the pilot's answers, billed apart at full price

    @property
    def pending(self) -> int:
        return self.status_counts.get("pending", 0)


@dataclass(frozen=True)
class Deleted:
    """What `delete` removed; `deleted` is False when there was no run or it was declined."""

    run_id: str | None
    local_files: int = 0
    remote_files: int = 0
    deleted: bool = False
    cancelled_batches: int = 0  # running batches `force` cancelled first (to be cancelled, in the plan)
