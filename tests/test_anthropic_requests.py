"""provider: anthropic: the config's checks, the Messages params of each row, custom ids and back, and
the results of a Message Batch read into the output columns, through the official anthropic SDK
against the local backend."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pandas as pd
import pytest
from anthropic_support import *  # noqa: F403 - the shared fixtures
from anthropic_support import claude, ended
from test_local_server_support import *  # noqa: F403 - the shared fixtures

from openai_batch_api.utils.answers.results import expand_structured_answers, load_results
from openai_batch_api.utils.config import validate_config_mapping
from openai_batch_api.utils.costs.pricing import estimate_cost, resolve_price
from openai_batch_api.utils.costs.tokens import get_estimator
from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.providers.anthropic_results import write_mapped_results
from openai_batch_api.utils.requests.custom_ids import CUSTOM_ID, CustomIdMap, parse_custom_id, run_tag
from openai_batch_api.utils.requests.message_params import as_response_format
from openai_batch_api.utils.requests.request_lines import RequestLines

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
# Row ids of every kind a table holds: spaces, unicode, slashes, over 64 characters, "7" beside "07".
ROW_IDS = ["7", "07", "a b/c", "zürich ✓", "x" * 100, "-", ""]


def anthropic_config(tmp_path: Path, **changes):
    raw = {
        "provider": "anthropic",
        "input_file": "input.csv",
        "id_column": "id",
        "content_column": "content",
        "prompt": "Answer briefly.",
        "model_params": {"model": "claude-haiku-4-5", "max_tokens": 64},
        "output_file": "output.csv",
        "data_path": "data",
    }
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return validate_config_mapping(raw, path=tmp_path / "config.yaml")


def config_error(tmp_path: Path, **changes) -> str:
    with pytest.raises(BatchToolError) as caught:
        anthropic_config(tmp_path, **changes)
    return str(caught.value).removeprefix(f"{tmp_path / 'config.yaml'}: ")


def test_anthropic_config_takes_the_message_batches_limits(tmp_path):
    config = anthropic_config(tmp_path)
    assert (config.provider, config.endpoint) == ("anthropic", "/v1/messages")
    assert (config.max_requests_per_batch, config.max_batch_bytes, config.batch_size) == (100_000, 256_000_000, 100_000)
    smaller = anthropic_config(tmp_path, max_requests_per_batch=10, max_batch_bytes=1000, batch_size=5)
    assert (smaller.max_requests_per_batch, smaller.max_batch_bytes, smaller.batch_size) == (10, 1000, 5)
    assert anthropic_config(tmp_path, provider=None).max_requests_per_batch == 50_000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"model_params": {"model": "claude-haiku-4-5"}},
            "'model_params' must set max_tokens with provider anthropic: the Messages API requires it "
            "(e.g. `max_tokens: 1024`)",
        ),
        (
            {"model_params": {"model": "claude-haiku-4-5", "max_tokens": 64, "temprature": 0}},
            "unknown model_params field 'temprature' (did you mean 'temperature'?): Anthropic Messages requests "
            "have no such field",
        ),
        (
            {"model_params": {"model": "claude-haiku-4-5", "max_tokens": 64, "response_format": {"type": "json"}}},
            "unknown model_params field 'response_format' (with provider anthropic, use output_config: {format: "
            "{type: json_schema, schema: ...}}): Anthropic Messages requests have no such field",
        ),
        (
            {"model_params": {"model": "claude-haiku-4-5", "max_tokens": 64, "system": "x"}},
            "'model_params' must not hold `system`: with provider anthropic it is built from the prompt and the "
            "content",
        ),
        (
            {"model_params": {"model": "claude-haiku-4-5", "max_tokens": 64, "top_k": "5"}},
            "'model_params.top_k' must be a whole number, got '5'",
        ),
        (
            {"model_params": {"model": "claude-haiku-4-5", "max_tokens": 64, "output_config": {"format": {}}}},
            "'model_params.output_config.format' must be {type: json_schema, schema: {...}}",
        ),
        ({"endpoint": "/v1/responses"}, "'endpoint' is for provider openai; provider anthropic sends /v1/messages: "
         "remove it"),
        ({"provider": "anthropc"}, "'provider' must be one of openai, anthropic, got 'anthropc' (did you mean "
         "'anthropic'?)"),
    ],
)
def test_anthropic_config_refused_at_load(tmp_path, changes, message):
    assert config_error(tmp_path, **changes) == message


def test_anthropic_params_of_a_row_with_examples_and_images(tmp_path):
    (tmp_path / "cat.png").write_bytes(PNG)
    config = anthropic_config(tmp_path, examples=[{"user": "2+2", "assistant": "4"}], image_url_column="image")
    lines = RequestLines(config)
    text = orjson.loads(lines.text_line("a b", "3+3"))
    assert text == {
        "custom_id": "a b",
        "method": "POST",
        "url": "/v1/messages",
        "body": {
            "model": "claude-haiku-4-5",
            "max_tokens": 64,
            "system": "Answer briefly.",
            "messages": [
                {"role": "user", "content": "2+2"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "3+3"},
            ],
        },
    }
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    with_file = orjson.loads(lines.image_line("b", "What is it?", data_url))["body"]["messages"][-1]["content"]
    assert with_file == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}},
        {"type": "text", "text": "What is it?"},
    ]
    with_url = orjson.loads(lines.image_line("c", "", "https://example.com/cat.jpg"))["body"]["messages"][-1]
    assert with_url == {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]}


def test_custom_ids_are_valid_unique_and_lead_back_to_the_row_ids_verbatim():
    tag = run_tag("run-2026-12-05T19:42:00")
    ids = CustomIdMap(tag, 3, ROW_IDS)
    custom = [ids.custom_id(line) for line in range(len(ROW_IDS))]
    assert all(CUSTOM_ID.fullmatch(text) for text in custom)
    assert len(set(custom)) == len(custom)
    assert [ids.row_id(text) for text in custom] == ROW_IDS
    assert parse_custom_id(custom[1]).shard == 3
    # Another run's, another shard's, a line past the end, a padded number, another tool's: none is ours.
    other_run = CustomIdMap(run_tag("another run"), 3, ROW_IDS)
    for text in (other_run.custom_id(0), CustomIdMap(tag, 4, ROW_IDS).custom_id(0), f"{tag}-3-{len(ROW_IDS)}",
                 f"{tag}-3-01", "row-1", "7"):
        assert ids.row_id(text) is None


def test_message_batch_results_are_read_into_the_output_columns(tmp_path, start_server):
    """Rows go out as our params under our custom ids; their results come back on the rows' own ids."""
    schema = {"type": "object", "properties": {"sentiment": {"type": "string"}}, "required": ["sentiment"]}
    params = {"model": "claude-haiku-4-5", "max_tokens": 64,
              "output_config": {"format": {"type": "json_schema", "schema": schema}}}
    config = anthropic_config(tmp_path, model_params=params)
    tag = run_tag("run-1")
    ids = CustomIdMap(tag, 0, ROW_IDS)
    # The third row fails as the API's overload would (retryable), the fourth as a bad request (not).
    server = start_server(line_failure_pattern=f"^{tag}-0-2$", line_failure_status=529)
    lines = RequestLines(config)
    requests = []
    for line, row_id in enumerate(ROW_IDS):
        body = orjson.loads(lines.text_line(row_id, f"review {line}: great"))["body"]
        if line == 3:
            body["max_tokens"] = 0  # refused by the API as the batch runs
        requests.append({"custom_id": ids.custom_id(line), "params": body})
    with claude(server) as client:
        batch = client.messages.batches.create(requests=requests)
        ended(client, batch.id)
        dest = tmp_path / "results.jsonl"
        with client.messages.batches.with_streaming_response.results(batch.id) as response:
            written = write_mapped_results(response.iter_lines(), dest, ids=ids)
    assert written == len(ROW_IDS)
    results = load_results([dest])
    assert sorted(results.index) == sorted(ROW_IDS)
    ok = results.drop(index=[ROW_IDS[2], ROW_IDS[3]])
    assert set(ok["api_status"]) == {"ok"}
    assert (ok["api_prompt_tokens"] > 0).all() and (ok["api_completion_tokens"] > 0).all()
    assert set(ok["api_finish_reason"]) == {"stop"}
    overloaded, refused = results.loc[ROW_IDS[2]], results.loc[ROW_IDS[3]]
    assert (overloaded["api_status"], overloaded["api_error_code"], overloaded["api_retryable"]) == (
        "error", "overloaded_error", True)
    assert (refused["api_status"], refused["api_error"], refused["api_retryable"]) == (
        "error", "invalid_request_error: max_tokens: Input should be greater than or equal to 1", False)
    answers = expand_structured_answers(ok["api_output"], response_format=as_response_format(params), prefix="answer_")
    assert list(answers.columns) == ["answer_sentiment", "api_json_error"]
    assert answers["api_json_error"].isna().all()


