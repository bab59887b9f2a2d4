"""delete-tasks with `base_url: local` removes the files the local backend wrote, never a user's."""

from __future__ import annotations

import pytest

from openai_batch_api.local_server import LocalServer
from openai_batch_api.local_server.server import MARKER_NAME, StateDirInUse
from project_support import Project

WAIT = ("--wait", "--interval", "0.05")


@pytest.fixture
def local_project(tmp_path):
    project = Project(root=tmp_path, base_url="local")
    project.write_rows(6)
    project.write_config(base_url="local", batch_size=4, local_backend={})
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", *WAIT).exit_code == 0
    assert project.run("collate-output").exit_code == 0
    return project


def test_delete_tasks_local_backend_keeps_user_files(local_project):
    state = local_project.data_path / "local_backend"
    assert (state / MARKER_NAME).is_file() and any((state / "files").iterdir())
    (state / "notes.txt").write_text("mine")
    (state / "files" / "thesis.docx").write_bytes(b"four years of work")

    result = local_project.run("delete-tasks", "--yes")

    assert result.exit_code == 0, result.err
    left = sorted(str(p.relative_to(local_project.data_path)) for p in local_project.data_path.rglob("*"))
    assert left == ["local_backend", "local_backend/files", "local_backend/files/thesis.docx", "local_backend/notes.txt"]
    assert (state / "files" / "thesis.docx").read_bytes() == b"four years of work"


def test_delete_tasks_local_backend_removes_its_whole_state(local_project):
    result = local_project.run("delete-tasks", "--yes")
    assert result.exit_code == 0, result.err
    assert not local_project.data_path.exists()


def test_remove_state_leaves_unmarked_folder_alone(tmp_path):
    folder = tmp_path / "state"
    (folder / "files").mkdir(parents=True)
    own_looking = folder / "files" / ("file-" + "0" * 24)
    own_looking.write_bytes(b"not the backend's: the folder has no marker")
    LocalServer(state_dir=folder).remove_state()
    assert own_looking.read_bytes() == b"not the backend's: the folder has no marker"


def test_remove_state_refused_while_another_backend_serves_it(tmp_path):
    folder = tmp_path / "state"
    with LocalServer(state_dir=folder) as running:
        with pytest.raises(StateDirInUse) as refused:
            LocalServer(state_dir=folder).remove_state()
        assert running.base_url is not None
    assert str(refused.value).startswith(f"{folder}: the local backend state is in use by a local backend (pid ")
    assert (folder / MARKER_NAME).is_file()
