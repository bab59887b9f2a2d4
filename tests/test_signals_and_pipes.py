"""The installed console scripts under Ctrl-C at any moment, a reader that leaves, and --json."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from openai_batch_api.utils.errors import INTERRUPTED_MESSAGE


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
    # its next report while this test stops reading: a line naming a submodule of the SDK means the
    # child is held in the middle of its heavy imports when the signal comes.
    monkeypatch.setenv("PYTHONVERBOSE", "1")
    # A valid config: the commands import the SDK only once it is read, for the step they run.
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
        if line.startswith("import 'openai."):
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
