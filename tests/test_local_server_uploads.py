"""Every upload form the SDK accepts reaches the local backend as the real API would take it."""

from __future__ import annotations

import io
from pathlib import Path

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import chat_lines, finished, jsonl, read_lines

DATA = jsonl(chat_lines(2))


def forms(tmp_path: Path) -> dict[str, object]:
    named = tmp_path / "rows.jsonl"
    named.write_bytes(DATA)
    bare = tmp_path / "rows"
    bare.write_bytes(DATA)
    return {
        "bytes": DATA,
        "bytesio": io.BytesIO(DATA),
        "path-jsonl": named,
        "path-no-extension": bare,
        "open-file": open(named, "rb"),  # noqa: SIM115 - the SDK reads it; closed below
        "tuple-no-extension": ("rows", DATA),
        "tuple-jsonl": ("rows.jsonl", DATA),
        "tuple-bytesio-with-type": ("rows", io.BytesIO(DATA), "application/jsonl"),
        "tuple-none-name": (None, DATA),
    }


FORMS = [
    "bytes",
    "bytesio",
    "path-jsonl",
    "path-no-extension",
    "open-file",
    "tuple-no-extension",
    "tuple-jsonl",
    "tuple-bytesio-with-type",
    "tuple-none-name",
]


@pytest.mark.parametrize("form", FORMS)
def test_upload_form_is_accepted_and_runs_as_a_batch(client, tmp_path, form):
    value = forms(tmp_path)[form]
    try:
        file = client.files.create(file=value, purpose="batch")  # type: ignore[arg-type]
    finally:
        if hasattr(value, "close"):
            value.close()
    assert file.bytes == len(DATA)
    assert client.files.content(file.id).content == DATA
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = finished(client, batch.id)
    assert batch.status == "completed"
    assert sorted(line["custom_id"] for line in read_lines(client, batch.output_file_id)) == ["row-0", "row-1"]


def test_upload_of_raw_bytes_is_named_upload(client):
    assert client.files.create(file=DATA, purpose="batch").filename == "upload"


@pytest.mark.parametrize("name", ["rows.txt", "rows.csv", "rows.jsonl.gz", "dir.jsonl/rows.json"])
def test_upload_with_another_extension_refused(client, name):
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=(name, DATA), purpose="batch")
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == "Invalid file format for Batch API. Must be .jsonl"
