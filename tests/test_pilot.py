"""create-batch --pilot: a few rows answered at once, their answers kept by the run, the cost measured."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
import time

import orjson
import pytest

from openai_batch_api import CostOverLimitError, Run
from openai_batch_api.commands import create_batch
from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.state.run_store import load_run
from project_support import Project

LABEL_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "label",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"label": {"type": "string"}},
            "required": ["label"],
            "additionalProperties": False,
        },
    },
}


def with_schema(project: Project, **changes) -> None:
    project.write_config(
        model_params={"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 50, "response_format": LABEL_FORMAT},
        **changes,
    )


def batch_ids_sent(project: Project) -> list[str]:
    client = project.client()
    ids = []
    for batch in project.server_batches():
        for line in client.files.content(batch.input_file_id).content.splitlines():
            ids.append(orjson.loads(line)["custom_id"])
    return sorted(ids, key=int)


def saved_pilot_answers(project: Project) -> int:
    path = project.data_path / "run.sqlite3"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM pilot_answers").fetchone()[0]
    except sqlite3.OperationalError:  # not made yet
        return 0
    finally:
        db.close()


def test_create_batch_pilot_prints_answers_measured_tokens_and_estimate(project):
    project.write_rows(6)
    with_schema(project)
    result = project.run("create-batch", "--pilot", "2")
    assert result.exit_code == 0, result.err
    run_id = load_run(project.data_path).run_id
    assert result.out.splitlines() == [
        f"run {run_id}: made for the pilot; no batch submitted",
        "pilot: 2 rows answered at once at full price (/v1/chat/completions); no batch submitted",
        "id            answer_label  api_completion_tokens",
        " 1 label: message number 1                     10",
        " 2 label: message number 2                     10",
        "output tokens measured: 20 in 2 answers, 10.0 a row",
        "the pilot cost $0.000018 at full price",
        "estimate for the run's 6 rows at batch prices, by the measured output: input $0.0000090 (120 tokens) + "
        "output $0.000018 (about 60 tokens) = about $0.000027",
        f"next: create-batch --config {project.config_path} (the pilot's rows are not sent again)",
    ]
    assert project.server_batches() == [] and project.server_files() == []


def test_pilot_rows_are_not_bought_again_and_provenance_says_where_answers_came_from(project):
    project.write_rows(6)
    with_schema(project, provenance=True)
    assert project.run("create-batch", "--pilot", "2").exit_code == 0
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "6 rows: 2 reused, 4 new, 0 edited; 0 removed" in created.out
    assert batch_ids_sent(project) == ["3", "4", "5", "6"]
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    assert project.run("collate-output").exit_code == 0

    output = project.output().set_index("id")
    assert (output["api_status"] == "ok").all()
    assert output.loc["1", "answer_label"] == "label: message number 1"
    assert output["api_attempts"].tolist() == [1] * 6
    batch_id = project.server_batches()[0].id
    assert output["api_batch_id"].tolist() == ["pilot", "pilot", batch_id, batch_id, batch_id, batch_id]
    assert set(output["api_model"]) == {"gpt-4o-mini"}
    shard = load_run(project.data_path).shards[0]
    first_line = orjson.loads((project.data_path / shard.path).read_bytes().splitlines()[0])
    assert output.loc["3", "api_request_hash"] == hashlib.sha256(orjson.dumps(first_line["body"])).hexdigest()
    assert output["api_request_hash"].str.fullmatch("[0-9a-f]{64}").all()
    status = project.run("status-jobs")
    assert "rows: 6 done, 0 failed, 0 pending of 6; batches: 1 of 1 finished" in status.out


def test_provenance_is_off_by_default(project):
    project.write_rows(2)
    assert project.run("create-batch", "--pilot", "1").exit_code == 0
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    assert project.run("collate-output").exit_code == 0
    assert not {"api_batch_id", "api_model", "api_request_hash"} & set(project.output().columns)


def test_pilot_run_again_sends_nothing_it_has(project):
    project.write_rows(4)
    assert project.run("create-batch", "--pilot", "2").exit_code == 0
    again = project.run("create-batch", "--pilot", "3")
    assert again.exit_code == 0, again.err
    assert again.out.splitlines()[0] == (
        "pilot: 1 row answered at once at full price (/v1/chat/completions); 2 rows of the pilot answered or in a "
        "batch already; no batch submitted"
    )
    assert saved_pilot_answers(project) == 3


def test_pilot_sample_is_the_same_for_the_same_seed(tmp_path, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    chosen = []
    for name in ("one", "two"):
        project = Project(root=tmp_path / name, base_url=server.base_url)
        project.root.mkdir()
        project.write_rows(30)
        result = project.run("create-batch", "--pilot", "3", "--pilot-sample", "42")
        assert result.exit_code == 0, result.err
        table = Run.from_config(project.config_path).collate().table
        chosen.append(table.loc[table["api_status"] == "ok", "id"].tolist())
    assert chosen[0] == chosen[1]
    assert len(chosen[0]) == 3 and chosen[0] != ["1", "2", "3"]


def test_pilot_over_max_cost_is_refused_with_the_figure(project):
    project.write_rows(6)
    project.write_config(max_cost=0.00001)
    result = project.run("create-batch", "--pilot", "2")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.config_path}: by the output the pilot measured (7.0 tokens a row), the run's 6 rows would "
        "cost about $0.000022 at batch prices, above max_cost $1e-05; raise max_cost, lower max_tokens, or submit "
        "fewer rows\n"
    )
    assert "pilot: 2 rows answered at once at full price" in result.out
    assert "next:" not in result.out
    assert project.server_batches() == []


def test_run_pilot_returns_the_answers_and_the_estimate(project):
    project.write_rows(5)
    run = Run.from_config(project.write_config())
    piloted = run.pilot(2)
    assert (piloted.chosen, piloted.held, piloted.answered, piloted.failures) == (2, 0, 2, [])
    assert piloted.table["api_output"].tolist() == ["Answer to: message number 1", "Answer to: message number 2"]
    assert piloted.estimate.rows == 5 and piloted.estimate.measured_output_tokens == 14
    created = run.create()
    assert created.continued is not None and created.continued.changes.reused == 2
    with pytest.raises(CostOverLimitError) as raised:
        Run.from_config(project.write_config(max_cost=0.000001)).pilot(3)
    assert raised.value.piloted.answered == 0  # the rows were in batches already: nothing bought


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--pilot", "0"), "--pilot needs a number of rows of at least 1, got 0"),
        (("--pilot-sample", "3"), "--pilot-sample needs --pilot N"),
        (("--pilot", "2", "--dry-run"), "--pilot cannot be combined with --dry-run, --retry, --adopt or --settle"),
        (("--pilot", "2", "--retry"), "--pilot cannot be combined with --dry-run, --retry, --adopt or --settle"),
        (
            ("--pilot", "2", "--settle", "0001=none"),
            "--pilot cannot be combined with --dry-run, --retry, --adopt or --settle",
        ),
    ],
)
def test_create_batch_pilot_usage_errors(project, arguments, message):
    project.write_rows(2)
    result = project.run("create-batch", *arguments)
    assert result.exit_code == 2
    assert result.err.endswith(f"error: {message}\n")
    assert not project.data_path.exists()


def _child_pilot(config_path: str) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    code = 1
    try:
        code = create_batch.main(["--config", config_path, "--pilot", "6"])
    finally:
        os._exit(code)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the server's threads running
def test_pilot_killed_midway_buys_again_only_the_calls_it_lacked(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "slow", options=ServerOptions(seed=4, line_latency=0.3)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(8)
        project.write_config(concurrency=1)
        project.run("create-batch", "--dry-run")  # the tokenizer loads once, before the fork
        child = multiprocessing.get_context("fork").Process(target=_child_pilot, args=(str(project.config_path),))
        child.start()
        deadline = time.monotonic() + 30
        while saved_pilot_answers(project) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        kept = saved_pilot_answers(project)
        assert 2 <= kept < 6, "the kill did not land mid-pilot: the test lost its point"

        again = project.run("create-batch", "--pilot", "6")
        assert again.exit_code == 0, again.err
        assert again.out.splitlines()[0] == (
            f"pilot: {6 - kept} rows answered at once at full price (/v1/chat/completions); {kept} rows of the "
            "pilot answered or in a batch already; no batch submitted"
        )
        created = project.run("create-batch")
        assert created.exit_code == 0, created.err
        assert "8 rows: 6 reused, 2 new, 0 edited; 0 removed" in created.out
        assert batch_ids_sent(project) == ["7", "8"]
        assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
        assert project.run("collate-output").exit_code == 0
    output = project.output()
    assert (output["api_status"] == "ok").all() and len(output) == 8
    assert output["api_output"].tolist() == [f"Answer to: message number {i}" for i in range(1, 9)]


def test_tokens_used_count_the_pilot_apart_at_full_price(project):
    """The batches' usage is priced at batch prices; the pilot's answers were bought at the full price."""
    project.write_rows(6)
    project.write_config(batch_size=10)
    assert project.run("create-batch", "--pilot", "2").exit_code == 0
    assert project.run("create-batch").exit_code == 0
    waited = project.run("status-jobs", "--wait")
    assert waited.exit_code == 0, waited.err
    # The local backend's usage: 20 input tokens a row here, and the answer's words as output.
    pilot_line = "the pilot's 2 answers: 40 input, 14 output tokens; cost $0.000014 at full price"
    assert "tokens used: 80 input, 28 output; cost $0.000014 at batch prices" in waited.out
    assert pilot_line in waited.out
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    assert "tokens used: 80 input, 28 output; cost $0.000014 at batch prices" in collated.out  # the batches' rows
    assert pilot_line in collated.out
    assert list(project.output()["api_prompt_tokens"]) == [20] * 6
