"""A server without a batches listing and lost creation answers: create-batch --settle is the way out.

Every command names the shards left in doubt and the flag; the user, who can look on the server,
says which batch is a shard's (checked: it exists, it was made from the shard's input file) or that
it has none (the shard is submitted again).
"""

from __future__ import annotations

import pytest

from openai_batch_api import Run
from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.providers import openai as api_module
from openai_batch_api.utils.state.ledger import CREATING, SUBMITTED
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project

LOST_CREATES = {
    "http_error_rate": 1.0, "http_error_kinds": ("drop_after",), "http_error_paths": "^POST /v1/batches$",
}


def stranded_message(project: Project, shards) -> str:
    listed = ", ".join(f"{s.key} (input file {s.file_id})" for s in shards)
    return (
        f"error: shards {listed}: batch creations' answers were lost and the server does not list batches (405), "
        "so whether they made batches cannot be checked; no other batch is created for these shards (that could "
        f"pay twice): look on the server for a batch of each input file, then run create-batch --config "
        f"{project.config_path} with --settle SHARD=BATCH_ID for each shard whose batch you found and --settle "
        "SHARD=none for each that has none (it is submitted again)"
    )


@pytest.fixture
def stranded(tmp_path, monkeypatch):
    """A run whose three batch creations were made, their answers lost, on a server without a batches listing.

    Yields (project, server, batch id made from each shard's file): the server is started again without
    faults (still without a listing), as after the network came back.
    """
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setattr(api_module, "DEFAULT_RETRY", api_module.RetryPolicy(attempts=2, base_delay=0.01))
    state = tmp_path / "state"
    with LocalServer(state_dir=state, options=ServerOptions(no_batches_listing=True, **LOST_CREATES)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(6)
        project.write_config(batch_size=2, concurrency=1)
        created = project.run("create-batch")
        assert created.exit_code == 1
        shards = load_ledger(project.data_path).shards
        assert created.err.splitlines()[-1] == stranded_message(project, shards)
        made = {row["input_file_id"]: row["id"] for row in server._store.list_batches(after=None, limit=100)[0]}
    assert [s.state for s in shards] == [CREATING] * 3
    with LocalServer(state_dir=state, options=ServerOptions(no_batches_listing=True)) as server:
        project.base_url = server.base_url
        project.write_config(base_url=server.base_url)
        yield project, server, [made[s.file_id] for s in shards]


def test_every_command_names_the_stranded_shards_and_the_settle_flag(stranded):
    project, _, _ = stranded
    shards = load_ledger(project.data_path).shards
    for command, *args in (
        ["create-batch"],
        ["create-batch", "--retry"],
        ["status-jobs", "--wait", "--interval", "0.05"],
        ["status-jobs", "--cancel", "--yes"],
        ["delete-tasks", "--force", "--yes"],
    ):
        result = project.run(command, *args)
        assert (command, result.exit_code, result.err.splitlines()[-1]) == (
            command, 1, stranded_message(project, shards)
        )
    assert [s.state for s in load_ledger(project.data_path).shards] == [CREATING] * 3


def test_create_batch_settle_takes_up_the_batches_and_submits_the_shard_without_one(stranded):
    project, server, made = stranded
    first, second, third = load_ledger(project.data_path).shards
    result = project.run(
        "create-batch", "--settle", f"{first.key}={made[0]}", "--settle", f"{second.key}={made[1]}",
        "--settle", f"{third.key}=none",
    )
    assert result.exit_code == 0, result.err
    assert result.out.splitlines()[:3] == [
        f"shard {first.key}: batch {made[0]} taken up as its batch",
        f"shard {second.key}: batch {made[1]} taken up as its batch",
        f"shard {third.key}: no batch was made; it is submitted again",
    ]
    assert "submitted 1 batch now" in result.out
    ledger = load_ledger(project.data_path)
    assert [s.state for s in ledger.shards] == [SUBMITTED] * 3
    assert [s.batch_id for s in ledger.shards][:2] == made[:2]
    assert ledger.shards[2].batch_id not in made  # the user said it had none: submitted again
    assert server.wait_idle(timeout=10)
    waited = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert waited.exit_code == 0, waited.err
    assert project.run("collate-output").exit_code == 0
    assert set(project.output()["api_status"]) == {"ok"}


@pytest.mark.parametrize(
    ("settle", "message"),
    [
        ("{first}={made1}", "--settle {first}={made1}: batch {made1} was made from input file {file1}, not from "
         "shard {first}'s input file {file0}; give the batch made from {file0}"),
        ("{first}=batch_000000000000000000000000", "--settle {first}=batch_000000000000000000000000: the server has "
         "no batch batch_000000000000000000000000; check the id"),
        ("a9-s0001={made0}", "--settle a9-s0001={made0}: run {run} has no shard a9-s0001 (its shards: {first}, "
         "{second}, {third})"),
    ],
    ids=["another-shards-batch", "no-such-batch", "no-such-shard"],
)
def test_create_batch_settle_wrong_ids_exit_1_with_one_line(stranded, settle, message):
    project, _, made = stranded
    ledger = load_ledger(project.data_path)
    first, second, third = ledger.shards
    names = {
        "first": first.key, "second": second.key, "third": third.key, "made0": made[0], "made1": made[1],
        "file0": first.file_id, "file1": second.file_id, "run": ledger.run_id,
    }
    result = project.run("create-batch", "--settle", settle.format(**names))
    assert (result.exit_code, result.err) == (1, f"error: {message.format(**names)}\n")
    assert result.out == ""
    assert [s.state for s in load_ledger(project.data_path).shards] == [CREATING] * 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--settle", "a1-s0001"], "--settle a1-s0001: give SHARD=BATCH_ID (that batch is the shard's) or "
         "SHARD=none (there is none: submit it again), e.g. --settle a1-s0002=batch_abc123"),
        (["--settle", "a1-s0001=none", "--settle", "a1-s0001=none"],
         "--settle a1-s0001: shard a1-s0001 is settled twice; give each shard once"),
        (["--settle", "a1-s0001=none", "--dry-run"], "--settle cannot be combined with --dry-run"),
        (["--settle", "a1-s0001=none", "--adopt"], "--settle cannot be combined with --adopt"),
    ],
    ids=["no-equals", "twice", "dry-run", "adopt"],
)
def test_create_batch_settle_usage_errors_exit_2(stranded, arguments, message):
    project, _, _ = stranded
    result = project.run("create-batch", *arguments)
    assert (result.exit_code, result.err) == (2, f"error: {message}\n")


def test_settle_none_is_refused_where_the_listing_shows_the_shards_batch(stranded, tmp_path):
    project, server, made = stranded
    server.stop()
    with LocalServer(state_dir=tmp_path / "state", options=ServerOptions()) as listing:
        project.write_config(base_url=listing.base_url)
        first = load_ledger(project.data_path).shards[0]
        result = project.run("create-batch", "--settle", f"{first.key}=none")
        assert (result.exit_code, result.err) == (
            1,
            f"error: --settle {first.key}=none: the server holds batch {made[0]}, made from shard {first.key}'s "
            f"input file {first.file_id}; settle it with --settle {first.key}={made[0]}\n",
        )


def test_run_settle_from_python_then_submit(stranded):
    project, _, made = stranded
    ledger = load_ledger(project.data_path)
    run = Run.from_config(project.config_path)
    settled = run.settle({s.key: batch_id for s, batch_id in zip(ledger.shards, made, strict=True)})
    assert settled.taken_up == {s.key: batch_id for s, batch_id in zip(ledger.shards, made, strict=True)}
    assert settled.resubmitted == []
    assert run.submit().submitted == 0
    assert [s.batch_id for s in load_ledger(project.data_path).shards] == made
