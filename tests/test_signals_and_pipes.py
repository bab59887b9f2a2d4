"""The installed console scripts under Ctrl-C at any moment, a reader that leaves, and --json."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import openai
import pytest

from openai_batch_api.local_server import LocalServer
from openai_batch_api.utils.errors import INTERRUPTED_MESSAGE, BatchToolError
from openai_batch_api.utils.state.ledger import SUBMITTED, UPLOADING
from openai_batch_api.utils.state.run_store import load_run


def console_script(command: str) -> str:
    script = shutil.which(command, path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip(f"{command} is not installed beside {sys.executable}: install the package with pip install -e .")
    return script


def default_sigint() -> None:
    """Ctrl-C as on a terminal: a test runner started in the background may have SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("command", ["create-batch", "status-jobs", "collate-output", "delete-tasks"])
def test_console_script_ctrl_c_during_imports_exits_130_with_one_line(command, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BATCH_API_RAISE")
    # PYTHONVERBOSE reports each import on stderr. Through a pipe of one page, the child blocks on
    # its next report while this test stops reading: a line naming a module of the run's state (the
    # first of the core's many imports) or of the SDK means the child is held in the middle of its
    # imports when the signal comes.
    monkeypatch.setenv("PYTHONVERBOSE", "1")
    # A valid config: the commands import the core only once it is read, and the SDK only for a step
    # that calls the API.
    (tmp_path / "config.yaml").write_text(
        "input_file: input.csv\nid_column: id\ncontent_column: text\nprompt: Classify.\n"
        "model_params: {model: gpt-4o-mini}\noutput_file: out.csv\ndata_path: data\n"
        "base_url: http://127.0.0.1:9/v1\n",
        encoding="utf-8",
    )
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    child = subprocess.Popen(
        [console_script(command), "--config", str(tmp_path / "config.yaml")],
        stdout=subprocess.PIPE,
        stderr=write_end,
        text=True,
        preexec_fn=default_sigint,
    )
    os.close(write_end)
    stderr = os.fdopen(read_end, encoding="utf-8")
    lines = []
    for line in stderr:
        lines.append(line)
        if line.startswith(("import 'openai.", "import 'openai_batch_api.utils.state.")):
            child.send_signal(signal.SIGINT)
            break
    rest = stderr.read()
    out = child.stdout.read()
    child.wait(timeout=60)
    said = lines + rest.splitlines(keepends=True)
    assert child.returncode == 130, said
    # PYTHONVERBOSE may write its own lines in the middle of ours: count the message in the whole text.
    assert "".join(said).count(INTERRUPTED_MESSAGE) == 1, [s for s in said if not s.startswith(("#", "import "))]
    assert not [line for line in said if line.startswith(("Traceback", "error", "KeyboardInterrupt"))]
    assert out == ""


def test_status_jobs_reader_gone_exits_quietly(project, monkeypatch):
    monkeypatch.delenv("OPENAI_BATCH_API_RAISE")
    project.write_rows(4)
    assert project.run("create-batch").exit_code == 0
    child = subprocess.Popen(
        [console_script("status-jobs"), "--config", str(project.config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child.stdout.close()  # the reader leaves before the first line, as `| head -0` would
    err = child.stderr.read()
    child.wait(timeout=60)
    assert err == ""
    assert child.returncode == 128 + signal.SIGPIPE


def test_status_jobs_json_wait_collate_stdout_is_only_json(project):
    project.write_rows(4)
    assert project.run("create-batch").exit_code == 0
    result = project.run("status-jobs", "--json", "--wait", "--interval", "0.1", "--collate")
    assert result.exit_code == 0, result.err
    assert json.loads(result.out)["summary"]["done"] == 4
    assert "collated 4 rows into" in result.err
    assert "rows done" in result.err


def test_create_batch_ctrl_c_mid_call_with_local_backend_one_line_no_retries(project, monkeypatch):
    """Ctrl-C while the uploads are in flight: the in-process backend stops under the worker threads,
    and their cut-off calls are neither retried nor logged; the rows are submitted once, later."""
    monkeypatch.delenv("OPENAI_BATCH_API_RAISE")
    project.write_rows(8)
    # Each files/batches call takes 1.5 s: the signal comes while the four uploads are under way.
    project.write_config(base_url="local", batch_size=2, concurrency=4, local_backend={"api_latency": 1.5})
    child = subprocess.Popen(
        [console_script("create-batch"), "--config", str(project.config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    # Ready when the run state records the intent to upload: the calls follow at once, and last 1.5 s.
    while not uploading(project.data_path):
        assert child.poll() is None, child.communicate()
        time.sleep(0.05)
    time.sleep(0.3)  # the workers' requests reach the backend (they then wait 1.5 s for its answer)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert (child.returncode, err) == (130, INTERRUPTED_MESSAGE + "\n")
    assert "retrying" not in out
    # Nothing is lost and nothing is paid twice: the next run settles the uploads and submits each shard once.
    project.write_config(local_backend=None)
    again = project.run("create-batch")
    assert again.exit_code == 0, again.err
    shards = load_run(project.data_path).shards
    assert [s.state for s in shards] == [SUBMITTED] * 4
    with LocalServer(state_dir=project.data_path / "local_backend") as backend:
        client = openai.OpenAI(base_url=backend.base_url, api_key="test-key", max_retries=0)
        made = Counter((b.metadata or {}).get("shard") for b in client.batches.list(limit=100))
    assert made == Counter({s.key: 1 for s in shards})


def uploading(data_path: Path) -> bool:
    """Whether the run in data_path records an upload under way; False while there is no run yet."""
    try:
        ledger = load_run(data_path)
    except BatchToolError:  # the database is being made
        return False
    return ledger is not None and any(s.state == UPLOADING for s in ledger.shards)
