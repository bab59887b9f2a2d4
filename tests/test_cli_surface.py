"""The surface every command shares: help, version, the error boundary, the installed scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from openai_batch_api import __version__
from project_support import COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_has_description_and_config_flag(command, capsys):
    with pytest.raises(SystemExit) as exited:
        COMMANDS[command](["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {command} ")
    assert "--config PATH" in out
    assert "--debug" in out
    assert len(out.split("\n\n")[1].strip()) > 40  # the description


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_version(command, capsys):
    with pytest.raises(SystemExit) as exited:
        COMMANDS[command](["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"{command} {__version__}\n"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_unknown_flag_is_a_usage_error(command, capsys):
    with pytest.raises(SystemExit) as exited:
        COMMANDS[command](["--no-such-flag"])
    assert exited.value.code == 2
    assert "error: unrecognized arguments: --no-such-flag" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_missing_config_error(command, capsys, tmp_path):
    code = COMMANDS[command]([])
    assert code == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'config.yaml'}: no such config file; pass one with --config path/to/config.yaml\n"
    )


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "0", "-1", "86401", "soon"])
def test_status_jobs_interval_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exited:
        COMMANDS["status-jobs"](["--wait", f"--interval={value}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: status-jobs ")
    assert err.splitlines()[-1] == (
        f"status-jobs: error: argument --interval: must be a number of seconds above 0 and at most 86400 (a day), "
        f"got '{value}'"
    )


def test_debug_shows_the_traceback(capsys):
    from openai_batch_api.utils.errors import BatchToolError

    with pytest.raises(BatchToolError):
        COMMANDS["status-jobs"](["--debug"])


def test_python_m_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "openai_batch_api"], capture_output=True, text=True, check=True)
    for command in COMMANDS:
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_installed_console_script_runs(command):
    script = shutil.which(command, path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip(f"{command} is not installed beside {sys.executable}: install the package with pip install -e .")
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: {command} ")
