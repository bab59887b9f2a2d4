"""The wait display: a live line on a terminal, plain lines in a pipe or a log."""

from __future__ import annotations

import io

from openai_batch_api.status_jobs import WaitDisplay
from openai_batch_api.utils.submission import RunProgress
from openai_batch_api.utils.waiting import WaitUpdate


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def update(done: int, *, finished: bool = False, submitted: int = 0) -> WaitUpdate:
    progress = RunProgress(
        shards=2, finished_shards=2 if finished else 1, queued_shards=0, rows=10, rows_done=done, rows_pending=10 - done
    )
    statuses = ("completed", "completed") if finished else ("completed", "in_progress")
    return WaitUpdate(progress, statuses, 65.0, 0.5 if done else None, submitted, 0, 0)


def test_wait_display_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    display = WaitDisplay(stream)
    display(update(4, submitted=1))
    display(update(10, finished=True))
    assert stream.getvalue() == (
        "4/10 rows done, 0 failed | batches: 1 completed, 1 in_progress | elapsed 1m05s | about 0m12s left"
        "; submitted 1 queued shard\n"
        "10/10 rows done, 0 failed | batches: 2 completed | elapsed 1m05s\n"
    )


def test_wait_display_rewrites_one_line_on_a_terminal():
    stream = Terminal()
    display = WaitDisplay(stream)
    display(update(4))
    display(update(10, finished=True))
    assert stream.getvalue() == (
        "\r\x1b[K4/10 rows done, 0 failed | batches: 1 completed, 1 in_progress | elapsed 1m05s | about 0m12s left"
        "\r\x1b[K10/10 rows done, 0 failed | batches: 2 completed | elapsed 1m05s\n"
    )
