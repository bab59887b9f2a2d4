"""Reading Batch API output and error files, grouping failures, and turning JSON answers into columns."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from openai_batch_api.utils.answers.result_columns import LOADED as RESULT_COLUMNS
from openai_batch_api.utils.answers.results import (
    FailureGroup,
    expand_structured_answers,
    load_results,
    summarize_failures,
)
from openai_batch_api.utils.errors import BatchToolError

EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


def chat_line(custom_id, content, *, prompt=22, completion=2, finish="stop", refusal=None):
    """An output-file line of a successful chat completion, as the Batch API writes it."""
    body = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1711652795,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        "system_fingerprint": "fp_3ba",
    }
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": f"req_{custom_id}", "body": body},
        "error": None,
    }


def http_error_line(custom_id, status, code, message, error_type="invalid_request_error"):
    """An error-file line of a request the API answered with 4xx/5xx."""
    error = {"message": message, "type": error_type, "param": None, "code": code}
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": f"req_{custom_id}", "body": {"error": error}},
        "error": None,
    }


def batch_error_line(custom_id, code, message):
    """An error-file line of a request that never ran (expired or cancelled batch)."""
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def write_jsonl(path: Path, records) -> Path:
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


@pytest.fixture
def attempt_files(tmp_path):
    output = write_jsonl(
        tmp_path / "batch_1_output.jsonl",
        [chat_line("r1", "Paris"), chat_line("r2", "Blue", prompt=30, completion=1)],
    )
    errors = write_jsonl(
        tmp_path / "batch_1_errors.jsonl",
        [
            http_error_line("r3", 429, "rate_limit_exceeded", "Rate limit reached", "requests"),
            http_error_line("r4", 400, "model_not_found", "The model `gpt-9` does not exist."),
            batch_error_line("r5", "batch_expired", EXPIRED_MESSAGE),
            batch_error_line("r6", "batch_cancelled", "This request was cancelled.\nNo charge."),
            http_error_line("r7", 500, None, "The server had an error", "server_error"),
        ],
    )
    return output, errors


def test_load_results_output_and_error_files_exact_values(attempt_files):
    results = load_results(attempt_files)
    assert list(results.columns) == list(RESULT_COLUMNS)
    assert results.index.name == "custom_id"
    assert list(results.index) == ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]
    assert results["api_status"].tolist() == ["ok", "ok", "error", "error", "expired", "cancelled", "error"]
    assert results["api_output"].tolist() == ["Paris", "Blue", None, None, None, None, None]
    assert results["api_error"].tolist() == [
        None,
        None,
        "429 rate_limit_exceeded: Rate limit reached",
        "400 model_not_found: The model `gpt-9` does not exist.",
        f"batch_expired: {EXPIRED_MESSAGE}",
        "batch_cancelled: This request was cancelled. No charge.",
        "500 server_error: The server had an error",
    ]
    assert results["api_error_code"].tolist() == [
        None,
        None,
        "rate_limit_exceeded",
        "model_not_found",
        "batch_expired",
        "batch_cancelled",
        "server_error",
    ]
    assert results["api_retryable"].tolist() == [False, False, True, False, True, False, True]
    assert results["api_retryable"].dtype == bool
    assert results["api_finish_reason"].tolist() == ["stop", "stop", None, None, None, None, None]
    assert results["api_prompt_tokens"].dtype == "Int64"
    assert results["api_prompt_tokens"].tolist() == [22, 30, pd.NA, pd.NA, pd.NA, pd.NA, pd.NA]
    assert results["api_completion_tokens"].tolist()[:2] == [2, 1]
    assert results["api_total_tokens"].tolist()[:2] == [24, 31]


@pytest.mark.parametrize(
    ("line", "retryable"),
    [
        (http_error_line("x", 503, "service_unavailable", "Overloaded", "server_error"), True),
        (http_error_line("x", 408, None, "Request timed out", "timeout"), True),
        (http_error_line("x", 400, "token_limit_exceeded", "Enqueued token limit reached"), True),
        (http_error_line("x", 400, "context_length_exceeded", "Too long"), False),
        (http_error_line("x", 401, "invalid_api_key", "Bad key"), False),
        (batch_error_line("x", "batch_expired", EXPIRED_MESSAGE), True),
        (batch_error_line("x", "batch_cancelled", "cancelled"), False),
        (batch_error_line("x", "server_error", "Internal error"), True),
    ],
)
def test_load_results_retryable_rules(tmp_path, line, retryable):
    results = load_results([write_jsonl(tmp_path / "errors.jsonl", [line])])
    assert bool(results.loc["x", "api_retryable"]) is retryable


def test_load_results_last_attempt_wins(tmp_path, attempt_files):
    retry = write_jsonl(
        tmp_path / "batch_2_output.jsonl",
        [chat_line("r5", "Recovered"), http_error_line("r1", 500, "server_error", "Oops", "server_error")],
    )
    results = load_results([*attempt_files, retry])
    assert len(results) == 7
    assert results.index.is_unique
    assert results.loc["r5", "api_status"] == "ok"
    assert results.loc["r5", "api_output"] == "Recovered"
    assert results.loc["r1", "api_status"] == "error"
    assert results.loc["r1", "api_output"] is None


def test_load_results_refusal_length_and_parts_content(tmp_path):
    path = write_jsonl(
        tmp_path / "out.jsonl",
        [
            chat_line("refused", None, refusal="I can't help with that.", finish="stop"),
            chat_line("cut", "The answer is", finish="length"),
            chat_line("filtered", None, finish="content_filter"),
            chat_line("parts", [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
        ],
    )
    results = load_results([path])
    assert results["api_refusal"].tolist() == ["I can't help with that.", None, None, None]
    assert results["api_output"].tolist() == [None, "The answer is", None, "ab"]
    assert results["api_finish_reason"].tolist() == ["stop", "length", "content_filter", "stop"]
    assert results["api_status"].tolist() == ["ok"] * 4


def test_load_results_responses_and_embeddings_bodies(tmp_path):
    responses_body = {
        "object": "response",
        "status": "completed",
        "output": [
            {"type": "reasoning", "summary": []},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
            },
        ],
        "usage": {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
    }
    incomplete_body = {
        "object": "response",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [],
        "usage": {"input_tokens": 12, "output_tokens": 64, "total_tokens": 76},
    }
    embedding_body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    lines = [
        {"custom_id": cid, "response": {"status_code": 200, "request_id": "q", "body": body}, "error": None}
        for cid, body in (("resp", responses_body), ("short", incomplete_body), ("emb", embedding_body))
    ]
    results = load_results([write_jsonl(tmp_path / "out.jsonl", lines)])
    assert results["api_status"].tolist() == ["ok", "ok", "ok"]
    assert results["api_output"].tolist()[:2] == ["Hi", None]
    vector = results["api_output"]["emb"]
    assert vector.dtype == np.float32 and vector.tolist() == np.array([0.1, -0.2], dtype=np.float32).tolist()
    assert results["api_finish_reason"].tolist() == ["stop", "length", None]
    assert results["api_prompt_tokens"].tolist() == [12, 12, 7]
    assert results["api_completion_tokens"].tolist() == [3, 64, pd.NA]
    assert results["api_total_tokens"].tolist() == [15, 76, 7]


def test_load_results_base64_embeddings_and_moderations(tmp_path):
    vector = np.array([0.25, -1.5, 3e-8], dtype="<f4")
    embedding_body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": base64.b64encode(vector.tobytes()).decode()}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }

    def moderation(flagged: bool, hits: tuple[str, ...]) -> dict:
        categories = {name: name in hits for name in ("harassment", "violence", "self-harm")}
        return {"id": "modr-1", "model": "omni-moderation-latest", "results": [{"flagged": flagged, "categories": categories}]}

    lines = [
        {"custom_id": cid, "response": {"status_code": 200, "request_id": "q", "body": body}, "error": None}
        for cid, body in (
            ("emb", embedding_body),
            ("clean", moderation(False, ())),
            ("bad", moderation(True, ("harassment", "violence"))),
        )
    ]
    results = load_results([write_jsonl(tmp_path / "out.jsonl", lines)])
    assert np.array_equal(results["api_output"]["emb"], vector)
    assert results["api_output"].tolist()[1:] == [False, True]
    assert results["api_categories"].tolist() == [None, "", "harassment, violence"]
    assert results["api_prompt_tokens"].tolist() == [3, pd.NA, pd.NA]


def test_load_results_blank_lines_and_no_files(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(orjson.dumps(chat_line("a", "x")) + b"\n\n  \n")
    assert load_results([path]).index.tolist() == ["a"]
    empty = load_results([])
    assert list(empty.columns) == list(RESULT_COLUMNS)
    assert len(empty) == 0


def test_load_results_not_json_error(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(orjson.dumps(chat_line("a", "x")) + b"\n" + b'{"custom_id": "b", "resp\n')
    with pytest.raises(BatchToolError) as caught:
        load_results([path])
    assert str(caught.value) == (
        f"{path}, line 2: not valid JSON "
        "(unexpected control character in string: line 1 column 25 (char 24)); "
        "the file is truncated or is not a Batch API output or error file"
    )


NOT_RESULT_LINES = [
    b'{"id": "x", "response": null}',
    b'{"custom_id": null, "response": null, "error": {"code": "x", "message": "y"}}',
    b"[1, 2]",
    b'{"custom_id": "a", "response": 5}',
]


@pytest.mark.parametrize("line", NOT_RESULT_LINES)
def test_load_results_not_a_result_line_error(tmp_path, line):
    path = tmp_path / "input.jsonl"
    path.write_bytes(line + b"\n")
    with pytest.raises(BatchToolError) as caught:
        load_results([path])
    assert str(caught.value) == (
        f"{path}, line 1: not a Batch API result line (expected custom_id with a response or an error); "
        "pass the batch's output or error file"
    )


def test_load_results_missing_file_error(tmp_path):
    with pytest.raises(BatchToolError) as caught:
        load_results([tmp_path / "gone.jsonl"])
    assert str(caught.value) == f"{tmp_path / 'gone.jsonl'}: result file not found"


def test_summarize_failures_groups_by_code(tmp_path):
    lines = [chat_line("ok1", "x")]
    lines += [batch_error_line(f"e{i}", "batch_expired", EXPIRED_MESSAGE) for i in range(3)]
    lines += [http_error_line("bad", 400, "invalid_prompt", "Invalid prompt")]
    results = load_results([write_jsonl(tmp_path / "errors.jsonl", lines)])
    assert summarize_failures(results) == [
        FailureGroup("batch_expired", 3, True, "e0", f"batch_expired: {EXPIRED_MESSAGE}"),
        FailureGroup("invalid_prompt", 1, False, "bad", "400 invalid_prompt: Invalid prompt"),
    ]
    assert summarize_failures(results[results["api_status"] == "ok"]) == []


SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "score": {"type": ["number", "null"]},
                "mood": {"type": "string", "enum": ["happy", "sad"]},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}


def test_expand_structured_answers_schema_properties_and_flags():
    outputs = pd.Series(
        [
            '{"name": "Ann", "age": 31, "score": 0.5, "mood": "happy", "extra": 1}',
            '{"name": "Bob", "age": "old", "score": null}',
            '{"name": "Cy"',
            '["Ann", 31]',
            '{"age": 2, "score": "high", "mood": "angry"}',
            None,
        ],
        index=pd.Index(["a", "b", "c", "d", "e", "f"], name="custom_id"),
    )
    frame = expand_structured_answers(outputs, response_format=SCHEMA_FORMAT, prefix="answer_")
    assert list(frame.columns) == [
        "answer_name",
        "answer_age",
        "answer_score",
        "answer_mood",
        "api_json_error",
    ]
    assert frame.index.equals(outputs.index)
    assert frame["answer_name"].tolist() == ["Ann", "Bob", None, None, None, None]
    assert frame["answer_age"].tolist() == [31, "old", None, None, 2, None]
    assert frame["answer_score"].tolist() == [0.5, None, None, None, "high", None]
    assert frame["api_json_error"].tolist() == [
        None,
        "'age' is string, expected integer",
        "answer is not valid JSON (unexpected end of data: line 1 column 14 (char 13))",
        "answer is a JSON array, not an object",
        "missing required 'name'; 'score' is string, expected number or null; "
        "'mood' is 'angry', not one of ['happy', 'sad']",
        None,
    ]


def test_expand_structured_answers_json_object_flags_only():
    outputs = pd.Series(['{"a": 1}', "not json", "42"])
    frame = expand_structured_answers(outputs, response_format={"type": "json_object"}, prefix="answer_")
    assert list(frame.columns) == ["api_json_error"]
    assert frame["api_json_error"].tolist() == [
        None,
        "answer is not valid JSON (invalid literal, expected 'null': line 1 column 1 (char 0))",
        "answer is a JSON integer, not an object",
    ]


def test_expand_structured_answers_responses_text_format_schema():
    response_format = {"type": "json_schema", "name": "x", "schema": SCHEMA_FORMAT["json_schema"]["schema"]}
    frame = expand_structured_answers(
        pd.Series(['{"name": "Ann", "age": 3}']), response_format=response_format, prefix="q_"
    )
    assert frame.iloc[0].tolist() == ["Ann", 3, None, None, None]


@pytest.mark.parametrize("response_format", [None, {"type": "text"}])
def test_expand_structured_answers_without_json_format_is_empty(response_format):
    outputs = pd.Series(["{}", "x"], index=["a", "b"])
    frame = expand_structured_answers(outputs, response_format=response_format, prefix="answer_")
    assert frame.empty
    assert list(frame.columns) == []
    assert frame.index.tolist() == ["a", "b"]


def test_write_table_cannot_write_error_names_the_output_file(tmp_path):
    from openai_batch_api.utils.lifecycle.collation import write_table

    (tmp_path / "taken").write_text("a file where a folder should be")
    path = tmp_path / "taken" / "out.csv"
    with pytest.raises(BatchToolError) as caught:
        write_table(pd.DataFrame({"id": ["1"]}), path)
    assert str(caught.value) == (
        f"{path}: cannot write the output_file (file exists: {tmp_path / 'taken'}); fix the permissions of its folder, "
        "or choose another output_file in the config"
    )
