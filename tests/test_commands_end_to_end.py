"""The four commands through their entry points, against the local backend over HTTP."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from openai_batch_api.local_server import ServerOptions
from openai_batch_api.utils.state.run_store import load_run as load_ledger


def test_commands_full_run_keeps_every_row_in_input_order(project, server):
    table = project.write_rows(10)

    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "10 rows in 3 shards" in created.out
    assert "submitted 3 batches now" in created.out
    assert created.out.rstrip().endswith(f"next: status-jobs --config {project.config_path}")
    assert server.wait_idle(timeout=10)

    status = project.run("status-jobs")
    assert status.exit_code == 0, status.err
    assert "rows: 10 done, 0 failed, 0 pending of 10; batches: 3 of 3 finished" in status.out
    assert status.out.count("completed") == 3

    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    assert f"collated 10 rows into {project.root / 'output.pkl'}: 10 ok" in collated.out
    output = project.output()
    assert list(output["id"]) == list(table["id"])
    assert list(output["content"]) == list(table["content"])
    assert set(output["api_status"]) == {"ok"}
    assert output["api_output"].str.len().min() > 0
    assert output["api_error"].isna().all()
    assert (output["api_prompt_tokens"] > 0).all()
    assert (output["api_attempts"] == 1).all()

    deleted = project.run("delete-tasks", "--yes")
    assert deleted.exit_code == 0, deleted.err
    assert "and 6 files on the API side" in deleted.out
    assert not project.data_path.exists()
    assert project.server_files() == []


def test_create_batch_rerun_submits_nothing_twice(project, server):
    project.write_rows(6)
    assert project.run("create-batch").exit_code == 0

    again = project.run("create-batch")
    assert again.exit_code == 0, again.err
    assert "every shard already has its batch: nothing was submitted again" in again.out
    assert len(project.server_batches()) == 2
    assert len(project.server_files()) in (2, 3, 4)  # inputs, plus outputs of batches already done


def test_create_batch_ids_keep_their_text(project, server):
    table = pd.DataFrame({"id": ["007", "1.0", "1"], "content": ["a", "b", "c"]})
    project.write_table(table)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    assert project.run("collate-output").exit_code == 0
    assert list(project.output()["id"]) == ["007", "1.0", "1"]
    assert set(project.output()["api_status"]) == {"ok"}


def test_status_jobs_next_step_after_collate_is_delete_tasks(project, server):
    project.write_rows(3)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    before = project.run("status-jobs")
    assert before.out.splitlines()[-1] == f"next: collate-output --config {project.config_path}"
    assert project.run("collate-output").exit_code == 0
    after = project.run("status-jobs")
    assert after.exit_code == 0
    assert after.out.splitlines()[-1] == (
        f"next, when you are done with the run: delete-tasks --config {project.config_path}"
    )


# A dry run refuses what the real run refuses before any work: its all-clear holds for the real run.
DRY_OR_REAL = pytest.mark.parametrize("arguments", [(), ("--dry-run",)], ids=["real", "dry-run"])


@DRY_OR_REAL
def test_create_batch_without_api_key_error_before_any_work(project, monkeypatch, arguments):
    monkeypatch.delenv("OPENAI_API_KEY")
    project.write_rows(3)
    # Not on loopback, so a key is needed; the check comes before any call, so nothing is sent there.
    project.write_config(base_url="https://example.com/v1")
    result = project.run("create-batch", *arguments)
    assert result.exit_code == 1
    assert result.err == (
        "error: no API key: set OPENAI_API_KEY in the environment or in a .env file beside config.yaml, "
        "or set `base_url: local` in the config to use the local backend\n"
    )
    assert result.out == ""
    assert not project.data_path.exists()  # no task file, no ledger


def test_create_batch_loopback_server_needs_no_api_key(project, server, monkeypatch):
    """The README's path: point base_url at the URL the local backend prints, set no key."""
    monkeypatch.delenv("OPENAI_API_KEY")
    project.write_rows(3)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    for command, *arguments in (("status-jobs",), ("collate-output",), ("delete-tasks", "--yes")):
        result = project.run(command, *arguments)
        assert result.exit_code == 0, result.err
    assert project.server_files() == []  # delete-tasks reached the server too


@DRY_OR_REAL
@pytest.mark.parametrize(
    ("local_backend", "message"),
    [
        ({"line_latncy": 1}, "local_backend: unknown key `line_latncy`; did you mean `line_latency`?"),
        (
            {"nonsense": 1},
            "local_backend: unknown key `nonsense`; known keys: "
            + ", ".join(f.name for f in dataclasses.fields(ServerOptions)),
        ),
        (
            {"api_latency": float("nan")},
            "local_backend.api_latency must be a number of seconds from 0 to 86400, not nan; fix it in the config",
        ),
        (
            {"upstream": "http://example.com/v1", "upstream_key_env": "OPENAI_API_KEY"},
            "--upstream http://example.com/v1 is plain HTTP beyond loopback: the key in OPENAI_API_KEY would cross "
            "the network readable by anyone on the way; use https://, or send it anyway with --upstream-key-over-http",
        ),
    ],
    ids=["typo", "unknown", "nan", "upstream-key"],
)
def test_create_batch_bad_local_backend_option_error_before_any_work(project, arguments, local_backend, message):
    project.write_rows(3)
    project.write_config(base_url="local", local_backend=local_backend)
    result = project.run("create-batch", *arguments)
    assert result.exit_code == 1
    assert result.err == f"error: {message}\n"
    assert result.out == ""
    assert not project.data_path.exists()


