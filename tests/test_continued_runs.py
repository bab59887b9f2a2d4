"""A run continued with a grown or edited table: only new and edited rows go out, nothing is paid twice."""

from __future__ import annotations

from collections import Counter

import orjson
import pandas as pd
import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.state.run_store import load_run
from project_support import Project


def table(ids: list[int], edited: dict[int, str] | None = None) -> pd.DataFrame:
    edited = edited or {}
    return pd.DataFrame(
        {"id": [str(i) for i in ids], "content": [edited.get(i, f"message number {i}") for i in ids]}
    )


def finish(project: Project) -> pd.DataFrame:
    for command, args in (("status-jobs", ("--wait", "--interval", "0.05")), ("collate-output", ())):
        result = project.run(command, *args)
        assert result.exit_code == 0, result.err
    return project.output()


def shard_ids(project: Project, attempt: int) -> list[str]:
    ids = []
    for shard in load_run(project.data_path).shards:
        if shard.attempt == attempt:
            lines = (project.data_path / shard.path).read_bytes().splitlines()
            ids += [orjson.loads(line)["custom_id"] for line in lines]
    return ids


def requests_sent(project: Project) -> Counter:
    """How often each (custom_id, body) was put in a batch on the server: the rows paid for."""
    client = project.client()
    sent: Counter = Counter()
    for batch in project.server_batches():
        for line in client.files.content(batch.input_file_id).content.splitlines():
            request = orjson.loads(line)
            sent[(request["custom_id"], orjson.dumps(request["body"]))] += 1
    return sent


def test_create_batch_grown_and_edited_table_sends_only_new_and_edited_rows(project):
    project.write_table(table(list(range(1, 11))))
    assert project.run("create-batch").exit_code == 0
    first = finish(project)
    run_id = load_run(project.data_path).run_id

    project.write_table(table([1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13], edited={2: "an edited message"}))
    result = project.run("create-batch")

    assert result.exit_code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == (
        f"run {run_id} continues with the table as it is now: 12 rows: 8 reused, 3 new, 1 edited; 1 removed"
    )
    assert lines[1] == f"attempt 2: 4 new or edited rows in 1 shard ({project.data_path / 'tasks' / 'attempt-2'})"
    assert shard_ids(project, 2) == ["2", "11", "12", "13"]
    collated = finish(project)
    assert collated["id"].tolist() == ["1", "2", "3", "4", "6", "7", "8", "9", "10", "11", "12", "13"]
    assert (collated["api_status"] == "ok").all()
    assert collated.set_index("id").loc["2", "api_output"] == "Answer to: an edited message"
    assert collated.set_index("id").loc["11", "api_output"] == "Answer to: message number 11"
    unchanged = ["1", "3", "4", "6", "7", "8", "9", "10"]
    pd.testing.assert_series_equal(
        collated.set_index("id").loc[unchanged, "api_output"], first.set_index("id").loc[unchanged, "api_output"]
    )
    assert collated["api_attempts"].tolist() == [1] * 12
    assert max(requests_sent(project).values()) == 1
    status = project.run("status-jobs")
    assert "rows: 12 done, 0 failed, 0 pending of 12; batches: 4 of 4 finished" in status.out


def test_create_batch_again_on_a_continued_run_sends_nothing(project):
    project.write_table(table([1, 2, 3]))
    assert project.run("create-batch").exit_code == 0
    project.write_table(table([1, 2, 3, 4]))
    assert project.run("create-batch").exit_code == 0
    again = project.run("create-batch")
    assert again.exit_code == 0, again.err
    assert "continues" not in again.out
    assert "every shard already has its batch: nothing was submitted again" in again.out
    assert len(project.server_batches()) == 2


def test_create_batch_table_with_only_removed_rows_sends_nothing_and_collates_the_rest(project):
    project.write_table(table([1, 2, 3, 4]))
    assert project.run("create-batch").exit_code == 0
    finish(project)
    project.write_table(table([1, 3]))
    result = project.run("create-batch")
    assert result.exit_code == 0, result.err
    run_id = load_run(project.data_path).run_id
    assert result.out.splitlines()[:2] == [
        f"run {run_id} continues with the table as it is now: 2 rows: 2 reused, 0 new, 0 edited; 2 removed",
        "no row needs a request: nothing new to send",
    ]
    assert finish(project)["id"].tolist() == ["1", "3"]
    assert len(project.server_batches()) == 1


def test_row_edited_and_edited_back_reuses_its_first_answer(project):
    project.write_table(table([1, 2]))
    assert project.run("create-batch").exit_code == 0
    first = finish(project)
    project.write_table(table([1, 2], edited={2: "changed for a while"}))
    assert project.run("create-batch").exit_code == 0
    assert finish(project).set_index("id").loc["2", "api_output"] == "Answer to: changed for a while"

    project.write_table(table([1, 2]))
    result = project.run("create-batch")
    assert result.exit_code == 0, result.err
    assert "2 rows: 2 reused, 0 new, 0 edited; 0 removed" in result.out
    back = finish(project)
    pd.testing.assert_frame_equal(back.drop(columns="api_attempts"), first.drop(columns="api_attempts"))
    assert len(project.server_batches()) == 2


