"""The Python API: `Run`'s steps and its error classes, over real HTTP to the local backend."""

from __future__ import annotations

import os
import socket

import pandas as pd
import pytest

import openai_batch_api
from openai_batch_api import (
    ApiError,
    BatchApiToolError,
    BatchToolError,
    ConfigError,
    CostOverLimitError,
    InputError,
    Run,
    RunChangedError,
    RunLockedError,
)


@pytest.fixture
def run(project) -> Run:
    project.write_rows(10)
    return Run.from_config(project.write_config(poll_interval=0.05))


def test_run_every_step_returns_typed_results(project, run):
    created = run.create()
    assert (created.new, created.rows, created.shards, created.dry_run) == (True, 10, 3, False)
    assert created.cost is not None and created.cost.requests == 10

    submitted = run.submit()
    assert (submitted.run_id, submitted.submitted, submitted.batches, submitted.queued) == (created.run_id, 3, 3, 0)

    updates = []
    status = run.wait(on_update=updates.append)
    assert status.finished and status.progress.rows_done == 10
    assert updates and updates[-1].progress.finished

    collated = run.collate()
    assert isinstance(collated.table, pd.DataFrame)
    assert collated.table["id"].tolist() == [str(i) for i in range(1, 11)]
    assert collated.status_counts == {"ok": 10}
    assert collated.output_file == project.root / "output.pkl"
    pd.testing.assert_frame_equal(project.output(), collated.table)

    assert run.status().progress.rows_done == 10
    deleted = run.delete()
    assert deleted.deleted and deleted.run_id == created.run_id and deleted.remote_files == 6
    assert not run.exists()


def test_run_submit_again_submits_nothing_twice(project, run):
    run.create()
    run.submit()
    again = Run.from_config(project.config_path)
    assert again.create().new is False
    submitted = again.submit()
    assert (submitted.submitted, submitted.was_waiting, submitted.batches) == (0, 0, 3)
    assert len(project.server_batches()) == 3


def test_run_dry_run_records_nothing(project, run):
    created = run.create(dry_run=True)
    assert (created.dry_run, created.run_id, created.rows, created.shards) == (True, None, 10, 3)
    assert not run.exists()
    assert project.server_files() == []


@pytest.mark.parametrize("interval", [float("nan"), float("inf"), 1e300, 0, -1])
def test_run_wait_interval_out_of_range_error(run, interval):
    run.create()
    with pytest.raises(BatchApiToolError) as caught:
        run.wait(interval=interval)
    assert str(caught.value) == (
        f"interval must be a number of seconds above 0 and at most 86400 (a day), got {interval!r}"
    )


def test_run_cancel_asks_then_cancels_queued_shards(project, run):
    run.create()
    asked = []
    declined = run.cancel(confirm=lambda plan: asked.append(plan) or False)
    assert (declined.cancelled, declined.queued, declined.running) == (False, 3, 0)
    assert asked == [declined]
    cancelled = run.cancel()
    assert (cancelled.cancelled, cancelled.queued) == (True, 3)
    with pytest.raises(BatchApiToolError) as raised:
        run.submit()
    assert str(raised.value) == (
        f"{project.data_path}: run {cancelled.run_id} was cancelled; collate what it has, or submit its "
        f"unanswered rows again with create-batch --config {project.config_path} --retry"
    )


def test_run_retry_when_nothing_failed_adds_no_attempt(run):
    run.create()
    run.submit()
    run.wait()
    retried = run.retry(include_all=True)
    assert (retried.rows, retried.attempt) == (0, 1)


def test_run_from_mapping_checks_the_yaml_schema(tmp_path, server):
    mapping = {
        "input_file": "input.csv",
        "id_column": "id",
        "content_column": "content",
        "promt": "Classify.",
        "model_params": {"model": "gpt-4o-mini"},
        "data_path": "data",
    }
    with pytest.raises(ConfigError) as raised:
        Run.from_mapping(mapping, base_dir=tmp_path)
    assert str(raised.value) == (
        "Run.from_mapping(): 2 problems: unknown key 'promt' (did you mean 'prompt'?); missing key 'prompt'"
    )


def test_run_from_mapping_paths_relative_to_base_dir_and_output_file_optional(project, tmp_path):
    project.write_rows(4)
    mapping = {**project.config, "output_file": None}
    run = Run.from_mapping(mapping, base_dir=tmp_path)
    assert run.config.input_file == tmp_path / "input.csv"
    assert run.config.output_file is None
    run.create()
    run.submit()
    run.wait(interval=0.05)
    collated = run.collate()
    assert collated.output_file is None and len(collated.table) == 4
    assert not (tmp_path / "output.pkl").exists()


# Each error kind: its class, and the one line the commands print.


def test_config_error_no_such_file(tmp_path):
    with pytest.raises(ConfigError) as raised:
        Run.from_config(tmp_path / "missing.yaml")
    assert str(raised.value) == f"{tmp_path}/missing.yaml: no such config file; pass one with --config path/to/config.yaml"


