"""A run refused before work starts leaves nothing on disk; a command that finds no run creates nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from openai_batch_api.utils.state.run_store import load_run


def files_under(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.parametrize("base_url", ["local", None], ids=["local-backend", "server"])
def test_create_batch_refused_for_a_missing_id_column_leaves_no_data_path(project, tmp_path, base_url):
    project.write_table(pd.DataFrame({"ident": ["1"], "content": ["a"]}))
    project.write_config(**({"base_url": base_url} if base_url else {}))
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {tmp_path}/input.csv: no column 'id' (id_column in the config); the file has columns 'ident', "
        "'content': fix the config or rename the column\n"
    )
    assert not project.data_path.exists()


def test_create_batch_refused_keeps_a_data_path_of_yours_as_it_was(project):
    project.write_table(pd.DataFrame({"ident": ["1"], "content": ["a"]}))
    project.write_config(base_url="local")
    project.data_path.mkdir()
    (project.data_path / "notes.txt").write_text("mine")
    assert project.run("create-batch").exit_code == 1
    assert files_under(project.data_path) == ["notes.txt"]


def test_create_batch_dry_run_leaves_nothing(project):
    project.write_rows(3)
    project.write_config(base_url="local")
    result = project.run("create-batch", "--dry-run")
    assert result.exit_code == 0, result.err
    assert not project.data_path.exists()


@pytest.mark.parametrize("command", ["status-jobs", "collate-output", "delete-tasks"])
def test_command_with_no_run_creates_nothing(project, command):
    project.write_rows(3)
    project.write_config(base_url="local")
    result = project.run(command, *(["--yes"] if command == "delete-tasks" else []))
    if command == "delete-tasks":
        assert result.exit_code == 0 and result.out == f"{project.data_path}: no run here (no run.sqlite3): nothing to delete\n"
    else:
        assert result.exit_code == 1
        assert result.err == (
            f"error: {project.data_path}: no run here yet (no run.sqlite3); start one with create-batch --config "
            f"{project.config_path}\n"
        )
    assert not project.data_path.exists()


def test_create_batch_names_the_column_added_to_a_csv(project):
    project.write_rows(3)
    assert project.run("create-batch").exit_code == 0
    project.write_table(pd.DataFrame({"id": ["1", "2", "3"], "content": ["a", "b", "c"], "text": ["x"] * 3}))
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.config_path}: changed since run {load_run(project.data_path).run_id} was created in "
        f"{project.data_path}: columns of input.csv: text added. To continue that run, restore what it was made "
        "from; to start a new run, set another data_path (or collate-output and delete-tasks the old run first)\n"
    )


def test_create_batch_names_the_changed_model_param_and_column_key(project):
    project.write_table(pd.DataFrame({"id": ["1"], "content": ["a"], "body": ["b"]}))
    assert project.run("create-batch").exit_code == 0
    project.write_config(
        content_column="body", model_params={"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 50}
    )
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.config_path}: changed since run {load_run(project.data_path).run_id} was created in "
        f"{project.data_path}: model_params.temperature 0.2 (was 0); content_column body (was content). To "
        "continue that run, restore what it was made from; to start a new run, set another data_path (or "
        "collate-output and delete-tasks the old run first)\n"
    )
