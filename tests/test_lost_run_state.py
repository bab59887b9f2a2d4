"""A run whose state in data_path was lost: its batches are found on the API side, never paid for again."""

from __future__ import annotations

from collections import Counter

import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.state.run_store import STORE_NAME
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project


def lose_run_state(project: Project) -> None:
    """What a user's `rm data/run.sqlite3` (or a lost folder state) leaves."""
    for name in (STORE_NAME, f"{STORE_NAME}-wal", f"{STORE_NAME}-shm"):
        (project.data_path / name).unlink(missing_ok=True)


def refusal(project: Project, run_id: str, batch_ids: list[str]) -> str:
    return (
        f"error: {project.data_path}: no run state here ({STORE_NAME}), but the API holds {len(batch_ids)} batches "
        f"of run {run_id} made from this input and data_path ({', '.join(batch_ids[:2])}, ...), and a new run "
        f"would pay for every row again; take that run up again with create-batch --config {project.config_path} "
        "--adopt (only shards with no batch are submitted), or set another data_path to start a new run\n"
    )


def newest_first(project: Project, run_id: str) -> list[str]:
    return [b.id for b in project.server_batches() if (b.metadata or {}).get("openai_batch_api_run") == run_id]


def test_create_batch_after_a_lost_run_state_refuses_naming_the_run(project, server):
    project.write_rows(10)
    assert project.run("create-batch").exit_code == 0
    run_id = load_ledger(project.data_path).run_id
    before = sorted(b.id for b in project.server_batches())
    assert len(before) == 3
    lose_run_state(project)

    status = project.run("status-jobs")
    assert status.exit_code == 1
    assert status.err == (
        f"error: {project.data_path}: no run here yet (no {STORE_NAME}); start one with "
        f"create-batch --config {project.config_path}\n"
    )
    again = project.run("create-batch")
    assert again.exit_code == 1
    assert again.err == refusal(project, run_id, newest_first(project, run_id))
    assert sorted(b.id for b in project.server_batches()) == before
    assert not (project.data_path / STORE_NAME).exists()


def test_create_batch_adopt_submits_only_the_shards_without_a_batch(project, server):
    table = project.write_rows(10)
    project.write_config()
    # Room for two shards: the third stays queued, as when a run is lost before all were submitted.
    project.write_config(max_enqueued_tokens=2 * max(s.prompt_tokens for s in plan_shards(project)))
    first = project.run("create-batch")
    assert "submitted 2 batches now" in first.out, first.out
    old = load_ledger(project.data_path)
    kept = {s.key: s.batch_id for s in old.shards if s.batch_id}
    assert len(kept) == 2
    lose_run_state(project)

    adopted = project.run("create-batch", "--adopt")
    assert adopted.exit_code == 0, adopted.err
    assert f"taken up again from the API: 2 batches of run {old.run_id} found" in adopted.out
    ledger = load_ledger(project.data_path)
    assert ledger.run_id == old.run_id
    assert {k: v for k, v in ((s.key, s.batch_id) for s in ledger.shards) if k in kept} == kept

    waited = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert waited.exit_code == 0, waited.err
    assert "rows: 10 done, 0 failed, 0 pending of 10; batches: 3 of 3 finished" in waited.out
    per_shard = Counter((b.metadata or {}).get("shard") for b in project.server_batches())
    assert per_shard == Counter({"a1-s0001": 1, "a1-s0002": 1, "a1-s0003": 1})
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    output = project.output()
    assert list(output["id"]) == list(table["id"])
    assert set(output["api_status"]) == {"ok"}


def test_create_batch_adopt_of_a_cancelled_run_submits_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    slow = LocalServer(state_dir=tmp_path / "slow-state", options=ServerOptions(seed=3, line_latency=1.0))
    with slow:
        project = Project(root=tmp_path, base_url=slow.base_url)
        cancelled_run_adopted(project)


def cancelled_run_adopted(project: Project) -> None:
    project.write_rows(10)
    project.write_config()
    project.write_config(max_enqueued_tokens=2 * max(s.prompt_tokens for s in plan_shards(project)))
    assert "submitted 2 batches now" in project.run("create-batch").out
    assert project.run("status-jobs", "--cancel", "--yes").exit_code == 0
    run_id = load_ledger(project.data_path).run_id
    lose_run_state(project)

    adopted = project.run("create-batch", "--adopt")
    assert adopted.exit_code == 1
    assert adopted.err == (
        f"error: {project.data_path}: run {run_id} was cancelled; collate what it has, or submit its unanswered "
        f"rows again with create-batch --config {project.config_path} --retry\n"
    )
    assert len(project.server_batches()) == 2
    assert [s.status for s in load_ledger(project.data_path).shards][2] == "cancelled"


