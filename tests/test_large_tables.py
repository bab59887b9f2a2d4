"""Large runs: tables read and written a slice of rows at a time (the same result as whole), and only the
result files a command needs are fetched."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pytest

from openai_batch_api.utils.files import table
from openai_batch_api.utils.files.table import read_input_table
from openai_batch_api.utils.lifecycle import collation
from openai_batch_api.utils.lifecycle.collation import finished_result_files, write_table
from openai_batch_api.utils.state.batch_state import BatchState
from openai_batch_api.utils.state.ledger import SUBMITTED, Ledger, ShardRecord


def collated_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["1", "2", "3", "4", "5"],
            "content": ["a", "ünï", 'quote " and\nnewline', "", "e"],
            "api_output": ["x", None, "z", None, "w"],
            "api_prompt_tokens": pd.array([3, None, 5, None, 7], dtype="Int64"),
            "api_attempts": [1, 1, 2, 1, 1],
        }
    )


def test_write_table_jsonl_in_slices_same_as_whole(monkeypatch):
    frame = collated_table()
    whole = Path("whole.jsonl")
    frame.to_json(whole, orient="records", lines=True, force_ascii=False)
    monkeypatch.setattr(collation, "JSONL_SLICE_ROWS", 2)
    write_table(frame, Path("sliced.jsonl"))
    assert Path("sliced.jsonl").read_bytes() == whole.read_bytes()
    assert len(Path("sliced.jsonl").read_text(encoding="utf-8").splitlines()) == 5
    assert not list(Path().glob(".sliced.jsonl.*"))


@pytest.mark.parametrize(
    "records",
    [
        # every slice agrees on the types: the slices are joined
        [{"id": i, "content": f"text {i}", "score": i / 2} for i in range(7)],
        # a column empty throughout a slice, and ints in one slice, floats in another
        [{"id": i, "content": f"text {i}", "image": None if 2 <= i < 4 else "a.png", "n": i} for i in range(5)]
        + [{"id": 5, "content": "x", "image": None, "n": 1.5}],
        # a key missing from a whole slice, text among numbers, a nested value
        [{"id": "a", "content": "x", "extra": 1}, {"id": "b", "content": "y", "extra": "two"}]
        + [{"id": "c", "content": "z"}, {"id": "d", "content": "w"}, {"id": "e", "content": {"k": [1]}}],
    ],
)
def test_read_input_table_jsonl_in_slices_same_as_whole(monkeypatch, records):
    path = Path("input.jsonl")
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    expected = pd.DataFrame(records)
    expected["id"] = expected["id"].astype(str)
    monkeypatch.setattr(table, "CHUNK_ROWS", 2)
    read = read_input_table(path, id_column="id")
    pd.testing.assert_frame_equal(read, expected)
    for column in read.columns:  # None stays None and NaN stays NaN, ints stay Python ints
        assert [repr(value) for value in read[column]] == [repr(value) for value in expected[column]]


def test_finished_result_files_of_chosen_kinds():
    def shard(index: int, status: str) -> ShardRecord:
        batch = BatchState(
            id=f"batch_{index}",
            created_at=0,
            input_file_id=f"in-{index}",
            status=status,
            output_file_id=f"out-{index}",
            error_file_id=f"err-{index}",
        )
        return ShardRecord(
            key=f"a1-s{index:04d}",
            attempt=1,
            index=index,
            path=f"tasks/attempt-1/shard-{index:04d}.jsonl",
            rows=1,
            bytes=1,
            sha256="0" * 64,
            prompt_tokens=1,
            state=SUBMITTED,
            batch_id=f"batch_{index}",
            batch=batch,
        )

    ledger = Ledger(
        run_id="run-1",
        created_at=0,
        input_sha256="",
        request_sha256="",
        rows=3,
        token_method="",
        shards=[shard(1, "completed"), shard(2, "in_progress"), shard(3, "expired")],
    )
    data = Path("data")
    assert [file_id for file_id, _ in finished_result_files(ledger, data)] == ["out-1", "err-1", "out-3", "err-3"]
    errors = finished_result_files(ledger, data, kinds=("errors",))
    assert errors == [
        ("err-1", data / "results/a1-s0001-batch_1-errors.jsonl"),
        ("err-3", data / "results/a1-s0003-batch_3-errors.jsonl"),
    ]
