"""A data_path that cannot be written (read-only, immutable, full): one line naming the folder or file, at once.

Real conditions, not patched ones: a tmpfs remounted read-only (EROFS), an immutable folder (chattr +i:
EPERM, which root meets too) and a tiny tmpfs under the local backend's state (ENOSPC). Where this
machine does not let the tests mount or set attributes, those tests are skipped, saying why.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture
def mount_tmpfs():
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        done = run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)

    yield mount
    for path in reversed(mounted):
        if run("umount", str(path)).returncode != 0:
            run("umount", "-l", str(path))


def not_writable(project, reason: str) -> str:
    return (
        f"error: {project.data_path}: cannot write in data_path ({reason}); every command keeps the run's lock "
        "and state there: make the folder writable, then run the command again\n"
    )


def test_read_only_data_path_every_command_says_so_in_one_line(project, server, mount_tmpfs):
    mount_tmpfs(project.data_path, "4m")
    project.write_rows(3)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    assert run("mount", "-o", "remount,ro", str(project.data_path)).returncode == 0
    for command, *args in (["status-jobs"], ["collate-output"], ["create-batch", "--retry"], ["delete-tasks", "--yes"]):
        result = project.run(command, *args)
        assert (command, result.exit_code, result.err) == (command, 1, not_writable(project, "read-only file system"))
    assert (project.data_path / "run.sqlite3").exists()


def test_immutable_data_path_create_batch_says_so_in_one_line(project, server):
    if shutil.which("chattr") is None:
        pytest.skip("no chattr here to make a folder immutable")
    project.write_rows(3)
    project.data_path.mkdir()
    made = run("chattr", "+i", str(project.data_path))
    if made.returncode != 0:
        pytest.skip(f"cannot make a folder immutable here: {made.stderr.strip()}")
    try:
        result = project.run("create-batch")
    finally:
        run("chattr", "-i", str(project.data_path))
    assert result.exit_code == 1
    assert result.err == not_writable(project, "operation not permitted")
    assert project.server_files() == []


def test_full_disk_under_the_local_backend_upload_is_one_line_at_once(project, mount_tmpfs):
    # Rows enough for a shard larger than the local backend's disk: its copy of the upload fills it.
    project.write_table(pd.DataFrame({"id": [str(i) for i in range(600)], "content": ["word " * 150] * 600}))
    project.write_config(base_url="local", batch_size=1000)
    mount_tmpfs(project.data_path / "local_backend", "256k")
    result = project.run("create-batch")
    assert result.exit_code == 1
    folder = re.escape(str(project.data_path / "local_backend" / "files"))
    assert re.fullmatch(
        rf"error: the API answered 507: {folder}/\.file-[0-9a-f]{{24}}\.tmp: no space left on the device for the "
        r"local backend's state; free some space there and run the command again \(request id req_[0-9a-f]+\)\n",
        result.err,
    ), result.err


def test_full_disk_under_the_local_backend_state_is_one_line(project, mount_tmpfs):
    project.write_rows(3)
    project.write_config(base_url="local")
    mount_tmpfs(project.data_path / "local_backend", "12k")
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.data_path / 'local_backend' / 'state.sqlite3'}: no space left on the device; free some "
        "space there and run the command again (what was saved before is kept, nothing half-written)\n"
    )