def test_create_batch_symlink_to_a_secret_named_as_an_image_uploads_nothing(project, server):
    """`ln -s secret.env secret.png`: the file holds no image, so nothing of it leaves the machine."""
    (project.root / "secret.env").write_text("OPENAI_API_KEY=sk-secret\n", encoding="utf-8")
    (project.root / "secret.png").symlink_to("secret.env")
    project.write_table(pd.DataFrame({"id": ["1", "2"], "content": ["look", "text"], "image": ["secret.png", ""]}))
    project.write_config(image_url_column="image")
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.root / 'input.csv'}: row 1 (id '1'): image 'secret.png' does not hold a png, jpeg, gif or "
        "webp image (its first bytes are not one's); point the cell at the image file\n"
    )
    assert (project.server_files(), project.server_batches()) == ([], [])


def test_create_batch_image_through_a_symlinked_folder_uploads_nothing(project, server, tmp_path):
    """`imgs -> ../outside`: the image cell imgs/secret.png resolves outside the table's folder."""
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"\x89PNG\r\n\x1a\n private picture")
    (project.root / "imgs").symlink_to(outside)
    project.write_table(pd.DataFrame({"id": ["1"], "content": ["look"], "image": ["imgs/secret.png"]}))
    project.write_config(image_url_column="image")
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.root / 'input.csv'}: row 1 (id '1'): image 'imgs/secret.png' leads through a symbolically "
        f"linked folder to a file outside the table's folder ({project.root}); copy the image into that folder\n"
    )
    assert (project.server_files(), project.server_batches()) == ([], [])


def test_create_batch_output_file_same_as_input_error_before_any_work(project):
    project.write_rows(3)
    project.write_config(output_file="input.csv")
    before = (project.root / "input.csv").read_bytes()
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.config_path}: output_file is the input_file (input.csv); collate-output would "
        "overwrite the table the run was made from: choose another output_file\n"
    )
    assert not project.data_path.exists()
    assert (project.root / "input.csv").read_bytes() == before


def test_create_batch_unknown_output_format_error_before_any_work(project):
    project.write_rows(3)
    project.write_config(output_file="output.xlsx")
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.config_path}: 'output_file' must end in .pkl, .pickle, .csv, .parquet, .jsonl, "
        "got 'output.xlsx'\n"
    )
    assert not project.data_path.exists()
    assert project.server_files() == []


def test_create_batch_api_key_from_dotenv(project, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    (project.root / ".env").write_text("# key for tests\nOPENAI_API_KEY='from-dotenv'\n")
    project.write_rows(3)
    result = project.run("create-batch")
    assert result.exit_code == 0, result.err


def test_create_batch_duplicate_ids_uploads_nothing(project, server):
    project.write_table(pd.DataFrame({"id": ["1", "2", "1"], "content": ["a", "b", "c"]}))
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err.startswith(f"error: {project.root / 'input.csv'}: ")
    assert "duplicate" in result.err
    assert result.err.count("\n") == 1
    assert project.server_files() == []
    assert load_ledger(project.data_path) is None


def test_create_batch_changed_prompt_refuses_to_mix(project):
    project.write_rows(4)
    assert project.run("create-batch").exit_code == 0
    project.write_rows(5)
    project.write_config(prompt="Another prompt.")
    result = project.run("create-batch")
    assert result.exit_code == 1
    run_id = load_ledger(project.data_path).run_id
    assert result.err == (
        f"error: {project.config_path}: changed since run {run_id} was created in {project.data_path}: prompt "
        "Another prompt. (was Classify the text.). To continue that run, restore what it was made from; to start a "
        "new run, set another data_path (or collate-output and delete-tasks the old run first)\n"
    )


def test_collate_output_while_batches_run_marks_pending(tmp_path, monkeypatch):
    from openai_batch_api.local_server import LocalServer, ServerOptions
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    slow = ServerOptions(seed=1, line_latency=0.5)
    with LocalServer(state_dir=tmp_path / "slow", options=slow) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(8)
        project.write_config(batch_size=8)
        assert project.run("create-batch").exit_code == 0
        result = project.run("collate-output")
        assert result.exit_code == 0, result.err
        output = project.output()
        assert len(output) == 8
        assert "pending" in set(output["api_status"])
        assert "still pending: run collate-output again once" in result.out
        server.stop()


def test_status_jobs_json(project, server):
    import json

    project.write_rows(5)
    project.run("create-batch")
    server.wait_idle(timeout=10)
    result = project.run("status-jobs", "--json")
    assert result.exit_code == 0, result.err
    data = json.loads(result.out)
    assert data["summary"]["rows"] == 5
    assert data["summary"]["done"] == 5
    assert [b["status"] for b in data["batches"]] == ["completed", "completed"]
    assert all(b["batch_id"].startswith("batch_") for b in data["batches"])


@pytest.mark.parametrize(
    ("command", "flags", "message"),
    [
        ("create-batch", ("--dry-run", "--retry"),
         "--dry-run cannot be combined with --retry; check the run with status-jobs"),
        ("status-jobs", ("--collate",), "--collate goes with --wait: status-jobs --wait --collate"),
    ],
)
def test_flags_that_do_not_go_together_usage_error(project, command, flags, message):
    project.write_rows(2)
    result = project.run(command, *flags)
    assert (result.exit_code, result.err, result.out) == (2, f"error: {message}\n", "")
    assert not project.data_path.exists()


def test_status_jobs_before_any_run_error(project):
    project.write_rows(2)
    result = project.run("status-jobs")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.data_path}: no run here yet (no run.sqlite3); start one with "
        f"create-batch --config {project.config_path}\n"
    )


