"""A pilot before the spend: a few rows answered at once through the synchronous endpoint, at full price.

The whole table is checked and built first, as a run's would be. The chosen rows (the first N, or a
seeded sample) are sent one request each, and every answer is saved in the run store as it arrives,
keyed by its request's hash: the run's next attempt does not send those rows again, and collate takes
their answers. A pilot killed halfway keeps the answers it had; only the calls in flight when it died
are bought again. The answers measure the output tokens, from which the whole run's cost is estimated
again.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ..config import Config
from ..costs.pricing import CostEstimate, estimate_cost, format_usd
from ..files.parallel import run_in_parallel
from ..layout import PILOT_PREFIX, tasks_dir
from ..providers.base import Provider
from ..requests import write_shards
from ..requests.request_hashes import line_requests
from ..state.ledger import Ledger, new_run_id, request_sha256
from ..state.row_requests import PilotAnswer, answer_usage, save_pilot_answer
from ..state.run_store import RunStore

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class PilotRequest:
    custom_id: str
    request_sha256: str
    body: dict


@dataclass(frozen=True)
class TableRequests:
    """Every row's request as the table has it now, in input order, and the plan's input token estimate."""

    requests: list[PilotRequest]
    input_tokens: int
    token_method: str


def table_requests(config: Config) -> TableRequests:
    """Check and build every row's request (nothing is kept on disk)."""
    config.data_path.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=PILOT_PREFIX, dir=config.data_path))
    try:
        plan = write_shards(config, out_dir=tasks_dir(scratch))
        requests = [
            PilotRequest(custom_id, digest, body)
            for shard in plan.shards
            for custom_id, digest, body in line_requests(shard.path)
        ]
        return TableRequests(requests, plan.prompt_tokens, plan.token_method)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def choose_rows(
    requests: list[PilotRequest], held: dict[str, dict[str, str]], *, rows: int, seed: int | None
) -> tuple[list[PilotRequest], list[PilotRequest]]:
    """(the pilot's rows, those of them to send): the first `rows` rows of the table, or a sample drawn
    with `seed`; a row whose request the run holds already (answered by an earlier pilot, or in a batch)
    is not sent again, so a pilot run again after an interruption sends only what it had not got."""
    if seed is None or rows >= len(requests):
        chosen = requests[:rows]
    else:
        picked = set(random.Random(seed).sample(range(len(requests)), rows))
        chosen = [r for i, r in enumerate(requests) if i in picked]  # in input order
    known = {(custom_id, digest) for requests_of in held.values() for custom_id, digest in requests_of.items()}
    return chosen, [r for r in chosen if (r.custom_id, r.request_sha256) not in known]


def new_pilot_ledger(config: Config, *, input_hash: str, token_method: str) -> Ledger:
    """A run whose only answers so far are the pilot's: no attempt, no shard yet."""
    return Ledger(
        run_id=new_run_id(),
        created_at=int(time.time()),
        input_sha256=input_hash,
        request_sha256=request_sha256(config),
        rows=0,
        token_method=token_method,
        attempts=0,
    )


@dataclass(frozen=True)
class PilotFailure:
    custom_id: str
    message: str


