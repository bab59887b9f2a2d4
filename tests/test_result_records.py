"""Any provider's result file read as neutral result records: (row id, answer, failure), nothing of its line format."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from openai_batch_api.utils.answers.results import load_results
from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.providers.base import ANSWER_TABLE_COLUMNS, NO_ANSWER
from openai_batch_api.utils.providers.result_lines import read_answer_table, read_result_file


def write_jsonl(path: Path, records) -> Path:
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


OPENAI_SUCCESS = {
    "id": "batch_req_1",
    "custom_id": "r1",
    "response": {
        "status_code": 200,
        "request_id": "req_1",
        "body": {
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
        },
    },
    "error": None,
}
OPENAI_HTTP_ERROR = {
    "id": "batch_req_2",
    "custom_id": "r2",
    "response": {
        "status_code": 429,
        "request_id": "req_2",
        "body": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
    },
    "error": None,
}
OPENAI_NEVER_RAN = {
    "id": "batch_req_3",
    "custom_id": 3,
    "response": None,
    "error": {"code": "batch_cancelled", "message": "This request was cancelled."},
}
MESSAGE_SUCCESS = {
    "custom_id": "r4",
    "result": {
        "type": "succeeded",
        "message": {
            "content": [{"type": "text", "text": "Lyon"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 20, "cache_read_input_tokens": 5, "output_tokens": 2},
        },
    },
}
MESSAGE_ERRORED = {
    "custom_id": "r5",
    "result": {"type": "errored", "error": {"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}}},
}
MESSAGE_EXPIRED = {"custom_id": "r6", "result": {"type": "expired"}}


def test_result_records_of_both_providers_lines_in_one_shape(tmp_path):
    lines = [OPENAI_SUCCESS, OPENAI_HTTP_ERROR, OPENAI_NEVER_RAN, MESSAGE_SUCCESS, MESSAGE_ERRORED, MESSAGE_EXPIRED]
    records = list(read_result_file(write_jsonl(tmp_path / "results.jsonl", lines)))
    assert records == [
        ("r1", ("Paris", None, "stop", None, 12, 1, 13), None),
        ("r2", NO_ANSWER, ("error", "429 rate_limit_exceeded: Rate limit reached", "rate_limit_exceeded", True)),
        ("3", NO_ANSWER, ("cancelled", "batch_cancelled: This request was cancelled.", "batch_cancelled", False)),
        ("r4", ("Lyon", None, "length", None, 25, 2, 27), None),
        ("r5", NO_ANSWER, ("error", "overloaded_error: Busy", "overloaded_error", True)),
        (
            "r6",
            NO_ANSWER,
            ("expired", "batch_expired: the batch expired before this request ran", "batch_expired", True),
        ),
    ]


def test_result_records_failures_only_leave_the_answers_unread_and_skip_ids(tmp_path):
    path = write_jsonl(tmp_path / "results.jsonl", [OPENAI_SUCCESS, OPENAI_HTTP_ERROR, MESSAGE_SUCCESS])
    records = list(read_result_file(path, answers=False, skip={"r2"}))
    assert records == [("r1", NO_ANSWER, None), ("r4", NO_ANSWER, None)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"custom_id": "r1", "respo', "line 1: not valid JSON"),
        (b'{"custom_id": "r1", "result": {"type": "succeeded"}}\n', "line 1: not a Batch API result line"),
    ],
)
def test_result_records_of_a_line_that_is_none_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "results.jsonl"
    path.write_bytes(content)
    with pytest.raises(BatchToolError) as raised:
        list(read_result_file(path))
    assert str(raised.value).startswith(f"{path}, {message}")


def chat_success(custom_id, content, *, refusal=None, finish="stop", usage=True):
    body = {
        "choices": [{"message": {"role": "assistant", "content": content, "refusal": refusal}, "finish_reason": finish}],
        "system_fingerprint": "fp_1",
    }
    if usage:
        body["usage"] = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "prompt_tokens_details": {}}
    return {"id": "batch_req", "custom_id": custom_id, "response": {"status_code": 200, "body": body}, "error": None}


def test_a_file_of_chat_successes_reads_as_columns_with_the_values_of_its_records(tmp_path):
    lines = [
        chat_success("a", "Paris"),
        chat_success("b", None, refusal="I can't help with that.", usage=False),
        chat_success("c", "Très bien 😀 \u2028 \"quoted\"", finish="length"),
        OPENAI_SUCCESS,
    ]
    path = write_jsonl(tmp_path / "output.jsonl", lines)
    with path.open("ab") as fh:
        fh.write(b"\n")  # a blank line is no record, either way
    answers = read_answer_table(path)
    assert answers is not None
    records = [(custom_id, *answer[:3], *answer[4:]) for custom_id, answer, _ in read_result_file(path)]
    assert list(answers.column_names) == list(ANSWER_TABLE_COLUMNS)
    assert [tuple(row.values()) for row in answers.to_pylist()] == records
    assert records[1] == ("b", None, "I can't help with that.", "stop", None, None, None)
    assert records[2][1] == "Très bien 😀 \u2028 \"quoted\""


NOT_ALL_CHAT_SUCCESSES = {
    "an http error": [OPENAI_SUCCESS, OPENAI_HTTP_ERROR],
    "a request that never ran": [OPENAI_NEVER_RAN],
    "a message batch's lines": [MESSAGE_SUCCESS],
    "a number for a custom id": [{**OPENAI_SUCCESS, "custom_id": 7}],
    "content as parts": [chat_success("p", [{"type": "text", "text": "Paris"}])],
    "no choices": [{**OPENAI_SUCCESS, "response": {"status_code": 200, "body": {"choices": []}}}],
    "a legacy completion": [
        {**OPENAI_SUCCESS, "response": {"status_code": 200, "body": {"choices": [{"text": "Paris", "finish_reason": "stop"}]}}}
    ],
    "a responses body": [
        {**OPENAI_SUCCESS, "response": {"status_code": 200, "body": {"output": [], "status": "completed"}}}
    ],
    "an embedding": [
        {**OPENAI_SUCCESS, "response": {"status_code": 200, "body": {"data": [{"embedding": [0.5, 1.0]}]}}}
    ],
}


@pytest.mark.parametrize("lines", NOT_ALL_CHAT_SUCCESSES.values(), ids=NOT_ALL_CHAT_SUCCESSES.keys())
def test_a_file_not_all_chat_successes_is_read_a_line_at_a_time_with_the_same_results(tmp_path, lines):
    path = write_jsonl(tmp_path / "results.jsonl", lines)
    assert read_answer_table(path) is None
    records = list(read_result_file(path))
    results = load_results([path])
    assert list(results.index) == [custom_id for custom_id, _, _ in records]
    expected_status = [failure[0] if failure else "ok" for _, _, failure in records]
    assert list(results["api_status"]) == expected_status


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda text: text[:-20], "line 2: not valid JSON"),
        (lambda text: text.replace(b'"custom_id":"b",', b""), "line 2: not a Batch API result line"),
    ],
    ids=["truncated", "no custom id"],
)
def test_a_broken_file_of_successes_names_its_line_as_before(tmp_path, cut, message):
    path = write_jsonl(tmp_path / "output.jsonl", [OPENAI_SUCCESS, chat_success("b", "Lyon")])
    path.write_bytes(cut(path.read_bytes()))
    assert read_answer_table(path) is None
    with pytest.raises(BatchToolError) as raised:
        load_results([path])
    assert str(raised.value).startswith(f"{path}, {message}")


def test_files_read_as_columns_and_by_lines_keep_the_last_attempt_of_an_id(tmp_path):
    first = write_jsonl(tmp_path / "a1-output.jsonl", [chat_success("a", "first"), chat_success("b", "first b")])
    errors = write_jsonl(tmp_path / "a1-error.jsonl", [{**OPENAI_HTTP_ERROR, "custom_id": "c"}])
    again = write_jsonl(tmp_path / "a2-output.jsonl", [chat_success("c", "second c"), chat_success("a", "second")])
    assert read_answer_table(errors) is None and read_answer_table(again) is not None
    results = load_results([first, errors, again])
    assert list(results.index) == ["b", "c", "a"]
    assert list(results["api_output"]) == ["first b", "second c", "second"]
    assert list(results["api_status"]) == ["ok", "ok", "ok"]
    assert str(results.index.dtype) == str(load_results([errors]).index.dtype)
    assert str(results["api_prompt_tokens"].dtype) == "Int64"