def test_results_of_another_shard_are_refused_and_nothing_is_written(tmp_path):
    ids = CustomIdMap(run_tag("run-1"), 0, ["a"])
    stranger = CustomIdMap(run_tag("run-1"), 1, ["a"]).custom_id(0)
    line = orjson.dumps({"custom_id": stranger, "result": {"type": "expired"}})
    with pytest.raises(BatchToolError) as caught:
        write_mapped_results([line], tmp_path / "r.jsonl", ids=ids)
    assert str(caught.value) == (
        f"r.jsonl: result '{stranger}' is not a request of shard 0 of this run; the batch is not this shard's"
    )
    assert list(tmp_path.iterdir()) == []


def test_canceled_and_expired_requests_get_todays_statuses(tmp_path):
    ids = CustomIdMap("t", 0, ["a", "b"])
    lines = [orjson.dumps({"custom_id": ids.custom_id(i), "result": {"type": kind}})
             for i, kind in enumerate(("canceled", "expired"))]
    write_mapped_results(lines, tmp_path / "r.jsonl", ids=ids)
    results = load_results([tmp_path / "r.jsonl"])
    assert results[["api_status", "api_error_code", "api_retryable"]].values.tolist() == [
        ["cancelled", "batch_cancelled", False],
        ["expired", "batch_expired", True],
    ]


