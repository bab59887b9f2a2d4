"""create-batch replaces the shard files a crashed attempt left, and never removes a user's file."""

from __future__ import annotations

import dataclasses

import pytest

from openai_batch_api.utils.config import load_config
from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.lifecycle.planning import attempt_dir, plan_attempt
from openai_batch_api.utils.state.run_store import STORE_NAME


def test_create_batch_replaces_shards_left_by_crashed_attempt(project, server):
    project.write_rows(3)
    leftover = project.data_path / "tasks" / "attempt-1"
    leftover.mkdir(parents=True)
    (leftover / "shard-0001.jsonl").write_text("half a line from a crash")
    (leftover / "shard-0002.jsonl").write_text("")

    result = project.run("create-batch")

    assert result.exit_code == 0, result.err
    assert sorted(p.name for p in leftover.iterdir()) == ["shard-0001.jsonl"]
    assert (leftover / "shard-0001.jsonl").read_text().count("\n") == 3


def test_create_batch_user_file_in_attempt_folder_error(project, server):
    project.write_rows(3)
    leftover = project.data_path / "tasks" / "attempt-1"
    leftover.mkdir(parents=True)
    (leftover / "shard-0001.jsonl").write_text("half a line from a crash")
    (leftover / "notes.txt").write_text("mine")

    result = project.run("create-batch")

    assert result.exit_code == 1
    assert result.err == (
        f"error: {leftover}: holds files create-batch did not write; move them out of this folder and run the "
        "command again\n"
    )
    assert (leftover / "notes.txt").read_text() == "mine"
    assert project.server_files() == []


INPUT_LINES = '{"id": "1", "content": "a"}\n{"id": "2", "content": "b"}\n'


def test_create_batch_input_file_in_a_task_folder_error_keeps_the_file(project, server):
    shard = project.data_path / "tasks" / "attempt-1" / "shard-0001.jsonl"
    shard.parent.mkdir(parents=True)
    shard.write_text(INPUT_LINES)
    project.write_config(
        input_file="data/tasks/attempt-1/shard-0001.jsonl", model_params={"model": "gpt-4o-mini", "max_tokens": 5}
    )

    result = project.run("create-batch")

    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.config_path}: input_file {shard} is inside {project.data_path / 'tasks'}, where the tool "
        "writes and deletes its own files; move it out of that folder (or set another data_path) and fix "
        "input_file in the config\n"
    )
    assert shard.read_text() == INPUT_LINES
    assert not (project.data_path / STORE_NAME).exists()
    assert project.server_files() == []


def test_crashed_attempt_cleanup_never_removes_the_input_file(project):
    # The config refuses such an input; the cleanup does not rely on that alone.
    project.write_rows(2)
    config = load_config(project.write_config())
    shard = attempt_dir(config.data_path, 1) / "shard-0001.jsonl"
    shard.parent.mkdir(parents=True)
    shard.write_text(INPUT_LINES)
    inside = dataclasses.replace(config, input_file=shard, content_column="content")

    with pytest.raises(BatchToolError) as raised:
        plan_attempt(inside, out_dir=shard.parent)

    assert str(raised.value) == (
        f"{shard.parent}: holds files create-batch did not write; move them out of this folder and run the "
        "command again"
    )
    assert shard.read_text() == INPUT_LINES
