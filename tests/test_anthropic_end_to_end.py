"""provider: anthropic through the four commands against the local backend's Message Batches: rows back
on their ids in input order, retries of retryable rows, a lost create found or refused (never made
twice), delete-tasks deleting the ended batches and cancelling running ones only with --force."""

from __future__ import annotations

import anthropic
import pandas as pd
import pytest
from anthropic_support import *  # noqa: F403 - the shared fixtures

from project_support import Project

# Row ids of every kind: spaces, unicode, slashes, over 64 characters, "7" beside "07".
ROW_IDS = ["7", "07", "a b/c", "zürich ✓", "x" * 100, "-"]
SCHEMA = {"type": "object", "properties": {"sentiment": {"type": "string"}}, "required": ["sentiment"]}


@pytest.fixture
def project(tmp_path) -> Project:
    project = Project(tmp_path, base_url="local")
    project.write_table(pd.DataFrame({"id": ROW_IDS, "content": [f"review {i}: fine" for i in range(len(ROW_IDS))]}))
    project.config.update(
        provider="anthropic",
        model_params={"model": "claude-haiku-4-5", "max_tokens": 50},
        batch_size=4,
        poll_interval=0.1,
    )
    project.write_config()
    return project


def server_batches(project: Project) -> list:
    """The batches the run's local backend holds, read through the anthropic SDK while it runs."""
    from openai_batch_api.utils.config import load_config
    from openai_batch_api.utils.providers.local import local_backend

    config = load_config(project.config_path)
    with local_backend(config) as backend:
        client = anthropic.Anthropic(base_url=backend.base_url.removesuffix("/v1"), api_key=backend.api_key)
        with client:
            return list(client.messages.batches.list(limit=100))


