"""The run store: ledger.json of the earlier version imported once, damaged databases, full disks,
paged polling, and delete-tasks removing only what the run wrote."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from openai_batch_api.utils.files import atomic_files
from openai_batch_api.utils.state.run_store import RunStore, load_run

FIXTURES = Path(__file__).parent / "fixtures"


def copy_legacy_run(project, name: str) -> Path:
    """A data folder written by the version that kept its state in ledger.json, with its input table."""
    shutil.copy(FIXTURES / name / "input.csv", project.root / "input.csv")
    shutil.copytree(FIXTURES / name / "data", project.data_path)
    project.write_config()
    return project.data_path / "ledger.json"


def batches_per_shard(project, run_id: str) -> Counter:
    return Counter(
        (b.metadata or {}).get("shard")
        for b in project.server_batches()
        if (b.metadata or {}).get("openai_batch_api_run") == run_id
    )


def test_legacy_ledger_in_flight_is_imported_and_finishes_exactly_once(project, server):
    # The earlier version was stopped mid-run: shard 1 was being created (its batch exists on the
    # API side, the ledger does not know it), shard 2 was being uploaded, shard 3 not yet.
    legacy = copy_legacy_run(project, "legacy_run")
    data = json.loads(legacy.read_text())
    run_id = data["run_id"]
    client = project.client()
    with open(project.data_path / "tasks/attempt-1/shard-0001.jsonl", "rb") as fh:
        uploaded = client.files.create(file=(f"{run_id}-a1-s0001.jsonl", fh), purpose="batch")
    tags = {"openai_batch_api_run": run_id, "shard": "a1-s0001", "submission": "1"}
    tags["shard_sha256"] = data["shards"][0]["sha256"][:32]
    lost = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=tags
    )
    data["shards"][0]["file_id"] = uploaded.id
    legacy.write_text(json.dumps(data, indent=1))

    result = project.run("create-batch")

    assert result.exit_code == 0, result.err
    assert f"found again after an interrupted run: a1-s0001: batch {lost.id}\n" in result.out
    assert f"run {run_id}: 10 rows, 3 shards, 3 batches on the API side\n" in result.out
    assert not legacy.exists()
    assert (project.data_path / "ledger.json.imported").read_text() == json.dumps(data, indent=1)
    assert batches_per_shard(project, run_id) == Counter({"a1-s0001": 1, "a1-s0002": 1, "a1-s0003": 1})
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    assert project.run("create-batch").exit_code == 0  # nothing twice, and the import is not repeated
    assert batches_per_shard(project, run_id) == Counter({"a1-s0001": 1, "a1-s0002": 1, "a1-s0003": 1})
    assert project.run("collate-output").exit_code == 0
    assert (project.output()["api_status"] == "ok").all()


def test_legacy_finished_run_shows_its_batches_without_api_calls(project):
    copy_legacy_run(project, "legacy_finished")

    result = project.run("status-jobs", "--debug")

    assert result.exit_code == 0, result.err
    assert "rows: 10 done, 0 failed, 0 pending of 10; batches: 3 of 3 finished\n" in result.out
    assert "tokens used: 200 input, 70 output" in result.out
    assert result.err == "poll: 0 API calls\n"
    ledger = load_run(project.data_path)
    assert ledger.shards[0].batch.completed == 4
    assert not (project.data_path / "ledger.json").exists()
    assert (project.data_path / "ledger.json.imported").exists()


def test_import_left_half_done_is_finished_on_next_open(project):
    # A crash between writing run.sqlite3 and renaming ledger.json leaves both.
    legacy = copy_legacy_run(project, "legacy_finished")
    RunStore.open(project.data_path, writable=True).close()
    shutil.copy(project.data_path / "ledger.json.imported", legacy)

    with RunStore.open(project.data_path, writable=True) as store:
        assert store.ledger.run_id == json.loads((project.data_path / "ledger.json.imported").read_text())["run_id"]
    assert not legacy.exists()


def test_ledger_of_another_run_beside_the_database_error(project):
    legacy = copy_legacy_run(project, "legacy_finished")
    RunStore.open(project.data_path, writable=True).close()
    shutil.copy(FIXTURES / "legacy_run" / "data" / "ledger.json", legacy)
    run_id = json.loads((project.data_path / "ledger.json.imported").read_text())["run_id"]

    result = project.run("create-batch")

    assert result.exit_code == 1
    assert result.err == (
        f"error: {legacy}: a run ledger beside the run database run.sqlite3 that holds another run; "
        f"move ledger.json away (run {run_id} in run.sqlite3 goes on)\n"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[]", "it holds a JSON list, not a run"),
        ("null", "it holds a JSON null, not a run"),
        ("{\"version\": 1", "Expecting ',' delimiter: line 1 column 14 (char 13)"),
    ],
)
def test_damaged_legacy_ledger_error(project, content, reason):
    project.write_rows(4)
    project.data_path.mkdir()
    (project.data_path / "ledger.json").write_text(content)
    for command in ("create-batch", "status-jobs"):
        result = project.run(command)
        assert result.exit_code == 1
        assert result.err == (
            f"error: {project.data_path / 'ledger.json'}: the run ledger is damaged ({reason}); restore it from "
            "a backup, or move it away to start a new run (its batches stay on the API side)\n"
        )
    assert project.server_files() == []
    assert not (project.data_path / "run.sqlite3").exists()


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def not_a_database(path: Path) -> None:
    path.write_bytes(b"these are not the bytes of a database\n" * 200)


def empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGE = [
    (truncate_half, "database disk image is malformed"),
    (not_a_database, "file is not a database"),
    (empty, "it holds no run"),
]


@pytest.mark.parametrize(("damage", "reason"), DAMAGE, ids=["truncated", "not-a-database", "empty"])
@pytest.mark.parametrize("command", ["create-batch", "status-jobs", "collate-output", "delete-tasks"])
def test_damaged_database_error_submits_nothing(project, damage, reason, command):
    copy_legacy_run(project, "legacy_run")
    RunStore.open(project.data_path, writable=True).close()
    database = project.data_path / "run.sqlite3"
    damage(database)

    result = project.run(command, *(["--yes"] if command == "delete-tasks" else []))

    assert result.exit_code == 1
    assert result.err == (
        f"error: {database}: the run database is damaged ({reason}); restore it from a backup, or move it "
        "away to start a new run (its batches stay on the API side)\n"
    )
    assert project.server_files() == []
    assert project.server_batches() == []
    assert (project.data_path / "tasks/attempt-1/shard-0001.jsonl").exists()


def test_database_of_a_newer_version_error(project):
    copy_legacy_run(project, "legacy_run")
    RunStore.open(project.data_path, writable=True).close()
    database = project.data_path / "run.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA user_version = 2")
    db.close()

    result = project.run("create-batch")

    assert result.exit_code == 1
    assert result.err == (
        f"error: {database}: written by a newer version of openai_batch_api (run database schema 2, this "
        "version reads 1); upgrade openai_batch_api to continue this run\n"
    )
    assert project.server_files() == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, which answers writes as a full disk")
def test_full_disk_while_writing_the_output_error(project, server, monkeypatch):
    # /dev/full answers every write with ENOSPC, as a full disk does.
    project.write_rows(3)
    project.write_config(output_file="output.csv")
    project.run("create-batch")
    server.wait_idle(timeout=10)
    # The output's temporary file given a known name, and that name made to lead to /dev/full.
    temp = project.root / ".output.csv.tmp"
    monkeypatch.setattr(atomic_files, "temp_path_for", lambda path: path.with_name(f".{path.name}.tmp"))
    os.symlink("/dev/full", temp)

    result = project.run("collate-output")

    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.root / 'output.csv'}: no space left on the device; free some space there and run the "
        "command again (what was saved before is kept, nothing half-written)\n"
    )
    assert not (project.root / "output.csv").exists()
    assert not temp.exists() and not temp.is_symlink()
    assert load_run(project.data_path).collated_at is None


def test_status_jobs_polls_in_pages(tmp_path, monkeypatch):
    from openai_batch_api.local_server import LocalServer, ServerOptions
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    # Lines that take long keep every batch in progress while the run is polled.
    with LocalServer(state_dir=tmp_path / "slow", options=ServerOptions(line_latency=3)) as slow:
        project = Project(root=tmp_path, base_url=slow.base_url)
        project.write_rows(12)
        project.write_config(batch_size=1)
        assert project.run("create-batch").exit_code == 0

        result = project.run("status-jobs", "--debug")

        assert result.exit_code == 0, result.err
        assert "batches: 0 of 12 finished" in result.out
        # One page of the listing answers all twelve batches.
        assert result.err == "poll: 1 API call\n"


def test_delete_tasks_keeps_the_users_files(project, server):
    project.write_rows(6)
    project.write_config(data_path=".")
    (project.root / "tasks").mkdir()
    (project.root / "tasks" / "todo.md").write_text("mine")
    (project.root / "results").mkdir()
    (project.root / "results" / "final_report.txt").write_text("mine too")
    project.run("create-batch")
    server.wait_idle(timeout=10)
    assert project.run("collate-output").exit_code == 0
    written = sorted(p.relative_to(project.root).as_posix() for p in project.root.rglob("*.jsonl"))
    assert len(written) == 4  # two shard files and their two output files

    result = project.run("delete-tasks", "--yes")

    assert result.exit_code == 0, result.err
    assert result.out.endswith(": 4 local files, the run state, and 4 files on the API side\n")
    left = (p.relative_to(project.root).as_posix() for p in project.root.rglob("*") if p.is_file())
    assert sorted(p for p in left if not p.startswith("server-state/")) == [
        "config.yaml",
        "input.csv",
        "output.pkl",
        "results/final_report.txt",
        "tasks/todo.md",
    ]
    assert not (project.root / "tasks" / "attempt-1").exists()


def test_delete_tasks_removes_its_own_leftover_part_files_only(project, server):
    project.write_rows(6)
    project.run("create-batch")
    server.wait_idle(timeout=10)
    assert project.run("collate-output").exit_code == 0
    attempt = project.data_path / "tasks" / "attempt-1"
    own = attempt / ".shard-0001.jsonl.0123456789abcdef.part"  # a download killed halfway
    users = attempt / ".shard-0001.jsonl.bak.part"  # a name the tool never gives
    own.write_text("half")
    users.write_text("mine")

    assert project.run("delete-tasks", "--yes").exit_code == 0

    assert not own.exists()
    assert users.read_text() == "mine"


def test_delete_tasks_resumes_after_a_crash(project, server):
    project.write_rows(6)
    project.run("create-batch")
    server.wait_idle(timeout=10)
    project.run("collate-output")
    ledger = load_run(project.data_path)
    # A first delete-tasks got as far as one remote file, then died.
    first = ledger.shards[0].file_id
    project.client().files.delete(first)
    with RunStore.open(project.data_path, writable=True) as store:
        store.record_remote_deleted(first)

    result = project.run("delete-tasks", "--yes")

    assert result.exit_code == 0, result.err
    assert result.out.endswith(": 4 local files, the run state, and 3 files on the API side\n")
    assert project.server_files() == []
    assert not project.data_path.exists()


def test_status_jobs_without_a_batches_listing_fetches_each_batch(tmp_path, monkeypatch):
    from openai_batch_api.local_server import LocalServer, ServerOptions
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    options = ServerOptions(line_latency=3, no_batches_listing=True)
    with LocalServer(state_dir=tmp_path / "unlisted", options=options) as unlisted:
        project = Project(root=tmp_path, base_url=unlisted.base_url)
        project.write_rows(3)
        project.write_config(batch_size=1)
        assert project.run("create-batch").exit_code == 0

        result = project.run("status-jobs", "--debug")

        assert result.exit_code == 0, result.err
        assert "batches: 0 of 3 finished" in result.out
        # The listing answers 405; then one GET per batch.
        assert result.err == "poll: 4 API calls\n"


def test_status_jobs_listing_stops_when_fetching_each_batch_is_cheaper(tmp_path, monkeypatch):
    from openai_batch_api.local_server import LocalServer, ServerOptions
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "busy", options=ServerOptions(line_latency=30)) as busy:
        project = Project(root=tmp_path, base_url=busy.base_url)
        project.write_rows(2)
        project.write_config(batch_size=1)
        assert project.run("create-batch").exit_code == 0
        # The account is busy: 250 batches of someone else's, newer than the run's two.
        client = project.client()
        with open(project.data_path / "tasks/attempt-1/shard-0001.jsonl", "rb") as fh:
            other = client.files.create(file=("other.jsonl", fh), purpose="batch")
        for _ in range(250):
            client.batches.create(input_file_id=other.id, endpoint="/v1/chat/completions", completion_window="24h")

        result = project.run("status-jobs", "--debug")

        assert result.exit_code == 0, result.err
        assert "batches: 0 of 2 finished" in result.out
        # Two pages cost as much as the two batches on their own: then those two GETs.
        assert result.err == "poll: 4 API calls\n"
