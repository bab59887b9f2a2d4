"""Input columns create-batch refuses before anything is uploaded: repeated names, names collate would overwrite."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DUPLICATE_HEADERS = [
    ("id,id,content", "the column 'id' appears more than once"),
    ("id,content,content", "the column 'content' appears more than once"),
    ("id,content,id,content", "the columns 'id', 'content' appear more than once"),
]


def assert_refused_before_upload(project, result, message: str) -> None:
    assert (result.exit_code, result.err) == (1, f"error: {message}\n")
    assert project.server_files() == []
    assert not (project.data_path / "tasks").exists() or not any((project.data_path / "tasks").iterdir())


@pytest.mark.parametrize(("header", "problem"), DUPLICATE_HEADERS)
def test_create_batch_csv_duplicate_column_names_error(project, header, problem):
    path = project.root / "input.csv"
    path.write_text(f"{header}\n" + ",".join(["1", "hello", "2", "x"][: header.count(",") + 1]) + "\n")
    project.write_config(input_file="input.csv")
    result = project.run("create-batch")
    assert_refused_before_upload(project, result, f"{path}: {problem}; give every column its own name")


def test_create_batch_parquet_duplicate_column_names_error(project):
    path = project.root / "input.parquet"
    pq.write_table(pa.table([pa.array(["1"]), pa.array(["a"]), pa.array(["b"])], names=["id", "content", "content"]), path)
    project.write_config(input_file="input.parquet")
    result = project.run("create-batch")
    assert_refused_before_upload(
        project, result, f"{path}: the column 'content' appears more than once; give every column its own name"
    )


def test_create_batch_pickle_duplicate_column_names_error(project):
    path = project.root / "input.pkl"
    pd.DataFrame([["1", "a", "b"]], columns=["id", "content", "content"]).to_pickle(path)
    project.write_config(input_file="input.pkl")
    result = project.run("create-batch")
    assert_refused_before_upload(
        project, result, f"{path}: the column 'content' appears more than once; give every column its own name"
    )


SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "label",
        "schema": {"type": "object", "properties": {"label": {"type": "string"}, "id": {"type": "string"}}},
    },
}


@pytest.mark.parametrize(
    ("columns", "format_", "prefix", "clash", "fix"),
    [
        (["api_output"], None, None, "'api_output'", "rename the column in the input"),
        (["api_status", "api_attempts"], None, None, "'api_status', 'api_attempts'", "rename the column in the input"),
        (
            ["answer_label"],
            SCHEMA,
            None,
            "'answer_label'",
            "rename the column in the input, or set answer_column_prefix to another prefix",
        ),
        (["note"], SCHEMA, "", "'id'", "rename the column in the input, or set answer_column_prefix to another prefix"),
        (["label"], SCHEMA, "", "'label', 'id'", "rename the column in the input, or set answer_column_prefix to another prefix"),
        (["api_json_error"], {"type": "json_object"}, None, "'api_json_error'", "rename the column in the input"),
    ],
)
def test_create_batch_input_column_collate_would_overwrite_error(project, columns, format_, prefix, clash, fix):
    table = pd.DataFrame({"id": ["1", "2"], "content": ["hello", "there"]})
    for name in columns:
        table[name] = "MINE"
    path = project.write_table(table, "input.csv")
    params = {"model": "gpt-4o-mini", "max_tokens": 5}
    if format_ is not None:
        params["response_format"] = format_
    project.write_config(model_params=params, answer_column_prefix=prefix)
    result = project.run("create-batch")
    noun = "columns" if "," in clash else "column"
    assert_refused_before_upload(
        project, result, f"{path}: the input {noun} {clash} would be overwritten by collate-output's results; {fix}"
    )


def test_create_batch_other_prefix_avoids_answer_column_clash(project):
    project.write_table(pd.DataFrame({"id": ["1"], "content": ["hello"], "answer_label": ["MINE"]}), "input.csv")
    project.write_config(model_params={"model": "gpt-4o-mini", "max_tokens": 5, "response_format": SCHEMA},
                         answer_column_prefix="model_")
    assert project.run("create-batch").exit_code == 0


def test_jsonl_ids_beyond_float_precision_keep_their_text(project):
    path = project.root / "input.jsonl"
    path.write_text(
        '{"id":123456789012345678901,"content":"a"}\n{"id":123456789012345678902,"content":"b"}\n'
        '{"id":-98765432109876543210987,"content":"c"}\n{"id":1.5e300,"content":"d"}\n'
    )
    project.write_config(input_file="input.jsonl", output_file="out.csv")
    assert project.run("create-batch").err == ""
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    assert project.run("collate-output").exit_code == 0
    out = pd.read_csv(project.root / "out.csv", dtype=str)
    assert out["id"].tolist() == ["123456789012345678901", "123456789012345678902", "-98765432109876543210987", "1.5e+300"]
    assert out["api_status"].tolist() == ["ok"] * 4


def test_collate_output_refuses_answer_column_clash_of_a_run_begun_with_another_prefix(project):
    # The prefix is no part of the requests, so changing it after create-batch keeps the run.
    path = project.write_table(pd.DataFrame({"id": ["1"], "content": ["hello"], "answer_label": ["MINE"]}), "input.csv")
    params = {"model": "gpt-4o-mini", "max_tokens": 5, "response_format": SCHEMA}
    project.write_config(model_params=params, answer_column_prefix="model_")
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    project.write_config(answer_column_prefix=None)
    result = project.run("collate-output")
    assert (result.exit_code, result.err) == (
        1,
        f"error: {path}: the input column 'answer_label' would be overwritten by collate-output's results; "
        "rename the column in the input, or set answer_column_prefix to another prefix\n",
    )
    assert not (project.root / "output.pkl").exists()
