"""Collating a shard group at a time: the same table as collating it whole, written as it goes, atomically."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest

from openai_batch_api import Run
from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.files.table import iter_input_frames
from openai_batch_api.utils.lifecycle import collation
from openai_batch_api.utils.state.run_store import load_run
from project_support import Project

WAIT = ("--wait", "--interval", "0.05")
LABEL_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "label",
        "schema": {
            "type": "object",
            "properties": {"label": {"type": "string"}, "score": {"type": "integer"}},
            "required": ["label"],
        },
    },
}


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.read_json(path, lines=True, dtype=False)


def collate_both_ways(project: Project, monkeypatch, output: str) -> tuple[Path, Path, pd.DataFrame]:
    """The output collated in groups of two shards (four rows), then as one chunk; and the table as collate keeps it."""
    chunked, whole = project.root / f"chunked{output}", project.root / f"whole{output}"
    monkeypatch.setattr(collation, "COLLATE_CHUNK_ROWS", 3)
    project.write_config(output_file=chunked.name)
    kept = Run.from_config(project.config_path).collate().table
    monkeypatch.setattr(collation, "COLLATE_CHUNK_ROWS", 10**9)
    project.write_config(output_file=whole.name)
    assert Run.from_config(project.config_path).collate(table=False).table is None
    return chunked, whole, kept


@pytest.mark.parametrize(
    ("input_name", "output"),
    [
        ("input.csv", ".parquet"),
        ("input.csv", ".csv"),
        ("input.parquet", ".parquet"),
        ("input.parquet", ".jsonl"),
        ("input.jsonl", ".parquet"),
    ],
)
def test_collate_in_shard_groups_with_a_retry_and_pending_rows_same_as_whole(tmp_path, monkeypatch, input_name, output):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    state = tmp_path / "state"
    failing = ServerOptions(seed=3, line_failure_pattern="^(3|7|10)$", line_failure_status=500)
    with LocalServer(state_dir=state, options=failing) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        rows = project.write_rows(10)
        project.write_table(rows.assign(note=[f"n{i}" for i in range(10)]), input_name)
        project.write_config(batch_size=2, model_params={"model": "gpt-4o-mini", "response_format": LABEL_FORMAT})
        assert project.run("create-batch").exit_code == 0
        assert project.run("status-jobs", *WAIT).exit_code == 0
        first, first_whole, _ = collate_both_ways(project, monkeypatch, output)
        assert read_output(first).equals(read_output(first_whole))
    # The retry runs slowly: collated while it runs, its rows are pending.
    with LocalServer(state_dir=state, options=ServerOptions(seed=3, line_latency=3), port=0) as server:
        project.write_config(base_url=server.base_url)
        assert project.run("create-batch", "--retry").exit_code == 0
        chunked, whole, kept = collate_both_ways(project, monkeypatch, output)

    table = read_output(chunked)
    pd.testing.assert_frame_equal(table, read_output(whole))
    if output != ".parquet":
        assert chunked.read_bytes() == whole.read_bytes()
    else:
        assert pq.ParquetFile(chunked).num_row_groups == 3  # shards 1-2, 3-4, 5
    assert list(table["id"].astype(str)) == [str(i) for i in range(1, 11)]
    assert list(table["api_status"]) == ["ok", "ok", "pending", "ok", "ok", "ok", "pending", "ok", "ok", "pending"]
    assert [int(n) for n in table["api_attempts"]] == [1, 1, 2, 1, 1, 1, 2, 1, 1, 2]
    assert list(table["note"]) == [f"n{i}" for i in range(10)]
    assert "answer_label" in table and "api_json_error" in table
    assert list(kept.index) == list(range(10))
    assert list(kept["api_status"]) == list(table["api_status"])
    assert not list(tmp_path.glob(".chunked*")) and not list(tmp_path.glob(".whole*"))


def test_collate_shards_larger_than_a_slice_in_slices_same_as_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    failing = ServerOptions(seed=3, line_failure_pattern="^(2|7)$", line_failure_status=500)
    with LocalServer(state_dir=tmp_path / "state", options=failing) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(10)
        project.write_config(batch_size=4)
        assert project.run("create-batch").exit_code == 0
        assert project.run("status-jobs", *WAIT).exit_code == 0
        # A group of one shard of four rows is joined and written two rows at a time.
        monkeypatch.setattr(collation, "COLLATE_SLICE_ROWS", 3)
        chunked, whole, kept = collate_both_ways(project, monkeypatch, ".parquet")

    table = pd.read_parquet(chunked)
    pd.testing.assert_frame_equal(table, pd.read_parquet(whole))
    assert [pq.ParquetFile(chunked).metadata.row_group(i).num_rows for i in range(5)] == [2, 2, 2, 2, 2]
    assert list(table["id"].astype(str)) == [str(i) for i in range(1, 11)]
    assert list(table["api_status"]) == ["ok", "error", *["ok"] * 4, "error", *["ok"] * 3]
    assert list(kept["api_status"]) == list(table["api_status"])


def test_collate_failure_midway_keeps_the_old_output_whole(project, monkeypatch):
    project.write_rows(8)
    project.write_config(batch_size=2, output_file="output.csv")
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", *WAIT).exit_code == 0
    assert project.run("collate-output").exit_code == 0
    before = (project.root / "output.csv").read_bytes()
    ledger = load_run(project.data_path)
    last = max(ledger.shards, key=lambda s: s.index)
    result = collation.result_file_path(project.data_path, last, "output")
    result.write_bytes(b'{"truncated\n')
    monkeypatch.setattr(collation, "COLLATE_CHUNK_ROWS", 2)
    failed = project.run("collate-output")
    assert failed.exit_code == 1
    assert failed.err == (
        f"error: {result}, line 1: not valid JSON (unexpected control character in string: line 1 column 12 (char 11)); "
        "the file is truncated or is not a Batch API output or error file\n"
    )
    assert (project.root / "output.csv").read_bytes() == before
    assert [p.name for p in project.root.glob(".output.csv*")] == []


def test_collate_jsonl_key_first_seen_late_starts_again_whole(project, monkeypatch):
    records = [{"id": str(i), "content": f"text {i}"} for i in range(1, 7)]
    records[5]["extra"] = {"nested": [1, 2]}
    (project.root / "input.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    project.write_config(input_file="input.jsonl", batch_size=2, output_file="output.parquet")
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", *WAIT).exit_code == 0
    monkeypatch.setattr(collation, "COLLATE_CHUNK_ROWS", 2)
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    assert collated.out.startswith(f"collated 6 rows into {project.root / 'output.parquet'}: 6 ok\n")
    table = pd.read_parquet(project.root / "output.parquet")
    assert list(table["id"]) == [r["id"] for r in records]
    assert table["extra"].isna().tolist() == [True] * 5 + [False]
    assert pq.ParquetFile(project.root / "output.parquet").num_row_groups == 1


def test_collate_table_false_without_output_file_error(project):
    project.write_rows(2)
    mapping = {**project.config, "output_file": None}
    run = Run.from_mapping({k: v for k, v in mapping.items() if v is not None}, base_dir=project.root)
    run.create()
    with pytest.raises(BatchToolError) as caught:
        run.collate(table=False)
    assert str(caught.value) == (
        f"{project.root / '<mapping>'}: collate(table=False) writes the table to output_file, and the config "
        "names none; set output_file, or call collate() for the table"
    )


@pytest.mark.parametrize("name", ["t.csv", "t.parquet", "t.jsonl", "t.pkl"])
def test_iter_input_frames_cuts_the_table_by_sizes(name):
    frame = pd.DataFrame({"id": [5, 6, 7, 8, 9], "text": ["a", "b", "c", "d", "e"]})
    project = Project(root=Path.cwd(), base_url="local")
    path = project.write_table(frame, name)
    frames = list(iter_input_frames(path, id_column="id", sizes=[2, 1]))
    assert [list(f["id"]) for f in frames] == [["5", "6"], ["7"], ["8", "9"]]
    assert [list(f.index) for f in frames] == [[0, 1], [2], [3, 4]]
    assert [list(f["text"]) for f in frames] == [["a", "b"], ["c"], ["d", "e"]]


def test_dry_run_of_a_large_table_into_a_pickle_says_it_is_held_whole(project, monkeypatch):
    from openai_batch_api.commands import reporting

    monkeypatch.setattr(reporting, "LARGE_TABLE_ROWS", 3)
    project.write_rows(3)
    dry = project.run("create-batch", "--dry-run")
    assert dry.exit_code == 0, dry.err
    assert (
        "note: output_file output.pkl is a pickle, one object: collate-output holds all 3 rows in memory to write "
        "it; a .parquet, .csv or .jsonl output_file is written a shard at a time\nnothing was uploaded\n"
    ) in dry.out
    project.write_config(output_file="output.parquet")
    assert "pickle" not in project.run("create-batch", "--dry-run").out
