"""Turning the input table into a run: shard files on disk, run records, a cost estimate."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..costs.pricing import CostEstimate, estimate_cost, format_usd, max_output_tokens
from ..errors import BatchToolError, ConfigError, CostOverLimitError, InputError, with_filename
from ..layout import TASKS_DIR as TASKS_DIR
from ..layout import attempt_dir as attempt_dir
from ..requests import ShardPlan, remove_shards, write_shards
from ..state.ledger import Ledger, ShardRecord, new_run_id, request_sha256


def input_sha256(config: Config) -> str:
    """A digest of the input table: of its bytes, or in object storage of its objects' keys, sizes and ETags."""
    from ..files.table import input_digest  # pyarrow: loaded by the steps that read the table

    try:
        return input_digest(config.input_file)
    except FileNotFoundError:
        raise InputError(
            f"{config.name}: input_file {config.input_file} does not exist; fix the path in the config"
        ) from None


def plan_attempt(
    config: Config, *, out_dir: Path, only_ids: Collection[str] | None = None
) -> tuple[ShardPlan, CostReport]:
    """Validate the table, write one attempt's shard files into `out_dir`, and check the limits.

    When a limit refuses the plan (max_cost, max_enqueued_tokens), its files are removed again.
    """
    # Left by an attempt that crashed before its run state was saved: nothing refers to its shards.
    if out_dir.exists() and not remove_shards(out_dir, keep=config.input_file):
        raise BatchToolError(
            f"{out_dir}: holds files create-batch did not write; move them out of this folder and run "
            "the command again"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        plan = write_shards(config, out_dir=out_dir, only_ids=only_ids)
    except OSError as exc:
        raise with_filename(exc, out_dir) from None  # a full disk names the folder (write_shards cleaned up)
    try:
        cost = estimate_plan_cost(config, plan)
        check_max_cost(config, cost)
        check_token_limit(config, plan)
    except BatchToolError:
        remove_shards(out_dir, keep=config.input_file)
        raise
    return plan, cost


def check_token_limit(config: Config, plan: ShardPlan) -> None:
    limit = config.max_enqueued_tokens
    too_big = [s for s in plan.shards if limit is not None and s.prompt_tokens > limit]
    if too_big:
        raise ConfigError(
            f"{config.name}: shard {too_big[0].index} holds about {too_big[0].prompt_tokens:,} prompt tokens, more "
            f"than max_enqueued_tokens ({limit:,}), so it could never be submitted; lower batch_size"
        )


def shard_records(plan: ShardPlan, *, attempt: int, data_path: Path) -> list[ShardRecord]:
    return [
        ShardRecord(
            key=f"a{attempt}-s{shard.index:04d}",
            attempt=attempt,
            index=shard.index,
            path=shard.path.relative_to(data_path).as_posix(),
            rows=shard.rows,
            bytes=shard.bytes,
            sha256=shard.sha256,
            prompt_tokens=shard.prompt_tokens,
        )
        for shard in plan.shards
    ]


def new_ledger(config: Config, plan: ShardPlan, *, input_hash: str) -> Ledger:
    return Ledger(
        run_id=new_run_id(),
        created_at=int(time.time()),
        input_sha256=input_hash,
        request_sha256=request_sha256(config),
        rows=plan.rows,
        token_method=plan.token_method,
        shards=shard_records(plan, attempt=1, data_path=config.data_path),
    )


@dataclass(frozen=True)
class CostReport:
    """What a plan will cost at batch prices, as far as it can be known before it runs."""

    model: str
    requests: int
    input_tokens: int
    token_method: str
    output_tokens_max: int | None  # None: no max_tokens, so output is unbounded
    estimate: CostEstimate | None  # None: the model has no known price


def estimate_plan_cost(config: Config, plan: ShardPlan) -> CostReport:
    per_request = max_output_tokens(config.model_params, endpoint=config.endpoint)
    output_max = per_request * plan.rows if per_request is not None else None
    estimate = estimate_cost(
        model=config.model,
        input_tokens=plan.prompt_tokens,
        output_tokens=output_max or 0,
        overrides=config.prices,
    )
    return CostReport(
        model=config.model,
        requests=plan.rows,
        input_tokens=plan.prompt_tokens,
        token_method=plan.token_method,
        output_tokens_max=output_max,
        estimate=estimate,
    )


def check_max_cost(config: Config, cost: CostReport) -> None:
    """Refuse a plan whose estimate passes `max_cost`, or whose cost cannot be bounded."""
    if config.max_cost is None:
        return
    if cost.estimate is None:
        raise CostOverLimitError(
            f"{config.name}: max_cost is set but model '{cost.model}' has no known price; "
            "add it under `prices:` in the config"
        )
    if cost.output_tokens_max is None:
        raise CostOverLimitError(
            f"{config.name}: max_cost is set but the output is unbounded; set max_tokens or "
            "max_completion_tokens in model_params"
        )
    if cost.estimate.total_usd > config.max_cost:
        raise CostOverLimitError(
            f"{config.name}: the estimated cost, at most {format_usd(cost.estimate.total_usd)}, is above max_cost "
            f"${config.max_cost:g}; raise max_cost, lower max_tokens, or submit fewer rows"
        )
