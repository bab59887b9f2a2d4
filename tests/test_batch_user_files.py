"""batch() writes its table under a name of its own and never over a user's file; a table it cannot save is one error."""

from __future__ import annotations

import pandas as pd
import pytest

import openai_batch_api
from openai_batch_api import InputError

MODEL_PARAMS = {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 50}


def sample(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(rows)], "text": [f"review number {i}" for i in range(rows)]})


def call(table, server, data_path="data"):
    return openai_batch_api.batch(
        table,
        prompt="Classify the review.",
        model_params=MODEL_PARAMS,
        data_path=data_path,
        content_column="text",
        base_url=server.base_url,
        poll_interval=0.05,
        progress=False,
    )


@pytest.mark.parametrize("data_path", ["data", "."], ids=["data_path", "working-folder"])
def test_batch_keeps_a_users_input_parquet(server, tmp_path, data_path):
    folder = tmp_path / data_path
    folder.mkdir(exist_ok=True)
    sample(1000).to_parquet(folder / "input.parquet", index=False)
    before = (folder / "input.parquet").read_bytes()

    answered = call(sample(), server, data_path=data_path)
    assert answered["api_status"].tolist() == ["ok"] * 3
    assert (folder / "input.parquet").read_bytes() == before
    assert len(pd.read_parquet(folder / "input.parquet")) == 1000


def test_batch_refuses_to_replace_a_file_it_did_not_write(server, tmp_path):
    (tmp_path / "data").mkdir()
    theirs = tmp_path / "data" / "batch_input.parquet"
    sample(1000).to_parquet(theirs, index=False)
    before = theirs.read_bytes()
    with pytest.raises(InputError) as raised:
        call(sample(), server)
    assert str(raised.value) == (
        f"{theirs}: a file of this name holds another table than the one given, and batch() replaces no file it "
        "has not written for this run; move that file out of data_path (or set another data_path)"
    )
    assert theirs.read_bytes() == before
    assert not (tmp_path / "data" / "run.sqlite3").exists()


def test_batch_mixed_type_id_column_is_an_input_error(server, tmp_path):
    table = pd.DataFrame({"id": [1, "two", 3], "text": ["a", "b", "c"]})
    with pytest.raises(InputError) as raised:
        call(table, server)
    assert str(raised.value) == (
        "the DataFrame given to batch(): column 'id' holds values of more than one type (int, str), which cannot "
        "be saved as the run's table; give it one type, e.g. table['id'] = table['id'].astype(str)"
    )


def test_batch_repeated_column_names_are_an_input_error(server, tmp_path):
    table = pd.DataFrame([["r1", "a", "b"]], columns=["id", "text", "text"])
    with pytest.raises(InputError) as raised:
        call(table, server)
    assert str(raised.value) == (
        "the DataFrame given to batch(): the column 'text' appears more than once; give every column its own name"
    )