def test_claude_prices_at_batch_rates_and_an_approximate_token_estimate():
    price = resolve_price("claude-sonnet-4-5-20250929")
    assert (price.model, price.input, price.output) == ("claude-sonnet-4-5", 3.0, 15.0)
    cost = estimate_cost(model="claude-sonnet-4-5", input_tokens=1_000_000, output_tokens=1_000_000)
    assert (cost.input_usd, cost.output_usd) == (1.5, 7.5)
    estimator = get_estimator("claude-haiku-4-5")
    assert estimator.method.startswith("approximate: ")
    assert not estimator.exact
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimator.count(text) > get_estimator("gpt-4o").count(text)


def test_create_batch_dry_run_with_provider_anthropic_estimates_approximately(tmp_path):
    from project_support import Project

    project = Project(tmp_path, base_url="local")
    row_ids = ROW_IDS[:-1]  # a table's ids are never empty
    project.write_table(pd.DataFrame({"id": row_ids, "content": [f"text {i}" for i in range(len(row_ids))]}))
    project.write_config(provider="anthropic", model_params={"model": "claude-haiku-4-5", "max_tokens": 50})
    dry = project.run("create-batch", "--dry-run")
    assert (dry.exit_code, dry.err) == (0, "")
    assert "approximate: tiktoken o200k_base tokens x 1.2, as Claude's tokenizer is not public" in dry.out
    assert "cost at batch prices (claude-haiku-4-5):" in dry.out
    assert "nothing was uploaded" in dry.out


def test_anthropic_run_without_a_key_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    from project_support import Project

    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path, base_url="local")
    project.write_rows(3)
    project.config.pop("base_url")
    project.write_config(provider="anthropic", model_params={"model": "claude-haiku-4-5", "max_tokens": 50})
    refused = project.run("create-batch")
    assert (refused.exit_code, refused.out) == (1, "")
    assert refused.err == (
        "error: no API key: set ANTHROPIC_API_KEY in the environment or in a .env file beside config.yaml, "
        "or set `base_url: local` in the config to use the local backend\n"
    )
    assert not project.data_path.exists()
    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=sk-ant-test\n")
    dry = project.run("create-batch", "--dry-run")
    assert dry.exit_code == 0, dry.err
