"""Prices from the package table and the config, batch cost estimates, and how they are printed."""

from __future__ import annotations

import pytest

from openai_batch_api.utils.costs.pricing import (
    BATCH_DISCOUNT,
    CONFIG_SOURCE,
    PRICES,
    TABLE_SOURCE,
    CostEstimate,
    ModelPrice,
    estimate_cost,
    format_usd,
    max_output_tokens,
    resolve_price,
)
from openai_batch_api.utils.errors import BatchToolError

COMMON_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "o3",
    "o4-mini",
    "o1",
    "gpt-4-turbo",
    "gpt-3.5-turbo",
    "text-embedding-3-small",
    "text-embedding-3-large",
]


@pytest.mark.parametrize("model", COMMON_MODELS)
def test_price_table_lists_common_models(model):
    price = resolve_price(model)
    input_price, output_price = PRICES[model]
    assert price == ModelPrice(model=model, input=input_price, output=output_price, source=TABLE_SOURCE)
    assert price.input > 0


def test_resolve_price_dated_snapshot_falls_back_to_base_name():
    assert resolve_price("gpt-4o-mini-2024-07-18") == ModelPrice("gpt-4o-mini", 0.15, 0.60, TABLE_SOURCE)
    assert resolve_price("gpt-3.5-turbo-0125") == ModelPrice("gpt-3.5-turbo", 0.50, 1.50, TABLE_SOURCE)
    # A snapshot listed on its own keeps its own price.
    assert resolve_price("gpt-4o-2024-05-13") == ModelPrice("gpt-4o-2024-05-13", 5.00, 15.00, TABLE_SOURCE)


def test_resolve_price_unknown_model_is_none():
    assert resolve_price("my-finetune") is None
    assert resolve_price("ft:gpt-4o-mini-2024-07-18:org::abc") is None
    assert estimate_cost(model="my-finetune", input_tokens=1000, output_tokens=10) is None


def test_resolve_price_config_overrides_and_extends_table():
    overrides = {"gpt-4o-mini": {"input": 1.0, "output": 2.0}, "local-llama": {"input": 0.0, "output": 0.0}}
    assert resolve_price("gpt-4o-mini", overrides) == ModelPrice("gpt-4o-mini", 1.0, 2.0, CONFIG_SOURCE)
    snapshot = resolve_price("gpt-4o-mini-2024-07-18", overrides)
    assert snapshot == ModelPrice("gpt-4o-mini", 1.0, 2.0, CONFIG_SOURCE)
    assert resolve_price("local-llama", overrides) == ModelPrice("local-llama", 0.0, 0.0, CONFIG_SOURCE)
    assert resolve_price("gpt-4o", overrides).source == TABLE_SOURCE


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("cheap", "prices.m: expected {input: ..., output: ...} in USD per 1M tokens"),
        ({"output": 1}, "prices.m.input: expected a number of USD per 1M tokens (>= 0), got None"),
        ({"input": -1, "output": 1}, "prices.m.input: expected a number of USD per 1M tokens (>= 0), got -1"),
        (
            {"input": 1, "output": "2"},
            "prices.m.output: expected a number of USD per 1M tokens (>= 0), got '2'",
        ),
    ],
)
def test_resolve_price_malformed_override_error(entry, message):
    with pytest.raises(BatchToolError) as caught:
        resolve_price("m", {"m": entry})
    assert str(caught.value) == message


def test_estimate_cost_hand_computation_at_batch_prices():
    # 1,000 requests of 1,200 prompt tokens and at most 300 output tokens on gpt-4o-mini:
    # input  1,200,000 tokens x $0.15 / 1M x 0.5 = $0.09
    # output   300,000 tokens x $0.60 / 1M x 0.5 = $0.09
    estimate = estimate_cost(model="gpt-4o-mini", input_tokens=1_200_000, output_tokens=300_000)
    assert estimate == CostEstimate(
        input_tokens=1_200_000,
        output_tokens=300_000,
        input_usd=pytest.approx(0.09),
        output_usd=pytest.approx(0.09),
        total_usd=pytest.approx(0.18),
        price=ModelPrice("gpt-4o-mini", 0.15, 0.60, TABLE_SOURCE),
    )
    assert BATCH_DISCOUNT == 0.5


def test_estimate_cost_standard_prices_and_override():
    estimate = estimate_cost(
        model="gpt-4.1-2025-04-14",
        input_tokens=2_000_000,
        output_tokens=500_000,
        overrides={"gpt-4.1": {"input": 3.0, "output": 12.0}},
        batch=False,
    )
    # 2M x $3 = $6; 0.5M x $12 = $6
    assert (estimate.input_usd, estimate.output_usd, estimate.total_usd) == (6.0, 6.0, 12.0)
    assert estimate.price.source == CONFIG_SOURCE


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "gpt-4o"}, None),
        ({"model": "gpt-4o", "max_tokens": 200}, 200),
        ({"model": "o3", "max_completion_tokens": 5000, "max_tokens": 200}, 5000),
        ({"model": "gpt-4.1", "max_output_tokens": 64}, 64),
        ({"model": "gpt-4o", "max_tokens": None}, None),
    ],
)
def test_max_output_tokens_from_model_params(params, expected):
    assert max_output_tokens(params) == expected


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0, "$0.00"),
        (0.18, "$0.18"),
        (1234.5, "$1,234.50"),
        (0.005, "$0.0050"),
        (0.000375, "$0.00038"),
        (1e-9, "<$0.000001"),
        (-2.5, "-$2.50"),
    ],
)
def test_format_usd_amounts(amount, text):
    assert format_usd(amount) == text
