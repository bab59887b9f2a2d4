"""A lost run state on a server that keeps no batch metadata: the run is found by its uploads' names, never paid twice."""

from __future__ import annotations

import re

import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.state.run_store import STORE_NAME
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project


def lose_run_state(project: Project) -> None:
    for name in (STORE_NAME, f"{STORE_NAME}-wal", f"{STORE_NAME}-shm"):
        (project.data_path / name).unlink(missing_ok=True)


@pytest.fixture
def without_metadata(tmp_path, monkeypatch):
    """start(**more options) -> (Project, LocalServer): a server whose batches keep no metadata."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    servers: list[LocalServer] = []

    def start(**options) -> tuple[Project, LocalServer]:
        server = LocalServer(state_dir=tmp_path / "state", options=ServerOptions(no_batch_metadata=True, **options))
        server.start()
        servers.append(server)
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(8)
        project.write_config(batch_size=2)
        return project, server

    yield start
    for server in servers:
        server.stop()


def first_run(project: Project) -> tuple[str, list[str], list[str]]:
    """create-batch, then the run state lost: (run id, its batch ids newest first, its upload names)."""
    assert project.run("create-batch").exit_code == 0
    ledger = load_ledger(project.data_path)
    client = project.client()
    uploads = [client.files.retrieve(s.file_id).filename for s in reversed(ledger.shards)]  # newest first
    batches = [b.id for b in sorted(project.server_batches(), key=lambda b: b.created_at, reverse=True)]
    assert len(batches) == 4
    lose_run_state(project)
    return ledger.run_id, batches, uploads


def test_create_batch_after_a_lost_run_state_without_metadata_refuses(without_metadata):
    project, _ = without_metadata()
    run_id, batches, uploads = first_run(project)
    again = project.run("create-batch")
    assert again.exit_code == 1
    refused = re.fullmatch(
        rf"error: {re.escape(str(project.data_path))}: no run state here \({STORE_NAME}\), but the API holds 4 "
        rf"batches \((?P<b1>batch_\w+), (?P<b2>batch_\w+), \.\.\.\) made from the uploads of run {run_id} of this "
        "input and data_path; the server keeps no batch metadata, so that run cannot be taken up again "
        r"\(--adopt needs it\), and a new run would pay for every row again: cancel those batches on the server "
        r"\(or fetch their results there\), then delete the run's uploads \((?P<u1>\S+), (?P<u2>\S+), \.\.\.\) to "
        "start anew, or set another data_path\n",
        again.err,
    )
    assert refused, again.err
    assert {refused["b1"], refused["b2"]} <= set(batches)
    assert {refused["u1"], refused["u2"]} <= set(uploads)
    assert len(project.server_batches()) == 4
    adopt = project.run("create-batch", "--adopt")
    assert adopt.exit_code == 1
    assert adopt.err.startswith(f"error: {project.data_path}: the API holds 4 batches (")
    assert (
        f"made from the uploads of run {run_id} of this input and data_path, but the server keeps no batch metadata, "
        "which --adopt needs to put each batch back on its shard: "
    ) in adopt.err
    assert len(project.server_batches()) == 4


def test_another_data_path_starts_a_new_run_without_metadata(without_metadata):
    project, _ = without_metadata()
    first_run(project)
    project.write_config(data_path="other")
    again = project.run("create-batch")
    assert again.exit_code == 0, again.err
    assert len(project.server_batches()) == 8


def test_lost_run_without_metadata_and_files_listing_is_said(without_metadata):
    project, _ = without_metadata(no_files_listing=True)
    first_run(project)
    again = project.run("create-batch")
    assert again.exit_code == 0, again.err
    assert (
        "note: the server keeps no batch metadata and does not list files: whether a run of this input and "
        "data_path was already submitted (and its run state lost) cannot be checked\n"
    ) in again.err + again.out
