"""Two commands on one run with `base_url: local`: the second talks to the backend the first runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.local_server.server import ADDRESS_NAME
from openai_batch_api.utils.config import load_config
from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.providers.openai import local_state_dir, open_api
from openai_batch_api.utils.state.run_store import load_run
from project_support import Project


@pytest.fixture
def local_project(tmp_path) -> Project:
    project = Project(root=tmp_path, base_url="local")
    project.write_rows(4)
    # Lines of five seconds: the batch outlasts every step of the test.
    project.write_config(base_url="local", batch_size=4, local_backend={"line_latency": 5.0})
    return project


def test_status_jobs_beside_status_jobs_wait_reads_the_run(local_project, monkeypatch):
    project = local_project
    assert project.run("create-batch").exit_code == 0
    monkeypatch.delenv("OPENAI_BATCH_API_RAISE")
    waiting = subprocess.Popen(
        [sys.executable, "-m", "openai_batch_api.commands.status_jobs", "--config", str(project.config_path), "--wait",
         "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = waiting.stdout.readline()  # its first wait line: it holds the backend now
        assert "rows done" in first
        looked = project.run("status-jobs", "--json")
        plain = project.run("status-jobs")
        assert waiting.poll() is None  # still waiting, so both looks ran while it held the backend
    finally:
        waiting.send_signal(signal.SIGINT)
        waiting.communicate(timeout=30)
    assert looked.exit_code == 0, looked.err
    status = json.loads(looked.out)
    run_id = load_run(project.data_path).run_id
    assert status["run_id"] == run_id
    assert [batch["status"] for batch in status["batches"]] == ["in_progress"]
    assert status["summary"]["rows"] == 4
    assert plain.exit_code == 0, plain.err
    assert plain.out.startswith(f"run {run_id}\n")
    assert waiting.returncode == 130


def test_backend_stopping_under_a_borrower_is_one_clear_error(local_project):
    project = local_project
    config = load_config(project.config_path)
    state_dir = local_state_dir(config)
    holder = LocalServer(state_dir=state_dir, options=ServerOptions(), api_key="holder-key")
    holder.start()
    try:
        with pytest.raises(BatchToolError) as caught:
            with open_api(config) as api:
                assert api.client.base_url == holder.base_url + "/"
                api.client.files.list()  # answered by the holder, with its key
                holder.stop()
                api.client.files.list()
    finally:
        holder.stop()
    assert str(caught.value) == (
        f"{state_dir}: the local backend of process {os.getpid()}, which this command was using, stopped; "
        "run the command again"
    )
    assert not (state_dir / ADDRESS_NAME).exists()


def start_holder(state_dir) -> subprocess.Popen:
    """Another process running a local backend on `state_dir`, until it is killed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\n"
         "from openai_batch_api.local_server import LocalServer\n"
         f"LocalServer(state_dir={str(state_dir)!r}, api_key='holder-key').start()\n"
         "print('ready', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline() == "ready\n"
    return child


def test_backend_killed_under_a_borrower_is_one_clear_error(local_project):
    config = load_config(local_project.config_path)
    state_dir = local_state_dir(config)
    holder = start_holder(state_dir)
    try:
        with pytest.raises(BatchToolError) as caught:
            with open_api(config) as api:
                assert api.client.files.list().data == []
                holder.kill()  # no chance to remove its address
                holder.wait(timeout=30)
                api.client.files.list()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert str(caught.value) == (
        f"{state_dir}: the local backend of process {holder.pid}, which this command was using, stopped; "
        "run the command again"
    )


def test_backend_of_a_process_that_died_is_taken_over(local_project):
    config = load_config(local_project.config_path)
    state_dir = local_state_dir(config)
    holder = start_holder(state_dir)
    holder.kill()  # no chance to clean up: its address stays on disk
    holder.wait(timeout=30)
    assert (state_dir / ADDRESS_NAME).exists()
    with open_api(config) as api:
        assert api.client.files.list().data == []
    assert not (state_dir / ADDRESS_NAME).exists()
