"""An id has one reading: the custom id sent at create-batch is the one collate-output matches rows by."""

from __future__ import annotations

import pandas as pd
import pytest


def collated(project, server):
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert server.wait_idle(timeout=10)
    result = project.run("collate-output")
    assert result.exit_code == 0, result.err
    return project.output()


def write_jsonl(project, lines: list[str]) -> None:
    (project.root / "input.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    project.write_config(input_file="input.jsonl")


def test_jsonl_ids_one_and_one_point_zero_get_their_own_answers(project, server):
    write_jsonl(project, ['{"id": 1, "content": "first row"}', '{"id": 1.0, "content": "second row"}'])
    output = collated(project, server)
    assert list(output["id"]) == ["1", "1.0"]
    assert list(output["api_status"]) == ["ok", "ok"]
    assert [text.split(": ", 1)[1] for text in output["api_output"]] == ["first row", "second row"]


def test_jsonl_ids_integer_and_fraction_are_both_answered(project, server):
    write_jsonl(project, ['{"id": 1, "content": "first row"}', '{"id": 2.5, "content": "second row"}'])
    output = collated(project, server)
    assert list(output["id"]) == ["1", "2.5"]
    assert list(output["api_status"]) == ["ok", "ok"]
    retried = project.run("create-batch", "--retry")
    assert retried.exit_code == 0, retried.err


@pytest.mark.parametrize(
    "ids",
    [
        pd.to_timedelta([1, 2, 3], unit="s"),
        pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
    ],
    ids=["duration", "timestamp"],
)
def test_parquet_typed_ids_match_between_create_and_collate(project, server, ids):
    project.write_table(pd.DataFrame({"id": ids, "content": ["a", "b", "c"]}), "input.parquet")
    project.write_config()
    output = collated(project, server)
    assert list(output["api_status"]) == ["ok", "ok", "ok"]
    assert [text.split(": ", 1)[1] for text in output["api_output"]] == ["a", "b", "c"]