def plan_shards(project: Project):
    from openai_batch_api.utils.config import load_config
    from openai_batch_api.utils.requests import write_shards

    return write_shards(load_config(project.config_path), out_dir=project.root / "token-probe").shards


def test_create_batch_adopts_a_retry_attempt_from_its_input_file(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    state = tmp_path / "state"
    wait = ("--wait", "--interval", "0.05")
    failing = ServerOptions(seed=4, line_failure_pattern="^[23]$", line_failure_status=500)
    with LocalServer(state_dir=state, options=failing) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        table = project.write_rows(4)
        project.write_config(batch_size=4)
        assert project.run("create-batch").exit_code == 0
        assert project.run("status-jobs", *wait).exit_code == 0
    with LocalServer(state_dir=state, options=ServerOptions(seed=4)) as server:
        project.write_config(base_url=server.base_url)
        project.base_url = server.base_url
        assert project.run("create-batch", "--retry").exit_code == 0
        assert project.run("status-jobs", *wait).exit_code == 0
        old = load_ledger(project.data_path)
        lose_run_state(project)
        for shard in old.shards:
            (project.data_path / shard.path).unlink()

        adopted = project.run("create-batch", "--adopt")
        assert adopted.exit_code == 0, adopted.err
        assert f"taken up again from the API: 2 batches of run {old.run_id} found" in adopted.out
        assert "every shard already has its batch: nothing was submitted again" in adopted.out
        ledger = load_ledger(project.data_path)
        assert [(s.key, s.batch_id, s.rows, s.sha256) for s in ledger.shards] == [
            (s.key, s.batch_id, s.rows, s.sha256) for s in old.shards
        ]
        assert ledger.attempts == 2
        collated = project.run("collate-output")
        assert collated.exit_code == 0, collated.err
        assert len(project.server_batches()) == 2
    output = project.output()
    assert list(output["id"]) == list(table["id"])
    assert set(output["api_status"]) == {"ok"}
    assert output["api_attempts"].tolist() == [1, 2, 2, 1]


def test_create_batch_after_delete_tasks_starts_a_new_run(project, server):
    project.write_rows(4)
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    assert project.run("collate-output").exit_code == 0
    first = load_ledger(project.data_path).run_id
    assert project.run("delete-tasks", "--yes").exit_code == 0
    again = project.run("create-batch")
    assert again.exit_code == 0, again.err
    assert load_ledger(project.data_path).run_id != first


def test_create_batch_after_delete_tasks_keep_remote_refuses(project, server):
    project.write_rows(10)
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    assert project.run("collate-output").exit_code == 0
    run_id = load_ledger(project.data_path).run_id
    assert project.run("delete-tasks", "--yes", "--keep-remote").exit_code == 0
    again = project.run("create-batch")
    assert again.exit_code == 1
    assert again.err == refusal(project, run_id, newest_first(project, run_id))


def test_create_batch_refuses_a_run_whose_files_were_deleted_while_its_batches_run(tmp_path, monkeypatch):
    # What a run state deleted without cancelling its batches (as delete-tasks --force did) leaves.
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "slow-state", options=ServerOptions(seed=6, line_latency=1.0)) as slow:
        project = Project(root=tmp_path, base_url=slow.base_url)
        project.write_rows(10)
        assert project.run("create-batch").exit_code == 0
        run_id = load_ledger(project.data_path).run_id
        for file in project.server_files():
            project.client().files.delete(file.id)
        lose_run_state(project)

        again = project.run("create-batch")

        assert again.exit_code == 1
        assert again.err == refusal(project, run_id, newest_first(project, run_id))
        assert len(project.server_batches()) == 3


def test_another_data_path_starts_a_new_run(project, server):
    project.write_rows(4)
    assert project.run("create-batch").exit_code == 0
    first = load_ledger(project.data_path).run_id
    lose_run_state(project)
    project.write_config(data_path="data-2")
    again = project.run("create-batch")
    assert again.exit_code == 0, again.err
    assert load_ledger(project.root / "data-2").run_id != first
    assert len(project.server_batches()) == 2


