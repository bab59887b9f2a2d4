"""The wait display: a live line on a terminal, plain lines in a pipe or a log."""

from __future__ import annotations

import io

from openai_batch_api.commands.status_jobs import WaitDisplay
from openai_batch_api.utils.lifecycle.submission import RunProgress
from openai_batch_api.utils.lifecycle.waiting import WaitUpdate


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def update(done: int, *, finished: bool = False, submitted: int = 0) -> WaitUpdate:
    progress = RunProgress(
        shards=2, finished_shards=2 if finished else 1, queued_shards=0, rows=10, rows_done=done, rows_pending=10 - done
    )
    statuses = ("completed", "completed") if finished else ("completed", "in_progress")
    return WaitUpdate(progress, statuses, 65.0, 0.5 if done else None, submitted, 0, 0)


RUNNING = (
    "[########------------] 40% | 4/10 rows done, 0 failed | about 0m12s left at 30 rows/min | elapsed 1m05s | "
    "batches: 1 in_progress, 1 completed"
)
FINISHED = "[####################] 100% | 10/10 rows done, 0 failed | elapsed 1m05s | batches: 2 completed"


def test_wait_display_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    display = WaitDisplay(stream)
    display(update(4, submitted=1))
    display(update(10, finished=True))
    assert stream.getvalue() == f"{RUNNING}; submitted 1 queued shard\n{FINISHED}\n"


def test_wait_display_in_a_log_writes_a_line_only_when_the_run_moved():
    stream = io.StringIO()
    display = WaitDisplay(stream)
    display(update(4))
    display(update(4))  # nothing moved: only the clock would differ
    display(update(4, submitted=1))  # a queued shard submitted is news
    display(update(10, finished=True))
    assert stream.getvalue() == f"{RUNNING}\n{RUNNING}; submitted 1 queued shard\n{FINISHED}\n"


def test_wait_display_rewrites_one_line_on_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    stream = Terminal()
    display = WaitDisplay(stream)
    display(update(4))
    display(update(10, finished=True))
    assert stream.getvalue() == f"\r\x1b[K{RUNNING}\r\x1b[K{FINISHED}\n"


def test_wait_display_on_a_narrow_terminal_cuts_the_line_to_its_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "41")
    stream = Terminal()
    WaitDisplay(stream)(update(4))
    assert stream.getvalue() == "\r\x1b[K" + RUNNING[:40]


def test_status_jobs_wait_first_line_has_no_time_left_before_a_rate(project, server):
    from openai_batch_api.utils.config import load_config
    from openai_batch_api.utils.requests import write_shards

    project.write_rows(8)
    project.write_config(batch_size=4)
    per_shard = max(s.prompt_tokens for s in write_shards(load_config(project.config_path), out_dir=project.root / "probe").shards)
    project.write_config(max_enqueued_tokens=per_shard)  # the second shard waits for the first
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)  # the first shard's 4 rows are done before anyone watches
    waited = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert waited.exit_code == 0, waited.err
    first = waited.out.splitlines()[0]
    assert first.startswith("[##########----------] 50% | 4/8 rows done, 0 failed | elapsed ")
    assert "left" not in first


def test_delete_tasks_without_a_run_has_nothing_to_delete(project):
    result = project.run("delete-tasks", "--yes")
    assert result.exit_code == 0
    assert result.out == f"{project.data_path}: no run here (no run.sqlite3): nothing to delete\n"
    assert result.err == ""
