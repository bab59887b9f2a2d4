"""delete-tasks --force on a run whose batches still run: they are cancelled first, never paid for twice."""

from __future__ import annotations

from collections import Counter

import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.lifecycle.adoption import RUNNING_STATUSES
from openai_batch_api.utils.state.run_store import STORE_NAME
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project


@pytest.fixture
def slow(tmp_path, monkeypatch) -> Project:
    """A project on a backend slow enough that its batches are still running when delete-tasks comes."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "slow-state", options=ServerOptions(seed=5, line_latency=1.0)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(12)
        project.write_config(batch_size=4)
        yield project


def test_delete_tasks_force_cancels_the_running_batches_and_a_new_run_pays_once(slow):
    first = slow.run("create-batch")
    assert "submitted 3 batches now" in first.out, first.out
    old = load_ledger(slow.data_path)

    deleted = slow.run("delete-tasks", "--yes", "--force")

    assert deleted.exit_code == 0, deleted.err
    assert deleted.out == (
        f"deleted run {old.run_id}: cancelled its 3 running batches; 3 local files, the run state, "
        "and 3 files on the API side\n"
    )
    assert not (slow.data_path / STORE_NAME).exists()
    old_ids = {s.batch_id for s in old.shards}
    assert {b.status for b in slow.server_batches() if b.id in old_ids} <= {"cancelling", "cancelled"}

    again = slow.run("create-batch")
    assert again.exit_code == 0, again.err
    assert "submitted 3 batches now" in again.out, again.out
    running = Counter((b.metadata or {}).get("shard") for b in slow.server_batches() if b.status in RUNNING_STATUSES)
    assert running == Counter({"a1-s0001": 1, "a1-s0002": 1, "a1-s0003": 1})


def test_delete_tasks_while_batches_run_refuses_naming_force(slow):
    assert slow.run("create-batch").exit_code == 0
    run_id = load_ledger(slow.data_path).run_id

    refused = slow.run("delete-tasks", "--yes")

    assert refused.exit_code == 1
    assert refused.err == (
        f"error: {slow.data_path}: 3 batches of run {run_id} still running; wait for them (status-jobs --config "
        f"{slow.config_path} --wait), cancel them (status-jobs --config {slow.config_path} --cancel), or pass "
        "--force to cancel them and delete the run\n"
    )
    assert {b.status for b in slow.server_batches()} <= set(RUNNING_STATUSES)
    assert (slow.data_path / STORE_NAME).exists()


def test_delete_tasks_force_without_yes_names_the_batches_it_would_cancel(slow, monkeypatch):
    import io

    assert slow.run("create-batch").exit_code == 0
    run_id = load_ledger(slow.data_path).run_id
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    refused = slow.run("delete-tasks", "--force")

    assert refused.exit_code == 1
    assert refused.err == (
        f"error: delete run {run_id}: cancel its 3 running batches, then delete the task and result files it wrote "
        f"in {slow.data_path} and 3 files on the API side? Standard input is not a terminal, so nobody can answer: "
        "pass --yes\n"
    )
    assert {b.status for b in slow.server_batches()} <= set(RUNNING_STATUSES)
    assert (slow.data_path / STORE_NAME).exists()


def test_delete_tasks_force_keep_remote_cancels_too(slow):
    assert slow.run("create-batch").exit_code == 0
    run_id = load_ledger(slow.data_path).run_id

    deleted = slow.run("delete-tasks", "--yes", "--force", "--keep-remote")

    assert deleted.exit_code == 0, deleted.err
    assert deleted.out == f"deleted run {run_id}: cancelled its 3 running batches; 3 local files, the run state\n"
    assert {b.status for b in slow.server_batches()} <= {"cancelling", "cancelled"}
    assert len(slow.server_files()) == 3


def test_run_delete_force_cancels_the_running_batches(slow):
    from openai_batch_api import Run

    run = Run.from_config(slow.config_path)
    run_id = run.create().run_id
    assert run.submit().submitted == 3

    deleted = run.delete(force=True)

    assert (deleted.run_id, deleted.deleted, deleted.cancelled_batches) == (run_id, True, 3)
    assert {b.status for b in slow.server_batches()} <= {"cancelling", "cancelled"}


def test_delete_tasks_force_after_cancel_cancels_nothing_again(slow):
    assert slow.run("create-batch").exit_code == 0
    run_id = load_ledger(slow.data_path).run_id
    assert slow.run("status-jobs", "--cancel", "--yes").exit_code == 0

    deleted = slow.run("delete-tasks", "--yes", "--force")

    assert deleted.exit_code == 0, deleted.err
    assert deleted.out == f"deleted run {run_id}: 3 local files, the run state, and 3 files on the API side\n"
