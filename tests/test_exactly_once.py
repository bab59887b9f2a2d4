"""Never pay twice, never lose a batch: kills at random moments, faults, the lock, the token queue."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter

import pandas as pd
import pytest

from openai_batch_api.commands import create_batch
from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.costs import tokens
from openai_batch_api.utils.state.ledger import CREATING, UPLOADING
from openai_batch_api.utils.state.run_lock import run_lock
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project

KILL_TRIALS = int(os.environ.get("KILL_TRIALS", "50"))


def _child_create_batch(config_path: str) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    code = 1
    try:
        code = create_batch.main(["--config", config_path])
    finally:
        os._exit(code)


def start_create_batch(project: Project) -> multiprocessing.Process:
    """create-batch in a forked child, so it can be killed without a slow interpreter start."""
    child = multiprocessing.get_context("fork").Process(target=_child_create_batch, args=(str(project.config_path),))
    child.start()
    return child


def batches_per_shard(project: Project, run_id: str) -> Counter:
    tags = [b.metadata or {} for b in project.client().batches.list(limit=100)]
    return Counter(t["shard"] for t in tags if t.get("openai_batch_api_run") == run_id)


@pytest.fixture
def fast_server(tmp_path):
    with LocalServer(state_dir=tmp_path / "server-state", options=ServerOptions(seed=3, line_latency=0.05)) as server:
        yield server


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the server's threads running
def test_create_batch_killed_at_random_moments_one_batch_per_shard(tmp_path, fast_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    rng = random.Random(20261125)
    # Warm up in this process (the tokenizer loads once, here, so that every forked child has it rather
    # than a counting process of this one's), then time an uninterrupted child run: the kills land
    # anywhere inside such a run.
    tokens.clear_caches()
    tokens.get_estimator("gpt-4o-mini").count("warm up")
    probes = []
    for name in ("warm-up", "probe"):
        probe = Project(root=tmp_path / name, base_url=fast_server.base_url)
        probe.root.mkdir()
        probe.write_rows(6)
        probe.write_config(batch_size=1, concurrency=2)
        probes.append(probe)
    assert probes[0].run("create-batch").exit_code == 0
    started = time.monotonic()
    child = start_create_batch(probes[1])
    child.join(timeout=60)
    full_run = time.monotonic() - started
    assert child.exitcode == 0

    caught_mid_call = 0  # kills that left an upload or a creation in doubt
    for trial in range(KILL_TRIALS):
        project = Project(root=tmp_path / f"trial-{trial}", base_url=fast_server.base_url)
        project.root.mkdir()
        project.write_rows(6)
        project.write_config(batch_size=1, concurrency=2)
        for _ in range(rng.choice((1, 1, 2))):  # sometimes killed twice in a row
            child = start_create_batch(project)
            time.sleep(rng.uniform(0, full_run))
            os.kill(child.pid, signal.SIGKILL)
            child.join()
        killed = load_ledger(project.data_path)
        if killed and any(s.state in (UPLOADING, CREATING) for s in killed.shards):
            caught_mid_call += 1
        finished = project.run("create-batch")
        assert finished.exit_code == 0, finished.err
        ledger = load_ledger(project.data_path)
        counts = batches_per_shard(project, ledger.run_id)
        assert counts == Counter({s.key: 1 for s in ledger.shards}), f"trial {trial}: {counts}"
        assert all(s.batch_id for s in ledger.shards)
    assert caught_mid_call >= KILL_TRIALS // 10, "the kills rarely hit an API call: the test lost its point"


def test_commands_finish_under_transient_faults_with_identical_output(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    outputs = []
    for name, rate in (("clean", 0.0), ("faulty", 0.2)):
        options = ServerOptions(
            seed=11, http_error_rate=rate, http_error_kinds=("429", "500", "503", "drop", "drop_after"), retry_after=0.01
        )
        with LocalServer(state_dir=tmp_path / f"{name}-state", options=options) as server:
            project = Project(root=tmp_path / name, base_url=server.base_url)
            project.root.mkdir()
            project.write_rows(12)
            project.write_config(batch_size=3)
            for command, args in (("create-batch", ()), ("status-jobs", ("--wait", "--interval", "0.05"))):
                result = project.run(command, *args)
                assert result.exit_code == 0, f"{name} {command}: {result.err}"
            assert project.run("collate-output").exit_code == 0
            outputs.append(project.output())
            ledger = load_ledger(project.data_path)
            assert batches_per_shard(project, ledger.run_id) == Counter({s.key: 1 for s in ledger.shards})
            result = project.run("delete-tasks", "--yes")
            assert result.exit_code == 0, result.err
    clean, faulty = outputs
    assert set(faulty["api_status"]) == {"ok"}
    pd.testing.assert_frame_equal(clean, faulty)


def test_create_batch_refuses_while_another_command_holds_the_run(project):
    project.write_rows(2)
    project.data_path.mkdir()
    with run_lock(project.data_path, command="status-jobs --wait"):
        result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.data_path}: status-jobs --wait (pid {os.getpid()}) is working on this run; "
        "wait for it to finish (or stop it) and run the command again\n"
    )
    assert project.server_files() == []


def test_create_batch_lock_left_by_a_dead_process_blocks_nobody(project):
    project.write_rows(2)
    project.data_path.mkdir()
    (project.data_path / ".lock").write_text("create-batch (pid 999999)")
    result = project.run("create-batch")
    assert result.exit_code == 0, result.err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_two_concurrent_create_batch_make_one_run(project):
    project.write_rows(8)
    project.write_config(batch_size=2)
    children = [start_create_batch(project) for _ in range(2)]
    for child in children:
        child.join(timeout=60)
    assert sorted(c.exitcode for c in children) in ([0, 0], [0, 1])
    project.run("create-batch")
    ledger = load_ledger(project.data_path)
    assert batches_per_shard(project, ledger.run_id) == Counter({s.key: 1 for s in ledger.shards})
    runs = {(b.metadata or {}).get("openai_batch_api_run") for b in project.server_batches()}
    assert runs == {ledger.run_id}


def test_token_queue_submits_what_fits_and_drains_on_wait(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "state", options=ServerOptions(seed=5, line_latency=0.02)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(9)
        project.write_config(batch_size=3)
        assert project.run("create-batch", "--dry-run").exit_code == 0
        per_shard = max(s.prompt_tokens for s in _plan_tokens(project))
        project.write_config(max_enqueued_tokens=per_shard * 2)
        created = project.run("create-batch")
        assert created.exit_code == 0, created.err
        assert "submitted 2 batches now" in created.out
        assert "1 shard queued until earlier batches finish (enqueued-token limit)" in created.out
        waited = project.run("status-jobs", "--wait", "--interval", "0.05")
        assert waited.exit_code == 0, waited.err
        assert "submitted 1 queued shard" in waited.out
        assert "rows: 9 done, 0 failed, 0 pending of 9; batches: 3 of 3 finished" in waited.out


def test_token_limit_exceeded_goes_back_to_the_queue(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    project = Project(root=tmp_path, base_url="")
    project.write_rows(9)
    project.write_config(batch_size=3, base_url=None)
    assert project.run("create-batch", "--dry-run").exit_code == 0  # a dry run calls no API
    per_shard = max(s.prompt_tokens for s in _plan_tokens(project))
    # Batches slow enough that the second is created while the first still holds the queue.
    options = ServerOptions(seed=5, line_latency=0.2, enqueued_token_limit=int(per_shard * 1.5))
    with LocalServer(state_dir=tmp_path / "state", options=options) as server:
        project.base_url = server.base_url
        project.write_config(base_url=server.base_url)
        assert project.run("create-batch").exit_code == 0
        waited = project.run("status-jobs", "--wait", "--interval", "0.05")
        assert waited.exit_code == 0, waited.err
        assert "back in the queue (token limit)" in waited.out
        assert "rows: 9 done, 0 failed, 0 pending of 9; batches: 3 of 3 finished" in waited.out
        ledger = load_ledger(project.data_path)
        assert any(s.requeued_batch_ids for s in ledger.shards)
        assert project.run("collate-output").exit_code == 0
        assert set(project.output()["api_status"]) == {"ok"}


def _plan_tokens(project: Project):
    from openai_batch_api.utils.config import load_config
    from openai_batch_api.utils.requests import write_shards

    config = load_config(project.config_path)
    return write_shards(config, out_dir=project.root / "token-probe").shards


def test_status_jobs_wait_ctrl_c_exits_130_and_harms_nothing(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_BATCH_API_RAISE")
    with LocalServer(state_dir=tmp_path / "state", options=ServerOptions(line_latency=1.0)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(4)
        project.write_config(batch_size=4)
        assert project.run("create-batch").exit_code == 0
        waiting = subprocess.Popen(
            [sys.executable, "-m", "openai_batch_api.commands.status_jobs", "--config", str(project.config_path), "--wait",
             "--interval", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C as on a terminal: a test runner started in the background may have SIGINT ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        first = waiting.stdout.readline()  # its first wait line: it is waiting now
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=30)
        out = first + out
        assert waiting.returncode == 130
        assert err == "interrupted; nothing is lost: run the command again to continue\n"
        assert "rows done" in out
        finished = project.run("status-jobs", "--wait", "--interval", "0.2")
        assert finished.exit_code == 0, finished.err
        assert "rows: 4 done, 0 failed, 0 pending of 4" in finished.out
