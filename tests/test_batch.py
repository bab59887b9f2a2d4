"""`openai_batch_api.batch()`: one call from a table to its answers, resumed after an interruption."""

from __future__ import annotations

import pandas as pd
import pytest

import openai_batch_api
from openai_batch_api import ConfigError, RunChangedError
from openai_batch_api.utils.state.run_store import load_run

MODEL_PARAMS = {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 50}


def reviews(rows: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(rows)], "text": [f"review number {i}" for i in range(rows)]})


def call(table, server, **options):
    return openai_batch_api.batch(
        table,
        prompt="Classify the review.",
        model_params=MODEL_PARAMS,
        data_path="run",
        content_column="text",
        base_url=server.base_url,
        batch_size=4,
        poll_interval=0.05,
        progress=False,
        **options,
    )


def batches_on(server) -> list:
    import openai

    with openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as client:
        return list(client.batches.list(limit=100))


def test_batch_returns_the_table_with_answers(server, tmp_path):
    table = reviews()
    answered = call(table, server)
    assert answered["id"].tolist() == table["id"].tolist()
    assert answered["text"].tolist() == table["text"].tolist()
    assert (answered["api_status"] == "ok").all()
    assert answered["api_output"].notna().all()
    assert (tmp_path / "run" / "batch_input.parquet").exists()


def test_batch_called_again_resumes_without_resubmitting(server):
    first = call(reviews(), server)
    again = call(reviews(), server)
    pd.testing.assert_frame_equal(first, again)
    assert len(batches_on(server)) == 3


def test_batch_interrupted_during_wait_loses_nothing(server, tmp_path):
    def interrupt(update):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call(reviews(), server, on_update=interrupt)
    ledger = load_run(tmp_path / "run")
    assert len([s for s in ledger.shards if s.batch_id]) == 3

    answered = call(reviews(), server)
    assert (answered["api_status"] == "ok").all() and len(answered) == 10
    assert len(batches_on(server)) == 3  # one batch per shard: nothing was submitted twice


def test_batch_edited_table_continues_the_run_sending_only_the_edited_row(server, tmp_path):
    call(reviews(), server)
    changed = reviews()
    changed.loc[0, "text"] = "another review"
    answered = call(changed, server)
    assert (answered["api_status"] == "ok").all() and len(answered) == 10
    assert answered.loc[0, "api_output"] == "Answer to: another review"
    assert len(batches_on(server)) == 4  # three batches of the first call, one holding the edited row
    ledger = load_run(tmp_path / "run")
    assert [s.rows for s in ledger.shards if s.attempt == 2] == [1]
    assert [p.name for p in (tmp_path / "run").glob(".batch_input.parquet.*")] == []


def test_batch_changed_prompt_is_refused_and_the_run_keeps_its_input(server, tmp_path):
    call(reviews(), server)
    saved = (tmp_path / "run" / "batch_input.parquet").read_bytes()
    changed = reviews()
    changed.loc[0, "text"] = "another review"
    with pytest.raises(RunChangedError) as raised:
        openai_batch_api.batch(
            changed,
            prompt="Another prompt.",
            model_params=MODEL_PARAMS,
            data_path="run",
            content_column="text",
            base_url=server.base_url,
            batch_size=4,
            progress=False,
        )
    run_id = load_run(tmp_path / "run").run_id
    assert str(raised.value) == (
        f"batch(): changed since run {run_id} was created in {tmp_path}/run: prompt Another prompt. (was Classify "
        "the review.). To continue that run, restore what it was made from; to start a new run, set another "
        "data_path (or Run.collate() and Run.delete() the old run first)"
    )
    assert len(batches_on(server)) == 3
    assert (tmp_path / "run" / "batch_input.parquet").read_bytes() == saved
    assert [p.name for p in (tmp_path / "run").glob(".batch_input.parquet.*")] == []


def test_batch_from_a_table_file_writes_output_file(server, tmp_path):
    reviews(3).to_csv(tmp_path / "reviews.csv", index=False)
    answered = call("reviews.csv", server, output_file="answers.csv")
    assert len(answered) == 3
    assert pd.read_csv(tmp_path / "answers.csv")["api_status"].tolist() == ["ok"] * 3
    assert not (tmp_path / "run" / "batch_input.parquet").exists()


def test_batch_unknown_option_is_a_config_error(server, tmp_path):
    with pytest.raises(ConfigError) as raised:
        call(reviews(), server, batch_sise=4)
    assert str(raised.value) == "batch(): unknown keyword 'batch_sise' (did you mean 'batch_size'?)"


def test_batch_takes_other_config_keys(server, tmp_path):
    answered = openai_batch_api.batch(
        reviews(2),
        prompt="Classify the review.",
        model_params=MODEL_PARAMS,
        data_path="run",
        content_template="Review {id}: {text}",
        base_url=server.base_url,
        progress=False,
        poll_interval=0.05,
    )
    assert answered["api_output"].str.startswith("Answer to: Review r").all()


def test_batch_shows_a_progress_bar_of_rows(server, capsys):
    openai_batch_api.batch(
        reviews(),
        prompt="Classify the review.",
        model_params=MODEL_PARAMS,
        data_path="run",
        content_column="text",
        base_url=server.base_url,
        batch_size=4,
        poll_interval=0.05,
    )
    bar = capsys.readouterr().err
    assert "batch: 100%" in bar and "10/10" in bar


def test_batch_after_a_lost_run_state_is_refused_then_adopted(server, tmp_path):
    from openai_batch_api import LostRunError
    from openai_batch_api.utils.state.run_store import STORE_NAME

    first = call(reviews(), server)
    run_id = load_run(tmp_path / "run").run_id
    for name in (STORE_NAME, f"{STORE_NAME}-wal", f"{STORE_NAME}-shm"):
        (tmp_path / "run" / name).unlink(missing_ok=True)

    with pytest.raises(LostRunError) as raised:
        call(reviews(), server)
    assert str(raised.value).startswith(
        f"{tmp_path}/run: no run state here ({STORE_NAME}), but the API holds 3 batches of run {run_id}"
    )
    assert len(batches_on(server)) == 3

    adopted = call(reviews(), server, adopt=True)
    pd.testing.assert_frame_equal(first, adopted)
    assert load_run(tmp_path / "run").run_id == run_id
    assert len(batches_on(server)) == 3  # the lost run's batches, none made again
