"""batch() and Run as a notebook user meets them: answers that line up with the frame, Python's words."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import openai_batch_api
from openai_batch_api import BatchApiToolError, ConfigError, InputError, Run, RunChangedError
from openai_batch_api.notebook import tqdm_class
from openai_batch_api.utils.state.run_store import load_run

MODEL_PARAMS = {"model": "gpt-4o-mini", "max_tokens": 20}


def ask(table, server, **options):
    settings = {
        "prompt": "Say the word back.",
        "model_params": MODEL_PARAMS,
        "data_path": "run",
        "content_column": "text",
        "base_url": server.base_url,
        "poll_interval": 0.05,
        "progress": False,
        **options,
    }
    return openai_batch_api.batch(table, **settings)


def words(ids=(1, 2, 3), index=None) -> pd.DataFrame:
    return pd.DataFrame({"id": list(ids), "text": ["alpha", "beta", "gamma"][: len(ids)]}, index=index)


def test_batch_answers_keep_the_callers_index_and_int_ids(server):
    frame = words(index=[7, 8, 9])
    answers = ask(frame, server)
    assert answers.index.tolist() == [7, 8, 9]
    assert answers["id"].dtype == "int64"
    frame["answer"] = answers["api_output"]
    assert frame["answer"].tolist() == ["Answer to: alpha", "Answer to: beta", "Answer to: gamma"]
    merged = frame.merge(answers[["id", "api_status"]], on="id")
    assert merged["api_status"].tolist() == ["ok", "ok", "ok"]


def test_batch_answers_line_up_after_sort_values(server):
    frame = words().sort_values("text", ascending=False)
    assert frame.index.tolist() == [2, 1, 0]
    frame["answer"] = ask(frame, server)["api_output"]
    assert (frame["answer"] == "Answer to: " + frame["text"]).all()


@pytest.mark.parametrize(
    "ids",
    [
        pd.Series([10, 20, 30], dtype="int32"),
        pd.Series([10, 20, 30], dtype="Int64"),
        pd.Series(["a", "b", "c"], dtype="string"),
        pd.Series(["a", "b", "c"], dtype=object),
    ],
    ids=["int32", "Int64", "string", "object"],
)
def test_batch_id_column_keeps_its_dtype(server, ids):
    frame = pd.DataFrame({"id": ids, "text": ["alpha", "beta", "gamma"]})
    answers = ask(frame, server)
    assert answers["id"].dtype == frame["id"].dtype
    assert answers["id"].tolist() == frame["id"].tolist()


def test_batch_answers_line_up_on_a_repeated_index(server):
    ids = pd.array([1, 2, 3], dtype="Int32")
    frame = pd.DataFrame({"id": ids, "text": ["alpha", "beta", "gamma"]}, index=[0, 0, 1])
    answers = ask(frame, server)
    assert answers.index.tolist() == [0, 0, 1]
    assert answers["id"].dtype == "Int32" and answers["id"].tolist() == [1, 2, 3]
    frame["answer"] = answers["api_output"].to_numpy()
    assert frame["answer"].tolist() == ["Answer to: alpha", "Answer to: beta", "Answer to: gamma"]


def test_batch_id_as_the_index_comes_back_as_the_index(server):
    frame = words(ids=(5, 6, 7)).set_index("id")
    answers = ask(frame, server)
    assert answers.index.name == "id" and answers.index.tolist() == [5, 6, 7]
    frame["answer"] = answers["api_output"]
    assert frame["answer"].tolist() == ["Answer to: alpha", "Answer to: beta", "Answer to: gamma"]


def test_batch_resumed_returns_the_same_frame(server):
    frame = words(index=[7, 8, 9])
    pd.testing.assert_frame_equal(ask(frame, server), ask(frame, server))


def test_batch_mistyped_keyword_is_matched_among_its_own(server):
    with pytest.raises(ConfigError) as raised:
        ask(words(), server, progres=False)
    assert str(raised.value) == "batch(): unknown keyword 'progres' (did you mean 'progress'?)"


def test_batch_missing_keyword_is_named_as_a_keyword(server):
    with pytest.raises(ConfigError) as raised:
        openai_batch_api.batch(words(), model_params=MODEL_PARAMS, data_path="run", content_column="text")
    assert str(raised.value) == "batch(): missing keyword 'prompt'"


def test_batch_model_params_typo_refused_before_anything_is_written(server, tmp_path):
    with pytest.raises(ConfigError) as raised:
        ask(words(), server, model_params={"model": "gpt-4o-mini", "max_token": 200}, base_url="local")
    assert str(raised.value) == (
        "batch(): unknown model_params field 'max_token' (did you mean 'max_tokens'?): /v1/chat/completions "
        "requests have no such field"
    )
    assert not (tmp_path / "run").exists()


def test_batch_model_params_typo_sent_to_the_local_backend_gets_the_apis_400_per_row(server):
    # A base_url of another server may take fields of its own: the local backend answers as the API does.
    answers = ask(words(), server, model_params={"model": "gpt-4o-mini", "max_token": 200})
    assert answers["api_status"].tolist() == ["error"] * 3
    assert answers["api_error"].tolist() == ["400 invalid_request_error: Unrecognized request argument supplied: max_token"] * 3


def test_batch_changed_settings_are_named(server, tmp_path):
    ask(words(), server)
    run_id = load_run(tmp_path / "run").run_id
    with pytest.raises(RunChangedError) as raised:
        ask(words(), server, model_params={**MODEL_PARAMS, "temperature": 0.2}, prompt="Another prompt.")
    assert str(raised.value) == (
        f"batch(): changed since run {run_id} was created in {tmp_path}/run: prompt Another prompt. (was Say the "
        "word back.); model_params.temperature 0.2 (was unset). To continue that run, restore what it was made "
        "from; to start a new run, set another data_path (or Run.collate() and Run.delete() the old run first)"
    )


def test_batch_added_column_is_named(server, tmp_path):
    ask(words(), server)
    run_id = load_run(tmp_path / "run").run_id
    with pytest.raises(RunChangedError) as raised:
        ask(words().assign(note="x"), server)
    assert str(raised.value) == (
        f"batch(): changed since run {run_id} was created in {tmp_path}/run: columns of batch_input.parquet: note "
        "added. To continue that run, restore what it was made from; to start a new run, set another data_path (or "
        "Run.collate() and Run.delete() the old run first)"
    )


def test_batch_with_a_row_removed_continues_the_run_without_it(server, tmp_path):
    ask(words(), server)
    answers = ask(words(ids=(1, 2)), server)
    assert answers["id"].tolist() == [1, 2]
    assert answers["api_status"].tolist() == ["ok", "ok"]
    assert [s.attempt for s in load_run(tmp_path / "run").shards] == [1]  # nothing new was sent


def test_run_from_python_names_methods_not_commands(server, tmp_path):
    words().to_csv(tmp_path / "words.csv", index=False)
    run = Run.from_mapping(
        {
            "input_file": "words.csv",
            "id_column": "id",
            "content_column": "text",
            "prompt": "Say the word back.",
            "model_params": MODEL_PARAMS,
            "data_path": "steps",
            "base_url": server.base_url,
        },
        base_dir=tmp_path,
    )
    with pytest.raises(BatchApiToolError) as raised:
        run.status()
    assert str(raised.value) == f"{tmp_path}/steps: no run here yet (no run.sqlite3); start one with Run.create()"
    run.create()
    run.submit()
    run.wait(interval=0.05)
    with pytest.raises(BatchApiToolError) as raised:
        run.delete()
    assert str(raised.value) == (
        f"{tmp_path}/steps: the results of run {load_run(tmp_path / 'steps').run_id} are not collated yet; run "
        "Run.collate() first, or pass force=True"
    )


def test_batch_refused_input_leaves_nothing_on_disk(server, tmp_path):
    with pytest.raises(InputError) as raised:
        ask(pd.DataFrame({"ident": [1], "text": ["alpha"]}), server, base_url="local")
    assert str(raised.value) == (
        "the DataFrame given to batch(): no column 'id' (named by id_column); the table has columns 'ident', "
        "'text': fix the keyword argument or rename the column"
    )
    assert not (tmp_path / "run").exists()


def test_batch_missing_column_names_the_keyword_and_the_closest_column(server, tmp_path):
    with pytest.raises(InputError) as raised:
        ask(pd.DataFrame({"id": [1], "Text": ["alpha"]}), server, content_column="text")
    assert str(raised.value) == (
        "the DataFrame given to batch(): no column 'text' (named by content_column, did you mean 'Text'?); the table "
        "has columns 'id', 'Text': fix the keyword argument or rename the column"
    )
    assert not (tmp_path / "run").exists()


def test_progress_bar_is_text_without_ipywidgets_and_shows_a_rate(server, capsys):
    from tqdm.std import tqdm

    assert tqdm_class() is tqdm  # ipywidgets is not installed here: tqdm.auto would warn in a notebook
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ask(words(), server, progress=True)
    bar = capsys.readouterr().err.split("\r")[-1]
    assert "batch: 100%" in bar and "3/3" in bar
    assert "?row/s" not in bar and "row/s" in bar
