"""Retries that retry, and summaries that speak of each row's latest attempt."""

from __future__ import annotations

import json
import re
import socket

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project

WAIT = ("--wait", "--interval", "0.05")
SERVER_ERROR = "500 server_error: The server had an error while processing your request. Sorry about that!"


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then let go."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summary_lines(out: str) -> list[str]:
    """What status-jobs prints after its table: counts, warnings, failure groups."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("rows: "))
    return [line for line in lines[start:] if not line.startswith(("tokens used:", "next:"))]


def test_unreachable_upstream_rows_are_retried(tmp_path):
    project = Project(root=tmp_path, base_url="local")
    project.write_rows(4)
    upstream = f"http://127.0.0.1:{closed_port()}/v1"
    project.write_config(base_url="local", batch_size=4, local_backend={"upstream": upstream})
    assert project.run("create-batch").exit_code == 0
    waited = project.run("status-jobs", *WAIT)
    assert waited.exit_code == 0, waited.err
    *counts, example = summary_lines(waited.out)
    assert counts == [
        "rows: 0 done, 4 failed, 0 pending of 4; batches: 1 of 1 finished",
        f"warning: batch {load_ledger(project.data_path).shards[0].batch_id} (shard a1-s0001) completed but "
        "4 of 4 requests failed",
        "failed requests by reason:",
    ]
    # Lines go upstream in parallel: any may come first in the error file and be the example.
    assert re.fullmatch(
        r"  upstream_unreachable: 4 rows \(retryable\), e\.g\. id [1-4]: upstream_unreachable: cannot reach the "
        rf"upstream server at {re.escape(upstream)}: \[Errno \d+\] Connection refused",
        example,
    )
    collated = project.run("collate-output")
    assert "4 failed rows can be retried: create-batch --config" in collated.out

    # The upstream is back: here, the backend's built-in answers stand for it.
    project.write_config(base_url="local", batch_size=4, local_backend={})
    retried = project.run("create-batch", "--retry")
    assert retried.exit_code == 0, retried.err
    assert "attempt 2: retrying 4 rows in 1 shard" in retried.out
    finished = project.run("status-jobs", *WAIT)
    assert finished.exit_code == 0, finished.err
    assert summary_lines(finished.out) == ["rows: 4 done, 0 failed, 0 pending of 4; batches: 2 of 2 finished"]
    assert project.run("collate-output").exit_code == 0
    assert project.output()["api_status"].tolist() == ["ok"] * 4


def test_summaries_after_a_retry_count_each_row_by_its_latest_attempt(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    state = tmp_path / "state"
    failing = ServerOptions(seed=4, line_failure_pattern="^[123]$", line_failure_status=500)
    with LocalServer(state_dir=state, options=failing) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(4)
        project.write_config(batch_size=4)
        assert project.run("create-batch").exit_code == 0
        first = project.run("status-jobs", *WAIT)
        first_batch = load_ledger(project.data_path).shards[0].batch_id
        assert summary_lines(first.out) == [
            "rows: 1 done, 3 failed, 0 pending of 4; batches: 1 of 1 finished",
            f"warning: batch {first_batch} (shard a1-s0001) completed but 3 of 4 requests failed",
            "failed requests by reason:",
            f"  server_error: 3 rows (retryable), e.g. id 1: {SERVER_ERROR}",
        ]

    # The retry answers rows 2 and 3; row 1 now fails for a reason of its own.
    refusing = ServerOptions(seed=4, line_failure_pattern="^1$", line_failure_status=400)
    with LocalServer(state_dir=state, options=refusing) as server:
        project.write_config(batch_size=4, base_url=server.base_url)
        retried = project.run("create-batch", "--retry")
        assert "attempt 2: retrying 3 rows in 1 shard" in retried.out
        assert project.run("status-jobs", *WAIT).exit_code == 0
        status = project.run("status-jobs")
        assert status.exit_code == 0, status.err
        injected = "400 injected_failure: Injected failure of request 1."
        assert summary_lines(status.out) == [
            "rows: 3 done, 1 failed, 0 pending of 4; batches: 2 of 2 finished",
            "failed requests by reason:",
            f"  injected_failure: 1 row (not retryable), e.g. id 1: {injected}",
        ]
        collated = project.run("collate-output")
        assert collated.exit_code == 0, collated.err
    assert collated.out.splitlines()[:3] == [
        f"collated 4 rows into {project.root / 'output.pkl'}: 3 ok, 1 error",
        "failed requests by reason:",
        f"  injected_failure: 1 row (not retryable), e.g. id 1: {injected}",
    ]


def test_status_jobs_after_a_successful_retry_shows_no_failures(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    state = tmp_path / "state"
    failing = ServerOptions(seed=4, line_failure_pattern="^[123]$", line_failure_status=500)
    with LocalServer(state_dir=state, options=failing) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(4)
        project.write_config(batch_size=4)
        assert project.run("create-batch").exit_code == 0
        assert project.run("status-jobs", *WAIT).exit_code == 0
    # The retry's batch names an empty error file, as Azure OpenAI's do.
    with LocalServer(state_dir=state, options=ServerOptions(seed=4, empty_error_file=True)) as server:
        project.write_config(batch_size=4, base_url=server.base_url)
        assert project.run("create-batch", "--retry").exit_code == 0
        waited = project.run("status-jobs", "--json", *WAIT)
        status = project.run("status-jobs")
        collated = project.run("collate-output")
    looked = json.loads(waited.out)
    assert (looked["summary"]["done"], looked["summary"]["failed"], looked["failures"]) == (4, 0, [])
    assert summary_lines(status.out) == ["rows: 4 done, 0 failed, 0 pending of 4; batches: 2 of 2 finished"]
    assert collated.out.splitlines()[0] == f"collated 4 rows into {project.root / 'output.pkl'}: 4 ok"
    assert collated.out.splitlines()[1].startswith("tokens used: ")


def test_failed_batch_is_not_reported_once_a_retry_answered_its_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    state = tmp_path / "state"
    # A server that takes at most 3 requests a file fails the batch of 4 at validation.
    with LocalServer(state_dir=state, options=ServerOptions(seed=4, max_requests_per_file=3)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(4)
        project.write_config(batch_size=4)
        assert project.run("create-batch").exit_code == 0
        first = project.run("status-jobs", *WAIT)
        failed_line = f"batch {load_ledger(project.data_path).shards[0].batch_id} (shard a1-s0001) failed: "
        assert summary_lines(first.out)[0] == "rows: 0 done, 4 failed, 0 pending of 4; batches: 1 of 1 finished"
        assert summary_lines(first.out)[1].startswith(failed_line)
    with LocalServer(state_dir=state, options=ServerOptions(seed=4)) as server:
        project.write_config(batch_size=4, base_url=server.base_url)
        retried = project.run("create-batch", "--retry")
        assert "attempt 2: retrying 4 rows in 1 shard" in retried.out
        assert project.run("status-jobs", *WAIT).exit_code == 0
        status = project.run("status-jobs")
        collated = project.run("collate-output")
    assert summary_lines(status.out) == ["rows: 4 done, 0 failed, 0 pending of 4; batches: 2 of 2 finished"]
    assert collated.out.splitlines()[0] == f"collated 4 rows into {project.root / 'output.pkl'}: 4 ok"
    assert collated.out.splitlines()[1].startswith("tokens used: ")
