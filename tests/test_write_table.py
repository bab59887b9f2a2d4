"""Writing the collated table: JSONL is written a slice of rows at a time, with the same bytes as whole."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from openai_batch_api.utils import collation
from openai_batch_api.utils.collation import write_table


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
    table = collated_table()
    whole = Path("whole.jsonl")
    table.to_json(whole, orient="records", lines=True, force_ascii=False)
    monkeypatch.setattr(collation, "JSONL_SLICE_ROWS", 2)
    write_table(table, Path("sliced.jsonl"))
    assert Path("sliced.jsonl").read_bytes() == whole.read_bytes()
    assert len(Path("sliced.jsonl").read_text(encoding="utf-8").splitlines()) == 5
    assert not Path(".sliced.jsonl.tmp").exists()
