"""Every endpoint through the commands: the SDK over HTTP to the local backend, exact results per endpoint."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

WAIT = ("--wait", "--interval", "0.05")
LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
    "required": ["label"],
    "additionalProperties": False,
}


def reviews(project) -> None:
    project.write_table(
        pd.DataFrame(
            {
                "id": ["r1", "r2", "r3"],
                "title": ["Great kettle", "Broken", "Fine"],
                "body": ["Boils fast.", "I want to kill it.", None],
            }
        )
    )


def run_all(project, **config) -> pd.DataFrame:
    project.write_config(**config)
    for command, args in (("create-batch", ()), ("status-jobs", WAIT), ("collate-output", ())):
        result = project.run(command, *args)
        assert result.exit_code == 0, result.err
    path = project.root / project.config["output_file"]
    readers = {".parquet": pd.read_parquet, ".csv": pd.read_csv}
    return readers[path.suffix](path) if path.suffix in readers else project.output()


def test_responses_output_text_and_json_schema_answers(project):
    reviews(project)
    output = run_all(
        project,
        endpoint="/v1/responses",
        content_column=None,
        content_template="Title: {title}\n\n{body}",
        examples=[{"user": "Title: Love it\n\nWorks.", "assistant": '{"label": "positive"}'}],
        model_params={
            "model": "gpt-4o-mini",
            "max_output_tokens": 50,
            "text": {"format": {"type": "json_schema", "name": "label", "schema": LABEL_SCHEMA, "strict": True}},
        },
    )
    assert output["api_output"].tolist() == ['{"label":"negative"}', '{"label":"negative"}', '{"label":"negative"}']
    assert output["answer_label"].tolist() == ["negative", "negative", "negative"]
    assert output["api_json_error"].isna().all()
    assert output["api_finish_reason"].tolist() == ["stop"] * 3
    batch = project.server_batches()[0]
    assert batch.endpoint == "/v1/responses"


def test_responses_cut_short_is_reported_per_row(project):
    reviews(project)
    output = run_all(
        project,
        endpoint="/v1/responses",
        content_column="title",
        model_params={"model": "gpt-4o-mini", "max_output_tokens": 2},
    )
    assert output["api_finish_reason"].tolist() == ["length"] * 3
    assert "3 answers stopped with finish_reason 'length'" in project.run("collate-output").out


def test_embeddings_vectors_float32_in_parquet_and_json_text_in_csv(project):
    reviews(project)
    config = dict(
        endpoint="/v1/embeddings",
        prompt=None,
        content_column=None,
        content_template="{title}: {body}",
        model_params={"model": "text-embedding-3-small", "dimensions": 4},
    )
    output = run_all(project, output_file="out.parquet", **config)
    # the local backend's vectors are deterministic: the same text gives the same vector
    expected = np.array(
        [
            [-0.13560078, -0.67474866, -0.58851904, -0.42423108],
            [0.92235696, -0.11740126, -0.36316124, -0.05990428],
            [-0.22560458, 0.5968814, 0.708348, -0.3017919],
        ],
        dtype=np.float32,
    )
    assert np.array_equal(np.stack(output["api_output"]), expected)
    assert pq.read_schema(project.root / "out.parquet").field("api_output").type == pa.list_(pa.float32())
    assert output["api_output"][0].dtype == np.float32
    assert output["api_prompt_tokens"].tolist() == [7, 8, 3]
    assert output["api_completion_tokens"].isna().all()
    # the same vectors as base64, decoded; and written as JSON text into a CSV
    project.write_config(output_file="out.csv", data_path="data-b64", model_params={
        "model": "text-embedding-3-small", "dimensions": 4, "encoding_format": "base64"
    })
    csv = run_all(project)
    vectors = [np.asarray(json.loads(text), dtype=np.float32) for text in csv["api_output"]]
    assert all(np.array_equal(a, b) for a, b in zip(vectors, output["api_output"], strict=True))


def test_embeddings_cost_counts_input_tokens_only(project):
    reviews(project)
    project.write_config(
        endpoint="/v1/embeddings",
        prompt=None,
        content_column="title",
        max_cost=1,
        model_params={"model": "text-embedding-3-small"},
    )
    result = project.run("create-batch", "--dry-run")
    assert result.exit_code == 0, result.err
    assert "estimate: 3 requests, about 4 input tokens (tiktoken cl100k_base), at most 0 output tokens" in result.out
    assert "cost at batch prices (text-embedding-3-small): input <$0.000001" in result.out


def test_moderations_flagged_and_categories(project):
    reviews(project)
    output = run_all(
        project,
        endpoint="/v1/moderations",
        prompt=None,
        content_column=None,
        content_template="{title}. {body}",
        model_params={"model": "omni-moderation-latest"},
    )
    assert output["api_output"].tolist() == [False, True, False]
    assert output["api_categories"].tolist() == ["", "violence", ""]
    assert list(output.columns[3:6]) == ["api_output", "api_categories", "api_status"]


def test_completions_prompt_and_content_joined(project):
    reviews(project)
    output = run_all(
        project,
        endpoint="/v1/completions",
        content_column="title",
        prompt="Say",
        model_params={"model": "gpt-3.5-turbo-instruct", "max_tokens": 20},
    )
    assert output["api_output"].tolist() == [
        " Answer to: Say Great kettle",  # the local backend's answer quotes the prompt on one line
        " Answer to: Say Broken",
        " Answer to: Say Fine",
    ]


def test_chat_examples_and_template_reach_the_model(project):
    reviews(project)
    project.write_config(
        content_column=None,
        content_template="{title} | {body}",
        examples=[{"user": "Nice | Works.", "assistant": "positive"}],
    )
    result = project.run("create-batch")
    assert result.exit_code == 0, result.err
    assert "content_template: empty or missing cells sent as empty text: {body} in 1 row" in result.out
    line = json.loads((project.data_path / "tasks/attempt-1/shard-0001.jsonl").read_text().splitlines()[2])
    assert line["body"]["messages"] == [
        {"role": "system", "content": "Classify the text."},
        {"role": "user", "content": "Nice | Works."},
        {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "Fine | "},
    ]


def test_changed_examples_refused_on_an_existing_run(project):
    reviews(project)
    project.write_config(content_column="title")
    assert project.run("create-batch").exit_code == 0
    project.write_config(examples=[{"user": "a", "assistant": "b"}])
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err.endswith(
        '/data: examples [{"user": "a", "assistant": "b"}] (was unset). To continue that run, restore what it was '
        "made from; to start a new run, set another data_path (or collate-output and delete-tasks the old run first)\n"
    )


def test_write_table_vectors_as_json_arrays_in_jsonl_and_json_text_in_csv(tmp_path):
    from openai_batch_api.utils.lifecycle.collation import write_table

    vector = np.array([-0.10898159, 0.1, 3e-8], dtype=np.float32)
    table = pd.DataFrame({"id": ["a", "b"], "api_output": [None, vector]})
    write_table(table, tmp_path / "out.jsonl")
    write_table(table, tmp_path / "out.csv")
    assert (tmp_path / "out.jsonl").read_text().splitlines() == [
        '{"id":"a","api_output":null}',
        '{"id":"b","api_output":[-0.10898159,0.1,0.00000003]}',
    ]
    assert (tmp_path / "out.csv").read_text().splitlines() == ["id,api_output", "a,", 'b,"[-0.10898159,0.1,3e-8]"']
    assert table["api_output"][1] is vector  # the caller's table is left as it was


@pytest.mark.parametrize(
    ("endpoint", "config"),
    [
        ("/v1/chat/completions", {"examples": [{"user": "Nice", "assistant": "positive"}]}),
        (
            "/v1/responses",
            {
                "examples": [{"user": "Nice", "assistant": "positive"}],
                "model_params": {"model": "gpt-4o-mini", "temperature": 0, "max_output_tokens": 50},
            },
        ),
        ("/v1/embeddings", {"prompt": None, "model_params": {"model": "text-embedding-3-small"}}),
        ("/v1/completions", {"model_params": {"model": "gpt-3.5-turbo-instruct", "max_tokens": 5}}),
    ],
)
def test_estimated_input_tokens_match_the_usage_per_endpoint(project, endpoint, config):
    reviews(project)
    project.write_config(endpoint=endpoint, content_column=None, content_template="{title}: {body}", **config)
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    estimate = int(created.out.split("about ")[1].split(" input tokens")[0].replace(",", ""))
    output = run_all(project)
    assert estimate == output["api_prompt_tokens"].sum()
    assert f"tokens used: {estimate:,} input" in project.run("status-jobs").out
