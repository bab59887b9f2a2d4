"""status-jobs on a run of many batches: a summary that fits a screen, every batch with --all or --json."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from openai_batch_api.commands.summary import SUMMARY_LINES

BATCHES = 35  # above the 30 batches up to which the full table is the default
TOO_BIG = 12  # rows whose batch file is over the backend's size limit: their batches fail


def start_run(tmp_path, monkeypatch, rows: int, content, **options):
    """A project of `rows` one-row batches against a local backend with `options`; yields (project, server)."""
    from openai_batch_api.local_server import LocalServer, ServerOptions
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "state", options=ServerOptions(seed=3, **options)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        ids = [f"r{row:02d}" for row in range(1, rows + 1)]
        project.write_table(pd.DataFrame({"id": ids, "content": [content(row) for row in range(1, rows + 1)]}))
        project.write_config(batch_size=1)
        assert project.run("create-batch").exit_code == 0
        yield project, server


@pytest.fixture
def failed_batches(tmp_path, monkeypatch):
    """A finished run of 35 one-row batches, of which the first 12 failed validation (file too large)."""
    def content(row: int) -> str:
        return "long " * 600 if row <= TOO_BIG else f"message {row}"

    for project, server in start_run(tmp_path, monkeypatch, BATCHES, content, max_file_bytes=2000):
        assert server.wait_idle(timeout=30)
        yield project


def batch_ids(project) -> dict[str, str]:
    result = project.run("status-jobs", "--json")
    assert result.exit_code == 0, result.err
    return {row["shard"]: row["batch_id"] for row in json.loads(result.out)["batches"]}


def test_status_jobs_many_batches_summary_lists_failed_batches_first(failed_batches):
    ids = batch_ids(failed_batches)
    result = failed_batches.run("status-jobs")
    assert result.exit_code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) <= SUMMARY_LINES
    assert re.fullmatch(r"run run-[0-9a-f-]+: 35 batches, 35 of them finished", lines[0])
    too_large = "file_too_large: The input file is larger than the 2000 bytes maximum."
    assert lines[1:] == [
        "batches: 23 completed, 12 failed",
        "rows: 23 done, 12 failed, 0 pending of 35",
        lines[3],
        "batches that need attention (done / failed / total):",
        *[f"  failed  a1-s{n:04d}  {ids[f'a1-s{n:04d}']}  0 / 0 / 1  {too_large}" for n in range(1, 11)],
        "  ... and 2 more (2 failed); status-jobs --all lists every batch",
        lines[-2],
        f"next: collate-output --config {failed_batches.config_path}",
    ]
    # The rate, when the batches' clock saw a second pass, and the tokens differ from run to run.
    assert re.fullmatch(r"\[#{30}\] 100%( at [\d,.]+ rows/(s|min|h))?", lines[3])
    assert lines[-2].startswith("tokens used: ")


def test_status_jobs_many_batches_all_and_json_list_every_batch(failed_batches):
    listed = failed_batches.run("status-jobs", "--all")
    assert listed.exit_code == 0, listed.err
    rows = [line for line in listed.out.splitlines() if re.match(r"a1-s\d{4} ", line)]
    assert len(rows) == BATCHES
    assert "rows: 23 done, 12 failed, 0 pending of 35; batches: 35 of 35 finished" in listed.out
    assert len(batch_ids(failed_batches)) == BATCHES


def test_status_jobs_few_batches_prints_the_full_table_by_default(project):
    project.write_rows(8)
    project.write_config(batch_size=1)
    assert project.run("create-batch").exit_code == 0
    result = project.run("status-jobs")
    assert result.exit_code == 0, result.err
    assert len([line for line in result.out.splitlines() if re.match(r"a1-s\d{4} ", line)]) == 8
    assert "batches that need attention" not in result.out


@pytest.mark.parametrize(
    ("window", "reason", "detail"),
    [(86400, "in progress longest", "in progress since "), (3600, "expiring", ", expires ")],
)
def test_status_jobs_many_batches_running_lists_the_longest_and_expiring(
    tmp_path, monkeypatch, window, reason, detail
):
    """Batches still running: the three in progress longest, or every one expiring within two hours (10 listed)."""
    # Lines slow enough that no batch finishes during the test (the backend stops after the line it is on).
    for project, _ in start_run(
        tmp_path, monkeypatch, 31, lambda row: f"message {row}", line_latency=10, completion_window=window
    ):
        result = project.run("status-jobs")
        assert result.exit_code == 0, result.err
        lines = result.out.splitlines()
        assert len(lines) <= SUMMARY_LINES
        assert lines[2:4] == ["rows: 0 done, 0 failed, 31 pending of 31", "[------------------------------] 0%"]
        listed = [line for line in lines if line.startswith(f"  {reason}  ")]
        assert listed and all(detail in line for line in listed)
        if reason == "expiring":
            assert len(listed) == 10
            assert "  ... and 21 more (21 expiring); status-jobs --all lists every batch" in lines
        else:
            assert len(listed) <= 3
        assert lines[-1] == f"next: status-jobs --config {project.config_path} --wait (or run status-jobs again later)"


def test_run_status_shows_as_html_in_a_notebook(failed_batches):
    from openai_batch_api import Run

    ids = batch_ids(failed_batches)
    html = Run.from_config(failed_batches.config_path).status()._repr_html_()
    assert "<div>batches: 23 completed, 12 failed</div>" in html
    assert "<div>rows: 23 done, 12 failed, 0 pending of 35</div>" in html
    assert '<progress value="35" max="35" style="width: 20em"></progress> 100%' in html
    assert html.count("<tr><td>failed</td>") == 10
    assert f"<td>a1-s0001</td><td>{ids['a1-s0001']}</td><td>0 / 0 / 1</td>" in html
    assert "<div>... and 2 more</div>" in html
