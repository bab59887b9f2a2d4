"""create-batch replaces the shard files a crashed attempt left, and never removes a user's file."""

from __future__ import annotations


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