def nothing_to_adopt(project: Project) -> str:
    return (
        f"{project.data_path}: nothing found to adopt: no batch of the last 30 days on the API was made from "
        f"{project.root / 'input.csv'} and this data_path; run create-batch --config {project.config_path} "
        "without --adopt to start a new run"
    )


def test_create_batch_adopt_with_nothing_to_adopt_error(project, server):
    project.write_rows(4)
    refused = project.run("create-batch", "--adopt")
    assert refused.exit_code == 1
    assert refused.err == f"error: {nothing_to_adopt(project)}\n"
    assert refused.out == ""
    assert not (project.data_path / STORE_NAME).exists()
    assert not (project.data_path / "tasks").exists()
    assert project.server_batches() == []
    assert project.server_files() == []


def test_create_batch_adopt_after_delete_tasks_finds_nothing_to_adopt(project, server):
    project.write_rows(4)
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    assert project.run("collate-output").exit_code == 0
    assert project.run("delete-tasks", "--yes").exit_code == 0
    refused = project.run("create-batch", "--adopt")
    assert refused.exit_code == 1
    assert refused.err == f"error: {nothing_to_adopt(project)}\n"
    assert len(project.server_batches()) == 1


def test_run_create_adopt_with_nothing_to_adopt_raises(project, server):
    from openai_batch_api import LostRunError, Run

    project.write_rows(4)
    with pytest.raises(LostRunError) as raised:
        Run.from_config(project.write_config()).create(adopt=True)
    assert str(raised.value) == nothing_to_adopt(project)
    assert not (project.data_path / STORE_NAME).exists()
    assert project.server_batches() == []


@pytest.fixture
def no_listing(tmp_path, monkeypatch) -> Project:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "state", options=ServerOptions(seed=2, no_batches_listing=True)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(4)
        yield project


def test_without_a_batches_listing_a_new_run_goes_on_with_a_note(no_listing):
    created = no_listing.run("create-batch")
    assert created.exit_code == 0, created.err
    assert (
        "note: the server does not list batches (405): whether a run of this input and data_path was already "
        "submitted (and its run state lost) cannot be checked\n"
    ) in created.out


def test_without_a_batches_listing_adopt_refuses(no_listing):
    adopted = no_listing.run("create-batch", "--adopt")
    assert adopted.exit_code == 1
    assert adopted.err == (
        f"error: {no_listing.data_path}: --adopt needs the server's batches listing, which it does not offer; "
        "look for the run's batches on the server and cancel them, or run create-batch without --adopt\n"
    )
    assert not (no_listing.data_path / STORE_NAME).exists()


def test_run_create_after_a_lost_run_state_raises_lost_run_error(project, server):
    from openai_batch_api import LostRunError, Run, RunChangedError

    project.write_rows(10)
    run = Run.from_config(project.write_config())
    run_id = run.create().run_id
    assert run.submit().submitted == 3
    before = sorted(b.id for b in project.server_batches())
    lose_run_state(project)

    with pytest.raises(LostRunError) as raised:
        Run.from_config(project.config_path).create()
    assert isinstance(raised.value, RunChangedError)
    # The same one line as create-batch prints.
    assert f"error: {raised.value}\n" == refusal(project, run_id, newest_first(project, run_id))
    assert sorted(b.id for b in project.server_batches()) == before
    assert not (project.data_path / STORE_NAME).exists()


def test_run_create_adopt_submits_only_the_shards_without_a_batch(project, server):
    from openai_batch_api import Run

    table = project.write_rows(10)
    project.write_config()
    project.write_config(max_enqueued_tokens=2 * max(s.prompt_tokens for s in plan_shards(project)), poll_interval=0.05)
    first = Run.from_config(project.config_path)
    old_id = first.create().run_id
    assert first.submit().submitted == 2
    kept = {s.key: s.batch_id for s in load_ledger(project.data_path).shards if s.batch_id}
    lose_run_state(project)

    run = Run.from_config(project.config_path)
    created = run.create(adopt=True)
    assert (created.new, created.run_id, created.adopted_batches) == (True, old_id, 2)
    ledger = load_ledger(project.data_path)
    assert {s.key: s.batch_id for s in ledger.shards if s.key in kept} == kept
    assert run.submit().submitted == 1
    assert run.wait().finished
    per_shard = Counter((b.metadata or {}).get("shard") for b in project.server_batches())
    assert per_shard == Counter({"a1-s0001": 1, "a1-s0002": 1, "a1-s0003": 1})
    collated = run.collate()
    assert list(collated.table["id"]) == list(table["id"])
    assert collated.status_counts == {"ok": 10}
