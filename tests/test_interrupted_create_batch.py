"""status-jobs after an interrupted create-batch: shards left uploading/creating are settled, never waited on."""

from __future__ import annotations

from collections import Counter

import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.providers import openai as api_module
from openai_batch_api.utils.state.ledger import CREATING
from openai_batch_api.utils.state.run_store import RunStore
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project

WAIT = ("--wait", "--interval", "0.05")


@pytest.fixture
def interrupted(tmp_path, monkeypatch) -> Project:
    """A run whose create-batch lost every batch creation (the connection dropped): 3 shards left creating."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setattr(api_module, "DEFAULT_RETRY", api_module.RetryPolicy(attempts=2, base_delay=0.01))
    state = tmp_path / "state"
    dropping = ServerOptions(
        seed=6, http_error_rate=1.0, http_error_kinds=("drop",), http_error_paths="^POST /v1/batches$"
    )
    with LocalServer(state_dir=state, options=dropping) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(6)
        project.write_config(batch_size=2, concurrency=1)
        created = project.run("create-batch")
        assert created.exit_code == 1
        assert created.err.splitlines()[-1].startswith("error: cannot reach the API at ")
    assert [s.state for s in load_ledger(project.data_path).shards] == [CREATING] * 3
    with LocalServer(state_dir=state, options=ServerOptions(seed=6)) as server:
        project.base_url = server.base_url
        project.write_config(base_url=server.base_url)
        yield project


def test_status_jobs_after_an_interrupted_create_batch_advises_wait(interrupted):
    status = interrupted.run("status-jobs")
    assert status.exit_code == 0, status.err
    assert "rows: 0 done, 0 failed, 6 pending of 6; batches: 0 of 3 finished" in status.out
    assert [line.split()[2] for line in status.out.splitlines()[3:6]] == [CREATING] * 3
    assert status.out.splitlines()[-1] == (
        f"next: status-jobs --config {interrupted.config_path} --wait (it settles the 3 shards an interrupted "
        "create-batch left uploading or creating: each is found on the API side or submitted, once)"
    )


def test_status_jobs_wait_settles_shards_left_creating_and_finishes(interrupted):
    ledger = load_ledger(interrupted.data_path)
    # The first shard's batch was made, and only its answer lost: it must be found, not made again.
    made = ledger.shards[0]
    found = interrupted.client().batches.create(
        input_file_id=made.file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={**ledger.batch_metadata(made), **ledger.origin_tags(data_path=interrupted.data_path)},
    )
    waited = interrupted.run("status-jobs", *WAIT)
    assert waited.exit_code == 0, waited.err
    assert "rows: 6 done, 0 failed, 0 pending of 6; batches: 3 of 3 finished" in waited.out
    settled = load_ledger(interrupted.data_path)
    assert settled.shards[0].batch_id == found.id
    per_shard = Counter((b.metadata or {}).get("shard") for b in interrupted.server_batches())
    assert per_shard == Counter({s.key: 1 for s in settled.shards})
    assert interrupted.run("collate-output").exit_code == 0
    assert set(interrupted.output()["api_status"]) == {"ok"}


def test_status_jobs_wait_settles_shards_left_uploading(interrupted):
    with RunStore.open(interrupted.data_path, writable=True) as store:
        shard = store.ledger.shards[2]
        shard.uploaded(None)  # as if its upload's answer had been lost
        store.begin([shard], kind="upload")
    waited = interrupted.run("status-jobs", *WAIT)
    assert waited.exit_code == 0, waited.err
    assert "rows: 6 done, 0 failed, 0 pending of 6; batches: 3 of 3 finished" in waited.out
    assert len(interrupted.server_batches()) == 3


def test_status_jobs_cancel_then_wait_after_an_interrupted_create_batch(interrupted):
    cancelled = interrupted.run("status-jobs", "--cancel", "--yes")
    assert cancelled.exit_code == 0, cancelled.err
    assert "3 queued shards will not be submitted" in cancelled.out
    waited = interrupted.run("status-jobs", *WAIT)
    assert waited.exit_code == 0, waited.err
    assert "batches: 3 of 3 finished" in waited.out
    assert interrupted.server_batches() == []


def test_status_jobs_wait_stops_at_once_on_a_shard_over_max_enqueued_tokens(interrupted):
    interrupted.write_config(max_enqueued_tokens=1)
    waited = interrupted.run("status-jobs", *WAIT)
    assert waited.exit_code == 1
    ledger = load_ledger(interrupted.data_path)
    shard = ledger.shards[0]
    assert waited.err == (
        f"error: {interrupted.config_path}: shard a1-s0001 of run {ledger.run_id}"
        f" holds about {shard.prompt_tokens:,} prompt tokens, more than max_enqueued_tokens (1), so it can never be "
        "submitted; raise max_enqueued_tokens and run the command again\n"
    )
    assert interrupted.server_batches() == []