@dataclass
class PilotCalls:
    """What the pilot's calls brought: answers saved, refusals."""

    answered: list[PilotAnswer] = field(default_factory=list)
    failures: list[PilotFailure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def answer_rows(api: Provider, store: RunStore, config: Config, chosen: list[PilotRequest]) -> PilotCalls:
    """Send each chosen row's request synchronously; each answer is saved as it arrives."""
    calls = PilotCalls()

    def answer(request: PilotRequest) -> None:
        # The server's trouble (5xx, 429 after the retries) stops the pilot, keeping what it has.
        body, refused = api.answer_now(config.endpoint, request.body)
        if body is None:  # the row's own trouble: reported, and left for the batch
            with calls.lock:
                calls.failures.append(PilotFailure(request.custom_id, refused or "refused"))
            return
        line = orjson.dumps(
            {
                "id": f"pilot_{request.request_sha256[:24]}",
                "custom_id": request.custom_id,
                "response": {"status_code": 200, "request_id": None, "body": body},
                "error": None,
                "request_sha256": request.request_sha256,
            }
        )
        saved = PilotAnswer(request.custom_id, request.request_sha256, line + b"\n")
        save_pilot_answer(store, saved)
        with calls.lock:
            calls.answered.append(saved)

    run_in_parallel(answer, chosen, workers=config.concurrency)
    return calls


@dataclass(frozen=True)
class PilotEstimate:
    """The run's cost estimated again from the output the pilot measured."""

    rows: int  # every row of the table
    measured_rows: int  # answers the output was measured on (this pilot's and earlier ones')
    measured_output_tokens: int
    input_tokens: int  # of the whole table, estimated as create-batch does
    token_method: str
    estimate: CostEstimate | None  # at batch prices; None for a model with no known price

    @property
    def output_tokens_per_row(self) -> float:
        return self.measured_output_tokens / self.measured_rows if self.measured_rows else 0.0


def estimate_from_pilot(config: Config, table: TableRequests, answers: list[PilotAnswer]) -> PilotEstimate:
    measured = sum(answer_usage(answer)[1] for answer in answers)
    rows = len(table.requests)
    per_row = measured / len(answers) if answers else 0.0
    estimate = estimate_cost(
        model=config.model,
        input_tokens=table.input_tokens,
        output_tokens=round(per_row * rows),
        overrides=config.prices,
    )
    return PilotEstimate(rows, len(answers), measured, table.input_tokens, table.token_method, estimate)


def check_pilot_cost(config: Config, estimate: PilotEstimate) -> str | None:
    """Why the run would break max_cost by the pilot's measure (a message), or None."""
    if config.max_cost is None or estimate.estimate is None:
        return None
    if estimate.estimate.total_usd <= config.max_cost:
        return None
    return (
        f"{config.path}: by the output the pilot measured ({estimate.output_tokens_per_row:,.1f} tokens a row), "
        f"the run's {estimate.rows:,} rows would cost about {format_usd(estimate.estimate.total_usd)} at batch "
        f"prices, above max_cost ${config.max_cost:g}; raise max_cost, lower max_tokens, or submit fewer rows"
    )


def pilot_cost(config: Config, answers: list[PilotAnswer]) -> CostEstimate | None:
    """What the pilot's answers cost, at the synchronous endpoint's full price."""
    used = [answer_usage(answer) for answer in answers]
    return estimate_cost(
        model=config.model,
        input_tokens=sum(u[0] for u in used),
        output_tokens=sum(u[1] for u in used),
        overrides=config.prices,
        batch=False,
    )


def pilot_table(config: Config, answers: list[PilotAnswer], order: list[str]) -> pd.DataFrame:
    """The piloted rows' ids with their answer columns (a JSON schema's fields included), in `order`."""
    import pandas as pd

    from ..answers import result_columns as columns
    from ..answers.added_columns import answer_format
    from ..answers.results import expand_structured_answers, load_results

    config.data_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=PILOT_PREFIX, dir=config.data_path) as scratch:
        path = Path(scratch) / "pilot.jsonl"
        path.write_bytes(b"".join(answer.line for answer in answers))
        results = load_results([path])
    ids = [custom_id for custom_id in order if custom_id in results.index]
    results = results.reindex(pd.Index(ids))
    table = pd.DataFrame({config.id_column: ids})
    structured = expand_structured_answers(
        results[columns.OUTPUT].reset_index(drop=True),
        response_format=answer_format(config),
        prefix=config.answer_column_prefix,
    )
    fields = [c for c in structured.columns if c != columns.JSON_ERROR]
    if not fields:  # no JSON schema: the answer's text (with a schema, its fields say it)
        table[columns.OUTPUT] = results[columns.OUTPUT].to_numpy()
    for column in fields:
        table[column] = structured[column].to_numpy()
    if columns.JSON_ERROR in structured and structured[columns.JSON_ERROR].notna().any():
        table[columns.JSON_ERROR] = structured[columns.JSON_ERROR].to_numpy()
    table[columns.COMPLETION_TOKENS] = results[columns.COMPLETION_TOKENS].to_numpy()
    return table