def test_row_edited_while_its_batch_runs_is_answered_from_its_new_content(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "slow", options=ServerOptions(seed=2, line_latency=0.3)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_table(table([1, 2, 3]))
        assert project.run("create-batch").exit_code == 0
        project.write_table(table([1, 2, 3], edited={3: "edited while in flight"}))
        result = project.run("create-batch")
        assert result.exit_code == 0, result.err
        assert "3 rows: 2 reused, 0 new, 1 edited; 0 removed" in result.out
        collated = finish(project)
    assert collated.set_index("id").loc["3", "api_output"] == "Answer to: edited while in flight"
    assert (collated["api_status"] == "ok").all()


def test_continued_run_with_lost_create_answers_makes_one_batch_per_shard(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    # Every batch creation is carried out and half their answers are lost: each is found again, never made twice.
    options = ServerOptions(
        seed=5, http_error_rate=0.5, http_error_kinds=("drop_after",), http_error_paths="^POST /v1/batches$"
    )
    with LocalServer(state_dir=tmp_path / "lossy", options=options) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_table(table(list(range(1, 9))))
        assert project.run("create-batch").exit_code == 0
        project.write_table(table(list(range(1, 21)), edited={1: "edited", 5: "edited too"}))
        result = project.run("create-batch")
        assert result.exit_code == 0, result.err
        assert "20 rows: 6 reused, 12 new, 2 edited; 0 removed" in result.out
        assert "retrying in" in result.err, "no creation's answer was lost: the test lost its point"
        ledger = load_run(project.data_path)
        tags = Counter(
            (b.metadata or {}).get("shard") for b in project.server_batches()
            if (b.metadata or {}).get("openai_batch_api_run") == ledger.run_id
        )
        assert tags == Counter({s.key: 1 for s in ledger.shards})
        assert [s.key for s in ledger.shards if s.attempt == 2] == ["a2-s0001", "a2-s0002", "a2-s0003", "a2-s0004"]
        collated = finish(project)
        sent = requests_sent(project)
    assert (collated["api_status"] == "ok").all() and len(collated) == 20
    assert sum(sent.values()) == 8 + 14 and max(sent.values()) == 1


def test_changed_model_params_are_still_refused_on_a_grown_table(project):
    project.write_table(table([1, 2]))
    assert project.run("create-batch").exit_code == 0
    project.write_table(table([1, 2, 3]))
    project.write_config(model_params={"model": "gpt-4o-mini", "temperature": 1, "max_tokens": 50})
    result = project.run("create-batch")
    assert result.exit_code == 1
    run_id = load_run(project.data_path).run_id
    assert result.err == (  # names only what it refuses: the grown table alone would continue the run
        f"error: {project.config_path}: changed since run {run_id} was created in {project.data_path}: "
        "model_params.temperature 1 (was 0). To continue that run, restore what it was made from; to start a new "
        "run, set another data_path (or collate-output and delete-tasks the old run first)\n"
    )
    assert len(project.server_batches()) == 1
    assert shard_ids(project, 2) == []


@pytest.mark.parametrize("command", ["status-jobs", "collate-output"])
def test_steps_after_the_table_changed_say_create_batch_continues_the_run(project, command):
    project.write_table(table([1, 2]))
    assert project.run("create-batch").exit_code == 0
    project.write_table(table([1, 2, 3]))
    result = project.run(command)
    run_id = load_run(project.data_path).run_id
    if command == "status-jobs":  # reads the run as it is: the table is not its business
        assert result.exit_code == 0, result.err
        return
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.config_path}: the input table input.csv changed since run {run_id} took it up in "
        f"{project.data_path}: rows of input.csv: 3 (was 2); run create-batch to continue the run with the table "
        "as it is now (only its new and edited rows are sent), or restore the table\n"
    )


def test_continued_run_with_int_ids_collates_to_parquet_in_input_order_with_provenance(project):
    # A continued run is joined as one piece: its typed ids, its order and the Parquet writer are main's.
    first = pd.DataFrame({"id": [30, 10, 20], "content": ["c", "a", "b"]})
    project.write_table(first, "input.parquet")
    project.write_config(output_file="output.parquet", provenance=True)
    assert project.run("create-batch").exit_code == 0
    grown = pd.DataFrame({"id": [30, 10, 20, 5], "content": ["c", "a, edited", "b", "e"]})
    project.write_table(grown, "input.parquet")
    continued = project.run("create-batch")
    assert continued.exit_code == 0, continued.err
    for command, args in (("status-jobs", ("--wait", "--interval", "0.05")), ("collate-output", ())):
        result = project.run(command, *args)
        assert result.exit_code == 0, result.err
    answers = pd.read_parquet(project.root / "output.parquet")
    assert answers["id"].dtype == "int64"
    assert answers["id"].tolist() == [30, 10, 20, 5]
    assert answers["api_output"].tolist() == ["Answer to: c", "Answer to: a, edited", "Answer to: b", "Answer to: e"]
    assert answers["api_attempts"].tolist() == [1, 1, 1, 1]
    batch_ids = answers["api_batch_id"].tolist()
    assert batch_ids[0] == batch_ids[2] != batch_ids[1] == batch_ids[3]  # the edited and new rows: attempt 2


def test_provenance_of_a_run_never_continued_is_read_a_shard_group_at_a_time(project):
    project.write_table(table([1, 2, 3]))
    project.write_config(batch_size=1, output_file="output.parquet", provenance=True)
    assert project.run("create-batch").exit_code == 0
    for command, args in (("status-jobs", ("--wait", "--interval", "0.05")), ("collate-output", ())):
        result = project.run(command, *args)
        assert result.exit_code == 0, result.err
    answers = pd.read_parquet(project.root / "output.parquet")
    batches = {b.metadata["shard"]: b.id for b in project.server_batches()}
    assert answers["api_batch_id"].tolist() == [batches[key] for key in sorted(batches)]
    assert answers["api_model"].tolist() == ["gpt-4o-mini"] * 3
    assert answers["api_request_hash"].str.len().tolist() == [64] * 3
