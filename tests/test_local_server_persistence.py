"""State on disk: files and batches survive a restart, and a batch in progress resumes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import chat_lines, create_batch, finished, read_lines, sdk, upload, wait_for

from openai_batch_api.local_server import LocalServer
from openai_batch_api.utils.errors import BatchToolError


def wait_until_some_answered(client, batch_id: str, at_least: int) -> None:
    deadline = time.monotonic() + 20
    while client.batches.retrieve(batch_id).request_counts.completed < at_least:
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.02)


def assert_each_line_answered_once(client, batch, total: int) -> None:
    assert batch.status == "completed"
    assert batch.request_counts.model_dump() == {"total": total, "completed": total, "failed": 0}
    ids = Counter(line["custom_id"] for line in read_lines(client, batch.output_file_id))
    assert ids == Counter(f"row-{i}" for i in range(total))


def test_files_survive_a_restart(start_server, tmp_path):
    first = start_server(state_dir=tmp_path / "state")
    with sdk(first) as client:
        file = upload(client, chat_lines(2))
    first.stop()
    second = start_server(state_dir=tmp_path / "state")
    with sdk(second) as client:
        assert client.files.retrieve(file.id) == file
        assert client.files.content(file.id).text.count("\n") == 2


def test_batch_resumes_after_a_graceful_stop(start_server, tmp_path):
    first = start_server(state_dir=tmp_path / "state", line_latency=0.01)
    with sdk(first) as client:
        batch_id = create_batch(client, chat_lines(300)).id
        wait_until_some_answered(client, batch_id, 20)
    first.stop()
    second = start_server(state_dir=tmp_path / "state")
    with sdk(second) as client:
        paused = client.batches.retrieve(batch_id)
        assert paused.status in ("in_progress", "finalizing", "completed")
        assert paused.request_counts.completed >= 20
        assert_each_line_answered_once(client, finished(client, batch_id), 300)


def test_batch_resumes_after_the_process_is_killed(start_server, tmp_path):
    state = tmp_path / "state"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openai_batch_api.local_server",
            "--port",
            "0",
            "--state-dir",
            str(state),
            "--line-latency",
            "0.005",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        base_url = line.split(" at ")[1].split(" ")[0]
        with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client:
            batch_id = create_batch(client, chat_lines(400)).id
            wait_until_some_answered(client, batch_id, 50)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
    server = start_server(state_dir=state)
    with sdk(server) as client:
        assert client.batches.retrieve(batch_id).request_counts.completed >= 50
        assert_each_line_answered_once(client, finished(client, batch_id), 400)


def test_cancel_requested_before_a_restart_finishes_after_it(start_server, tmp_path):
    first = start_server(state_dir=tmp_path / "state", line_latency=0.01)
    with sdk(first) as client:
        batch_id = create_batch(client, chat_lines(300)).id
        wait_until_some_answered(client, batch_id, 5)
    first.stop()
    # The cancel reaches the stored batch while no worker runs, as after a crash mid-cancel.
    second = start_server(state_dir=tmp_path / "state", line_latency=0.01)
    with sdk(second) as client:
        client.batches.cancel(batch_id)
        batch = finished(client, batch_id)
    assert batch.status == "cancelled"
    assert batch.request_counts.completed < 300


def test_state_dir_used_by_one_server_at_a_time(start_server, tmp_path):
    start_server(state_dir=tmp_path / "state")
    with pytest.raises(BatchToolError) as caught:
        LocalServer(state_dir=tmp_path / "state").start()
    assert str(caught.value) == (
        f"{tmp_path / 'state'}: the local backend state is in use by a local backend (pid {os.getpid()}); "
        "stop it or use another state dir"
    )


def test_stop_then_start_again_same_object(tmp_path):
    server = LocalServer(state_dir=tmp_path / "state")
    with server:
        with sdk(server) as client:
            upload(client, chat_lines(1))
    with server:
        with sdk(server) as client:
            assert len(client.files.list().data) == 1
            wait_for(client, create_batch(client, chat_lines(1)).id, ("completed",))