def test_input_error_missing_input_file(project):
    run = Run.from_config(project.write_config(input_file="gone.csv"))
    with pytest.raises(InputError) as raised:
        run.create()
    assert str(raised.value) == (
        f"{project.config_path}: input_file {project.root}/gone.csv does not exist; fix the path in the config"
    )


def test_api_error_unreachable_server(project):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    project.write_rows(2)
    run = Run.from_config(project.write_config(base_url=f"http://127.0.0.1:{port}/v1"))
    # create searches the API for a lost run of this input before it records a new one.
    with pytest.raises(ApiError) as raised:
        run.create()
    assert str(raised.value) == (
        f"cannot reach the API at http://127.0.0.1:{port}/v1/batches?limit=100: connection refused; "
        "check base_url and the network, then run the command again"
    )
    assert raised.value.__cause__ is not None  # the SDK's error, with its request
    assert not run.exists()


def test_run_locked_error_while_another_holds_the_run(project, run):
    other = Run.from_config(project.config_path)
    with other.locked("notebook"), pytest.raises(RunLockedError) as raised:
        run.create()
    assert str(raised.value) == (
        f"{project.data_path}: notebook (pid {os.getpid()}) is working on this run; wait for it to finish "
        "(or stop it) and run the command again"
    )


def test_run_changed_error_after_the_table_changed(project, run):
    run.create()
    project.write_rows(11)
    with pytest.raises(RunChangedError) as raised:
        run.submit()
    assert str(raised.value) == (
        f"{project.config_path}: the input table input.csv changed since run {run_id_in(project)} "
        f"took it up in {project.data_path}: rows of input.csv: 11 (was 10); run create-batch to continue the run "
        "with the table as it is now (only its new and edited rows are sent), or restore the table"
    )
    assert project.server_files() == []


def test_cost_over_limit_error_unbounded_output(project):
    project.write_rows(2)
    run = Run.from_config(project.write_config(max_cost=1, model_params={"model": "gpt-4o-mini"}))
    with pytest.raises(CostOverLimitError) as raised:
        run.create()
    assert str(raised.value) == (
        f"{project.config_path}: max_cost is set but the output is unbounded; set max_tokens or "
        "max_completion_tokens in model_params"
    )
    assert not run.exists()


def test_error_classes_share_one_base():
    kinds = (ConfigError, InputError, ApiError, RunLockedError, RunChangedError, CostOverLimitError)
    assert all(issubclass(kind, BatchApiToolError) for kind in kinds)
    assert BatchToolError is BatchApiToolError
    assert openai_batch_api.BatchApiToolError is BatchApiToolError


def test_cli_prints_the_error_class_message(project, run):
    run.create()
    project.write_rows(11)
    result = project.run("collate-output")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.config_path}: the input table input.csv changed since run "
        f"{run_id_in(project)} took it up in {project.data_path}: rows of input.csv: 11 (was 10); run create-batch "
        "to continue the run with the table as it is now (only its new and edited rows are sent), or restore the "
        "table\n"
    )


def run_id_in(project) -> str:
    from openai_batch_api.utils.state.run_store import load_run

    return load_run(project.data_path).run_id


def wait_for_server_batches(project, status: str, count: int) -> None:
    """Poll the server through the SDK until `count` batches have `status` (bounded)."""
    import time

    deadline = time.monotonic() + 20
    while sum(b.status == status for b in project.server_batches()) < count:
        assert time.monotonic() < deadline, f"the server's batches never reached {status}"
        time.sleep(0.05)


def test_run_cancel_of_batches_that_finished_since_the_last_look_cancels_nothing(project, run):
    run.create()
    run.submit()  # the stored snapshots say validating or in progress
    wait_for_server_batches(project, "completed", 3)
    plan = run.cancel(confirm=lambda plan: False)
    assert (plan.running, plan.queued, plan.cancelled) == (0, 0, False)
    assert [b.status for b in project.server_batches()] == ["completed"] * 3


def test_run_cancel_of_a_batch_that_finishes_while_asked_keeps_its_state(tmp_path, monkeypatch):
    from openai_batch_api.local_server import LocalServer, ServerOptions
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    slow = ServerOptions(seed=1, line_latency=0.2)  # each batch runs about a second: still running when asked
    with LocalServer(state_dir=tmp_path / "slow-state", options=slow) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(10)
        run = Run.from_config(project.write_config())
        run.create()
        run.submit()
        asked = []

        def confirm_once_finished(plan) -> bool:
            asked.append(plan)
            wait_for_server_batches(project, "completed", 3)  # the server answers 409 to the cancels now
            return True

        cancelled = run.cancel(confirm=confirm_once_finished)
        assert asked and asked[0].running == 3
        assert (cancelled.cancelled, cancelled.running) == (True, 3)
        assert [s.status for s in run.status().ledger.shards] == ["completed"] * 3
