"""The state dir: the backend writes only in a folder it marked as its own, and removes only its own files."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import chat_lines, sdk, upload

from openai_batch_api.local_server import LocalServer
from openai_batch_api.local_server.server import MARKER_NAME
from openai_batch_api.utils.errors import BatchToolError


def test_users_files_in_the_state_dir_survive_a_restart(start_server, tmp_path):
    state = tmp_path / "u"
    first = start_server(state_dir=state)
    with sdk(first) as client:
        kept = upload(client, chat_lines(1))
    first.stop()
    (state / "files" / "thesis.docx").write_bytes(b"four years of work")
    (state / "partial" / "notes.txt").write_text("mine")
    (state / "files" / "chapters").mkdir()
    (state / "files" / "chapters" / "one.md").write_text("# One")
    # What the backend's own leftovers look like: a blob without a row, a half-written blob, a partial
    # file of a batch that no longer runs.
    orphan = state / "files" / ("file-" + "0" * 24)
    orphan.write_bytes(b"orphan")
    half_written = state / "files" / (".file-" + "1" * 24 + ".tmp")
    half_written.write_bytes(b"half")
    half_written_blob = state / "files" / (".file-" + "3" * 24 + "." + "4" * 16 + ".part")
    half_written_blob.write_bytes(b"half")
    stale_partial = state / "partial" / ("batch_" + "2" * 24 + ".output.jsonl")
    stale_partial.write_bytes(b"{}\n")

    second = start_server(state_dir=state)

    assert (state / "files" / "thesis.docx").read_bytes() == b"four years of work"
    assert (state / "partial" / "notes.txt").read_text() == "mine"
    assert (state / "files" / "chapters" / "one.md").read_text() == "# One"
    assert not orphan.exists() and not half_written.exists() and not stale_partial.exists()
    assert not half_written_blob.exists()
    with sdk(second) as client:
        assert client.files.content(kept.id).text.count("\n") == 1


@pytest.mark.parametrize("name", ["notes.txt", "sub"])
def test_non_empty_foreign_folder_is_refused(tmp_path, name):
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / name).mkdir() if name == "sub" else (folder / name).write_text("mine")
    with pytest.raises(BatchToolError) as caught:
        LocalServer(state_dir=folder).start()
    assert str(caught.value) == (
        f"{folder} is not empty and is not a local backend state dir; choose a new or empty folder as state dir"
    )
    assert sorted(path.name for path in folder.iterdir()) == [name]


def test_command_line_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "report.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "openai_batch_api.local_server", "--port", "0", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {tmp_path} is not empty and is not a local backend state dir; "
        "choose a new or empty folder as state dir\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.txt"]


def test_empty_folder_is_marked_and_reused(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with LocalServer(state_dir=folder):
        pass
    assert (folder / MARKER_NAME).is_file()
    with LocalServer(state_dir=folder) as server, sdk(server) as client:
        assert client.files.list().data == []


def test_state_dir_of_an_older_backend_without_the_mark_is_adopted(tmp_path):
    folder = tmp_path / "old"
    with LocalServer(state_dir=folder) as server, sdk(server) as client:
        file = upload(client, chat_lines(1))
    (folder / MARKER_NAME).unlink()
    with LocalServer(state_dir=folder) as server, sdk(server) as client:
        assert client.files.retrieve(file.id).id == file.id
    assert (folder / MARKER_NAME).is_file()


def test_state_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "state"
    path.write_text("not a folder")
    with pytest.raises(BatchToolError) as caught:
        LocalServer(state_dir=path).start()
    assert str(caught.value) == f"{path} is a file, not a folder; choose a new or empty folder as state dir"