def test_delete_tasks_refuses_without_yes_when_not_a_terminal(project, server, monkeypatch):
    import io

    project.write_rows(2)
    project.run("create-batch")
    server.wait_idle(timeout=10)
    project.run("collate-output")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    result = project.run("delete-tasks")
    assert result.exit_code == 1
    assert "Standard input is not a terminal, so nobody can answer: pass --yes" in result.err
    assert (project.data_path / "run.sqlite3").exists()


def test_delete_tasks_before_collate_refuses(project, server):
    project.write_rows(2)
    project.run("create-batch")
    server.wait_idle(timeout=10)
    result = project.run("delete-tasks", "--yes")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.data_path}: the results of run {load_ledger(project.data_path).run_id} are not "
        f"collated yet; run collate-output --config {project.config_path} first, or pass --force\n"
    )


def test_delete_tasks_keeps_other_files(project, server):
    project.write_rows(2)
    project.run("create-batch")
    server.wait_idle(timeout=10)
    project.run("collate-output")
    (project.data_path / "notes.txt").write_text("mine")
    assert project.run("delete-tasks", "--yes").exit_code == 0
    assert sorted(p.name for p in project.data_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".pkl"])
def test_collate_output_writes_the_format_of_its_extension(project, server, suffix):
    project.write_rows(3)
    project.write_config(output_file=f"result{suffix}")
    project.run("create-batch")
    server.wait_idle(timeout=10)
    assert project.run("collate-output").exit_code == 0
    path = project.root / f"result{suffix}"
    read = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pkl": pd.read_pickle}.get(
        suffix, lambda p: pd.read_json(p, lines=True)
    )
    assert list(read(path)["api_status"]) == ["ok"] * 3


def test_status_jobs_unknown_batch_shows_status_message_and_request_id(tmp_path, monkeypatch):
    from openai_batch_api.local_server import LocalServer, ServerOptions
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "first", options=ServerOptions(line_latency=0.5)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(2)
        assert project.run("create-batch").exit_code == 0
    batch_id = load_ledger(project.data_path).shards[0].batch_id
    # A server that never saw the run: its batch ids are unknown there.
    with LocalServer(state_dir=tmp_path / "second", options=ServerOptions()) as server:
        project.write_config(base_url=server.base_url)
        result = project.run("status-jobs")
    assert result.exit_code == 1
    assert result.err.startswith(f"error: the API answered 404: No batch found with id '{batch_id}'")
    assert " (request id req_" in result.err
    assert result.err.endswith(")\n")


def test_create_batch_unreachable_server_error(project):
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    project.write_rows(2)
    project.write_config(base_url=f"http://127.0.0.1:{port}/v1")
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err.splitlines()[-1] == (
        f"error: cannot reach the API at http://127.0.0.1:{port}/v1/batches?limit=100: connection refused; "
        "check base_url and the network, then run the command again"
    )
    # The search for a lost run's batches comes first: nothing was written.
    assert load_ledger(project.data_path) is None


def test_collate_output_second_run_downloads_nothing_again(project, server):
    project.write_rows(3)
    project.run("create-batch")
    server.wait_idle(timeout=10)
    assert project.run("collate-output").exit_code == 0
    results = sorted((project.data_path / "results").iterdir())
    stamps = [p.stat().st_mtime_ns for p in results]
    assert project.run("collate-output").exit_code == 0
    assert [p.stat().st_mtime_ns for p in sorted((project.data_path / "results").iterdir())] == stamps
