"""Servers that implement less: no files listing, no batches listing, no batch metadata."""

from __future__ import annotations

import openai
import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.providers import openai as api_module
from openai_batch_api.utils.providers.openai import BatchApi
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project

FILES_NOTICE = (
    "note: the server does not list files (405): an upload whose answer was lost is made again; the earlier copy, "
    "if one was made, is not used and, as nothing lists it, stays on the server until it expires (30 days on "
    "OpenAI)\n"
)
METADATA_NOTICE = "note: the server keeps no batch metadata: batches are found again by their input file\n"


@pytest.fixture
def limited(tmp_path, monkeypatch):
    """limited(**server options) -> (Project, LocalServer) against a server with those options."""
    servers: list[LocalServer] = []
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setattr(api_module, "DEFAULT_RETRY", api_module.RetryPolicy(attempts=8, base_delay=0.01))

    def start(**options) -> tuple[Project, LocalServer]:
        server = LocalServer(state_dir=tmp_path / "limited-state", options=ServerOptions(**{"seed": 4, **options}))
        server.start()
        servers.append(server)
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(6)
        project.write_config(batch_size=2, concurrency=1)
        return project, server

    yield start
    for server in servers:
        server.stop()


def lost_answers(path: str) -> dict:
    """Every call to `path` is carried out, and its answer lost: the worst case for paying twice."""
    return {"http_error_rate": 0.5, "http_error_kinds": ("drop_after",), "http_error_paths": f"^POST {path}$"}


def test_listing_options_answer_405(limited):
    project, _ = limited(no_files_listing=True, no_batches_listing=True)
    client = project.client()
    for call in (client.files.list, client.batches.list):
        with pytest.raises(openai.APIStatusError) as caught:
            call()
        assert caught.value.status_code == 405


def test_without_files_listing_lost_uploads_are_made_again(limited):
    project, server = limited(no_files_listing=True, **lost_answers("/v1/files"))
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert FILES_NOTICE in created.out
    ledger = load_ledger(project.data_path)
    batches = project.server_batches()
    assert len(batches) == 3
    assert sorted(b.input_file_id for b in batches) == sorted(s.file_id for s in ledger.shards)
    files, _ = server._store.list_files(purpose="batch", after=None, limit=100, ascending=True)
    assert len(files) > 3, "no upload answer was lost: the test lost its point"
    status = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert status.exit_code == 0, status.err
    assert "rows: 6 done, 0 failed, 0 pending of 6" in status.out


def test_without_batch_metadata_a_lost_creation_is_found_by_its_input_file(limited):
    project, _ = limited(no_batch_metadata=True, **lost_answers("/v1/batches"))
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert METADATA_NOTICE in created.out
    ledger = load_ledger(project.data_path)
    batches = project.server_batches()
    assert all(batch.metadata is None for batch in batches)
    assert sorted(b.id for b in batches) == sorted(s.batch_id for s in ledger.shards)
    assert sorted(b.input_file_id for b in batches) == sorted(s.file_id for s in ledger.shards)


def test_without_batches_listing_a_run_without_lost_calls_goes_through(limited):
    project, _ = limited(no_batches_listing=True, no_files_listing=True, no_batch_metadata=True)
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert [line for line in created.out.splitlines() if line.startswith("note:")] == [
        "note: the server does not list batches (405): whether a run of this input and data_path was already "
        "submitted (and its run state lost) cannot be checked"
    ]
    status = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert status.exit_code == 0, status.err
    assert "rows: 6 done, 0 failed, 0 pending of 6" in status.out


def test_without_batches_listing_a_lost_creation_refuses_to_guess(limited):
    project, server = limited(
        no_batches_listing=True, http_error_rate=1.0, http_error_kinds=("drop_after",),
        http_error_paths="^POST /v1/batches$",
    )
    result = project.run("create-batch")
    assert result.exit_code == 1
    ledger = load_ledger(project.data_path)
    listed = ", ".join(f"{s.key} (input file {s.file_id})" for s in ledger.shards)
    # Before the error, one "retrying in ..." line per retry of the dropped calls.
    assert result.err.splitlines()[-1] + "\n" == (
        f"error: shards {listed}: batch creations' answers were lost and the server does not list batches (405), "
        "so whether they made batches cannot be checked; no other batch is created for these shards (that could "
        f"pay twice): look on the server for a batch of each input file, then run create-batch --config "
        f"{project.config_path} with --settle SHARD=BATCH_ID for each shard whose batch you found and --settle "
        "SHARD=none for each that has none (it is submitted again)\n"
    )
    assert [s.state for s in ledger.shards] == ["creating"] * 3
    made, _ = server._store.list_batches(after=None, limit=100)
    # One batch per shard, never a second.
    assert sorted(row["input_file_id"] for row in made) == sorted(s.file_id for s in ledger.shards)
    again = project.run("create-batch")  # a re-run refuses the same way rather than create another
    # The re-run's retrying lines name the call only; the error line is the same.
    assert (again.exit_code, again.err.splitlines()[-1]) == (1, result.err.splitlines()[-1])
    assert "retrying in" not in again.err
    assert len(server._store.list_batches(after=None, limit=100)[0]) == 3


def test_find_batch_names_every_untagged_batch_of_the_same_file(limited):
    project, _ = limited(no_batch_metadata=True)
    client = project.client()
    file = client.files.create(file=("in.jsonl", b'{"custom_id": "a", "method": "POST", "url": '
                                     b'"/v1/chat/completions", "body": {"model": "m", "messages": []}}\n'),
                               purpose="batch")
    made = [
        client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
        for _ in range(2)
    ]
    api = BatchApi(client)
    with pytest.raises(BatchToolError) as caught:
        api.find_batch(metadata={"shard": "0001"}, since=0, input_file_id=file.id)
    ids = ", ".join(batch.id for batch in reversed(made))
    assert str(caught.value) == (
        f"shard 0001: batches {ids} were all made from input file {file.id} and the server keeps no metadata "
        "to tell which is this run's; check them and cancel the extra ones before going on"
    )
    found = api.find_batch(metadata={"shard": "0001"}, since=0, input_file_id=file.id, exclude=[made[0].id])
    assert found.id == made[1].id
