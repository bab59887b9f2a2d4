"""collate-output gives the id column back as the input holds it: typed formats keep its dtype, CSV its text."""

from __future__ import annotations

import pandas as pd
import pytest

from openai_batch_api.utils.files.table import iter_frames_with_typed_ids


def collated(project, server, table: pd.DataFrame, name: str, output: str) -> pd.DataFrame:
    project.write_table(table, name)
    project.write_config(output_file=output)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    result = project.run("collate-output")
    assert result.exit_code == 0, result.err
    path = project.root / output
    return pd.read_parquet(path) if output.endswith(".parquet") else pd.read_pickle(path)


@pytest.mark.parametrize("name", ["input.parquet", "input.pkl"])
@pytest.mark.parametrize("output", ["output.parquet", "output.pkl"])
def test_collate_keeps_an_int64_id_column(project, server, name, output):
    table = pd.DataFrame({"id": [30, 10, 20], "content": ["c", "a", "b"]})
    answers = collated(project, server, table, name, output)
    assert answers["id"].dtype == "int64"
    assert answers["id"].tolist() == [30, 10, 20]
    merged = table.merge(answers[["id", "api_output"]], on="id")
    assert merged["api_output"].tolist() == ["Answer to: c", "Answer to: a", "Answer to: b"]


def test_retry_finds_failed_rows_of_a_typed_id_column(project):
    # The ids the rows were sent under stay text inside the run: a retry finds its failed rows by them.
    project.write_table(pd.DataFrame({"id": [1, 2, 3], "content": ["a", "b", "c"]}), "input.parquet")
    local_backend = {"line_failure_pattern": "^2$", "line_failure_status": 500}
    project.write_config(base_url="local", local_backend=local_backend, output_file="output.pkl")
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    assert project.run("collate-output").exit_code == 0
    assert project.output()["api_status"].tolist() == ["ok", "error", "ok"]
    retried = project.run("create-batch", "--retry")
    assert retried.exit_code == 0, retried.err
    assert "1 row" in retried.out


def test_collate_keeps_csv_ids_verbatim(project, server):
    project.root.joinpath("input.csv").write_text("id,content\n007,a\n1.0,b\n", encoding="utf-8")
    project.write_config(input_file="input.csv", output_file="output.pkl")
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    assert project.run("collate-output").exit_code == 0
    assert project.output()["id"].tolist() == ["007", "1.0"]


@pytest.mark.parametrize("name", ["input.parquet", "input.pkl", "input.csv"])
def test_input_frames_come_with_their_own_typed_ids(project, name):
    # Collate gives each slice of rows its ids back from the slice itself: a Parquet id column is never read whole.
    table = pd.DataFrame({"id": [30, 10, 20, 40, 50], "content": list("abcde")})
    project.write_table(table, name)
    frames = list(iter_frames_with_typed_ids(project.root / name, id_column="id", sizes=[2, 2]))
    assert [frame["id"].tolist() for frame, _ in frames] == [["30", "10"], ["20", "40"], ["50"]]
    typed = [ids.tolist() if ids is not None else None for _, ids in frames]
    if name == "input.csv":
        assert typed == [None, None, None]  # CSV ids are their text
    else:
        assert typed == [[30, 10], [20, 40], [50]]
        assert all(ids.dtype == "int64" for _, ids in frames)
