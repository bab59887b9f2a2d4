"""Model prices and cost estimates: a table shipped in the package, overridden or extended by the config."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..endpoints import CHAT, COMPLETIONS, EMBEDDINGS, MODERATIONS
from ..errors import ConfigError

# The Batch API bills half the standard price of input and output tokens.
BATCH_DISCOUNT = 0.5
PER_MILLION = 1_000_000
# What /v1/completions produces at most when the request sets no max_tokens.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16

# USD per 1M tokens at STANDARD (non-batch) prices: (input, output). Taken from OpenAI's public pricing
# page (openai.com/api/pricing) as listed in August 2025. Prices change: the config's `prices:` key
# overrides or extends this table, and a model missing from both gets no estimate rather than a guess.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    # The first gpt-4o snapshot kept its launch price.
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-instruct": (1.50, 2.00),
    # Embeddings bill input tokens only.
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
    # Moderations are free.
    "omni-moderation-latest": (0.0, 0.0),
    "text-moderation-latest": (0.0, 0.0),
    # Anthropic's Claude models, from anthropic.com/pricing as listed in November 2025. Message
    # Batches bill half of these, the same discount as OpenAI's Batch API.
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-haiku": (0.25, 1.25),
}
TABLE_SOURCE = "package price table (August 2025)"
CLAUDE_TABLE_SOURCE = "package price table (Anthropic, November 2025)"
CONFIG_SOURCE = "config prices"

# A dated snapshot ("gpt-4o-mini-2024-07-18", "gpt-3.5-turbo-0125", "claude-sonnet-4-5-20250929") or
# Anthropic's alias of the newest one ("claude-3-5-haiku-latest") is billed like its base name.
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)$")


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens at standard prices, and where the figure came from."""

    model: str  # the name the price is listed under (a snapshot's base name, when it fell back)
    input: float
    output: float
    source: str


@dataclass(frozen=True)
class CostEstimate:
    """Tokens and their cost in USD; prices are batch prices unless estimated with batch=False."""

    input_tokens: int
    output_tokens: int
    input_usd: float
    output_usd: float
    total_usd: float
    price: ModelPrice


def _price_from_override(model: str, entry: Any) -> ModelPrice:
    """A config `prices:` entry as a ModelPrice; a malformed entry is the user's to fix."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"prices.{model}: expected {{input: ..., output: ...}} in USD per 1M tokens")
    values = {}
    for key in ("input", "output"):
        value = entry.get(key, 0.0 if key == "output" else None)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or value < 0:
            raise ConfigError(
                f"prices.{model}.{key}: expected a number of USD per 1M tokens (>= 0), got {value!r}"
            )
        values[key] = float(value)
    return ModelPrice(model=model, input=values["input"], output=values["output"], source=CONFIG_SOURCE)


def resolve_price(model: str, overrides: Mapping[str, Any] | None = None) -> ModelPrice | None:
    """The standard price of `model`: the config's `prices:` first, then the package table.

    A dated snapshot falls back to its base name. An unknown model returns None, never a guess.
    """
    overrides = overrides or {}
    candidates = [model]
    base = _SNAPSHOT_SUFFIX.sub("", model)
    if base != model:
        candidates.append(base)
    for name in candidates:
        if name in overrides:
            return _price_from_override(name, overrides[name])
        if name in PRICES:
            input_price, output_price = PRICES[name]
            source = CLAUDE_TABLE_SOURCE if name.startswith("claude") else TABLE_SOURCE
            return ModelPrice(model=name, input=input_price, output=output_price, source=source)
    return None


def estimate_cost(
    *,
    model: str,
    input_tokens: int,
    output_tokens: int,
    overrides: Mapping[str, Any] | None = None,
    batch: bool = True,
) -> CostEstimate | None:
    """Cost of the tokens at batch prices (half of standard), or None when the model has no known price."""
    price = resolve_price(model, overrides)
    if price is None:
        return None
    factor = BATCH_DISCOUNT if batch else 1.0
    input_usd = input_tokens * price.input * factor / PER_MILLION
    output_usd = output_tokens * price.output * factor / PER_MILLION
    return CostEstimate(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        input_usd=input_usd,
        output_usd=output_usd,
        total_usd=input_usd + output_usd,
        price=price,
    )


def max_output_tokens(model_params: Mapping[str, Any], *, endpoint: str = CHAT) -> int | None:
    """The most output tokens one request may produce, from the model parameters; None when unbounded.

    Embeddings and moderations produce none; a legacy completion stops at 16 unless max_tokens says otherwise.
    """
    if endpoint in (EMBEDDINGS, MODERATIONS):
        return 0
    if endpoint == COMPLETIONS and model_params.get("max_tokens") is None:
        return COMPLETIONS_DEFAULT_MAX_TOKENS
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = model_params.get(key)
        if value is not None and not isinstance(value, bool) and isinstance(value, int):
            return value
    return None


def format_usd(amount: float) -> str:
    """A dollar amount for people: cents above one cent, two significant digits below ("$0.00038")."""
    if amount < 0:
        return "-" + format_usd(-amount)
    if amount == 0:
        return "$0.00"
    if amount >= 0.01:
        return f"${amount:,.2f}"
    if amount < 1e-6:
        return "<$0.000001"
    digits = 1 - math.floor(math.log10(amount))
    return f"${amount:.{digits}f}"
