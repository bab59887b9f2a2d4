"""Any provider's result file read as neutral result records: (row id, answer, failure), nothing of its line format."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.providers.base import NO_ANSWER
from openai_batch_api.utils.providers.result_lines import read_result_file


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