def test_anthropic_run_through_the_four_commands(project):
    project.write_config(
        model_params={"model": "claude-haiku-4-5", "max_tokens": 50,
                      "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    )
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "submitted 2 batches now" in created.out
    waited = project.run("status-jobs", "--wait")
    assert waited.exit_code == 0, waited.err
    assert "rows: 6 done, 0 failed, 0 pending of 6" in waited.out
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    assert "the input estimate before submitting was about " in collated.out
    assert "(approximate: tiktoken o200k_base tokens x 1.2, as Claude's tokenizer is not public): " in collated.out
    output = project.output()
    assert list(output["id"]) == ROW_IDS
    assert set(output["api_status"]) == {"ok"}
    assert output["answer_sentiment"].notna().all()
    assert (output["api_prompt_tokens"] > 0).all()
    batches = server_batches(project)
    assert len(batches) == 2 and all(batch.processing_status == "ended" for batch in batches)
    deleted = project.run("delete-tasks", "--yes")
    assert deleted.exit_code == 0, deleted.err
    assert deleted.out.endswith(", the run state, and 2 ended batches on the API side\n")
    assert server_batches(project) == []


def test_overloaded_rows_are_retried(project):
    # Line 1 of shard 1 is overloaded (retryable) in the first attempt; the retry's shard holds it on line 0.
    project.write_config(max_retries=1, local_backend={"line_failure_pattern": "^[0-9a-f]{12}-1-1$",
                                                        "line_failure_status": 529})
    assert project.run("create-batch").exit_code == 0
    waited = project.run("status-jobs", "--wait")
    assert waited.exit_code == 0, waited.err
    assert project.run("collate-output").exit_code == 0
    output = project.output().set_index("id")
    assert set(output["api_status"]) == {"ok"}
    assert output["api_attempts"].tolist() == [1, 2, 1, 1, 1, 1]


def test_lost_create_answers_make_no_second_batch(project):
    """Every create's answer is lost after the backend made the batch: each is found again by its results."""
    project.write_config(local_backend={"http_error_rate": 1.0, "http_error_kinds": ["drop_after"],
                                        "http_error_paths": "^POST /v1/messages/batches$"})
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "submitted 2 batches now" in created.out
    assert project.run("status-jobs", "--wait").exit_code == 0
    assert len(server_batches(project)) == 2
    assert project.run("collate-output").exit_code == 0
    assert list(project.output()["id"]) == ROW_IDS


def test_lost_create_answer_of_a_running_batch_is_refused_then_confirmed(project):
    project.write_config(batch_size=10, local_backend={"http_error_rate": 1.0, "http_error_kinds": ["drop_after"],
                                                        "http_error_paths": "^POST /v1/messages/batches$",
                                                        "line_latency": 0.2})
    refused = project.run("create-batch")
    assert refused.exit_code == 1
    assert "a1-s0001: a batch creation's answer was lost, and batch msgbatch_" in refused.err
    assert "(creating another now could pay twice)\n" in refused.err
    [batch] = server_batches(project)
    # The batch ended while the command gave the backend its last seconds: the next run confirms it.
    again = project.run("create-batch")
    assert again.exit_code == 0, again.err
    assert f"found again after an interrupted run: a1-s0001: batch {batch.id}" in again.out + again.err
    assert [b.id for b in server_batches(project)] == [batch.id]


def test_delete_tasks_cancels_running_batches_only_with_force(project):
    project.write_config(batch_size=10, local_backend={"line_latency": 2})
    assert project.run("create-batch").exit_code == 0
    refused = project.run("delete-tasks", "--yes")
    assert refused.exit_code == 1
    assert " still running; wait for them (status-jobs --config " in refused.err
    assert refused.err.endswith(" or pass --force to cancel them and delete the run\n")
    [running] = server_batches(project)
    assert running.processing_status == "in_progress"
    forced = project.run("delete-tasks", "--yes", "--force")
    assert forced.exit_code == 0, forced.err
    assert forced.out.startswith("deleted run ")
    # A cancelled batch is deleted on the API side once it has ended; cancelling, the API keeps it.
    assert forced.out.endswith(
        ": cancelled its 1 running batch; 1 local file, the run state, and 0 ended batches on the API side\n"
    )
    assert {batch.processing_status for batch in server_batches(project)} <= {"canceling", "ended"}


def test_batch_with_provider_anthropic_returns_the_table_with_its_answers(tmp_path, monkeypatch):
    import openai_batch_api

    monkeypatch.chdir(tmp_path)
    table = pd.DataFrame({"id": ROW_IDS, "text": [f"review {i}" for i in range(len(ROW_IDS))]})
    answered = openai_batch_api.batch(
        table,
        provider="anthropic",
        base_url="local",
        prompt="Classify.",
        content_column="text",
        model_params={"model": "claude-haiku-4-5", "max_tokens": 40},
        data_path="run",
        poll_interval=0.1,
        progress=False,
    )
    assert list(answered["id"]) == ROW_IDS
    assert set(answered["api_status"]) == {"ok"}
    assert answered["api_output"].str.startswith("Answer to: review").all()


def test_anthropic_base_url_comes_from_the_environment_when_the_config_has_none(tmp_path, server, monkeypatch):
    project = Project(tmp_path, base_url="unused")
    project.write_table(pd.DataFrame({"id": ["a", "b"], "content": ["one", "two"]}))
    project.config.update(provider="anthropic", model_params={"model": "claude-haiku-4-5", "max_tokens": 50})
    project.write_config(base_url=None, poll_interval=0.1)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url.removesuffix("/v1"))
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "submitted 1 batch now" in created.out
    waited = project.run("status-jobs", "--wait")
    assert waited.exit_code == 0, waited.err
    assert "rows: 2 done, 0 failed, 0 pending of 2" in waited.out
    with anthropic.Anthropic(base_url=server.base_url.removesuffix("/v1"), api_key="local") as client:
        assert len(list(client.messages.batches.list(limit=100))) == 1  # on the server the variable names


def test_image_detail_with_provider_anthropic_is_refused_naming_the_key(project):
    project.write_config(image_detail="high")
    refused = project.run("create-batch")
    assert refused.exit_code == 1
    assert refused.err == (
        f"error: {project.config_path}: 'image_detail' is for provider openai; Anthropic sizes images itself: remove it\n"
    )
    assert not project.data_path.exists()


def test_settle_of_a_message_batch_is_refused_as_it_cannot_be_checked(project):
    project.write_config(batch_size=10, local_backend={"http_error_rate": 1.0, "http_error_kinds": ["drop_after"],
                                                        "http_error_paths": "^POST /v1/messages/batches$",
                                                        "line_latency": 0.2})
    assert project.run("create-batch").exit_code == 1  # the create's answer was lost, its batch still runs
    [batch] = server_batches(project)
    settled = project.run("create-batch", "--settle", f"a1-s0001={batch.id}")
    assert settled.exit_code == 1
    assert settled.err == (
        f"error: --settle a1-s0001={batch.id}: shard a1-s0001 was sent with its creation, not as an uploaded file, "
        f"so batch {batch.id} cannot be checked as its own; once that batch has ended, run create-batch again "
        "without --settle: it finds the shard's batch by the ids of its results\n"
    )
    again = project.run("create-batch")  # the run is as it was: the batch is found by its results
    assert again.exit_code == 0, again.err
    assert [b.id for b in server_batches(project)] == [batch.id]
