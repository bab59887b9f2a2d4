"""The Files endpoints of the local backend, through the official SDK over HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import chat_lines, jsonl, raw_json, upload


def raw_request(server, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """(status, JSON body) of a hand-made request, for inputs the SDK would never send."""
    url = urllib.parse.urlsplit(server.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"Authorization": "Bearer k", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_files_upload_retrieve_content_delete(client, check_spec):
    data = jsonl(chat_lines(3))
    created = raw_json(client.files.with_raw_response.create, file=("rows.jsonl", data), purpose="batch")
    check_spec("OpenAIFile", created)
    assert created["object"] == "file"
    assert created["purpose"] == "batch"
    assert created["filename"] == "rows.jsonl"
    assert created["bytes"] == len(data)
    assert created["expires_at"] == created["created_at"] + 30 * 24 * 3600
    retrieved = raw_json(client.files.with_raw_response.retrieve, created["id"])
    check_spec("OpenAIFile", retrieved)
    assert retrieved == created
    assert client.files.content(created["id"]).content == data
    deleted = raw_json(client.files.with_raw_response.delete, created["id"])
    check_spec("DeleteFileResponse", deleted)
    assert deleted == {"object": "file", "id": created["id"], "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created["id"])


def test_files_list_filters_by_purpose_newest_first(client, check_spec):
    batch_files = [upload(client, chat_lines(1)).id for _ in range(3)]
    other = client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    page = raw_json(client.files.with_raw_response.list)
    check_spec("ListFilesResponse", page)
    assert [f["id"] for f in page["data"]] == [other.id, *reversed(batch_files)]
    assert "expires_at" not in page["data"][0]  # user_data files never expire
    only_batch = raw_json(client.files.with_raw_response.list, purpose="batch")
    assert [f["id"] for f in only_batch["data"]] == list(reversed(batch_files))
    assert (only_batch["first_id"], only_batch["last_id"]) == (batch_files[-1], batch_files[0])
    ascending = client.files.list(order="asc", purpose="batch")
    assert [f.id for f in ascending.data] == batch_files


def test_files_list_empty_page(client, check_spec):
    page = raw_json(client.files.with_raw_response.list)
    check_spec("ListFilesResponse", page)
    assert page == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_files_list_pagination_over_more_than_100_files(client, check_spec):
    ids = [client.files.create(file=(f"f{i}.txt", b"x"), purpose="user_data").id for i in range(105)]
    first = raw_json(client.files.with_raw_response.list, limit=100)
    check_spec("ListFilesResponse", first)
    assert len(first["data"]) == 100
    assert first["has_more"] is True
    assert [f.id for f in client.files.list(limit=40)] == list(reversed(ids))  # the SDK follows `after`
    # A cursor deleted between pages still works.
    client.files.delete(first["last_id"])
    rest = client.files.list(after=first["last_id"], limit=100)
    assert [f.id for f in rest.data] == list(reversed(ids[:5]))
    assert rest.has_more is False


@pytest.mark.parametrize(
    ("purpose", "name", "data", "message"),
    [
        (
            "batch_output",
            "in.jsonl",
            b"{}\n",
            "'batch_output' is not one of ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'] "
            "- 'purpose'",
        ),
        ("batch", "in.csv", b"{}\n", "Invalid file format for Batch API. Must be .jsonl"),
        ("batch", "in.jsonl", b"", "File is empty."),
        (
            "batch",
            "in.jsonl",
            b'{"custom_id": "caf\xe9"}\n',
            "Invalid file: the file is not UTF-8 encoded (byte 18). Batch files must be UTF-8 JSONL.",
        ),
    ],
    ids=["output-purpose", "not-jsonl", "empty", "not-utf8"],
)
def test_files_upload_refused(client, check_spec, purpose, name, data, message):
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=(name, data), purpose=purpose)  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    check_spec("ErrorResponse", caught.value.response.json())
    assert caught.value.body["message"] == message
    assert caught.value.body["type"] == "invalid_request_error"
    assert client.files.list().data == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.files.retrieve("file-nope"), "No such File object: file-nope"),
        (lambda c: c.files.content("file-nope"), "No such File object: file-nope"),
        (lambda c: c.files.delete("file-nope"), "No such File object: file-nope"),
    ],
    ids=["retrieve", "content", "delete"],
)
def test_files_unknown_id_404(client, call, message):
    with pytest.raises(openai.NotFoundError) as caught:
        call(client)
    assert caught.value.body == {"message": message, "type": "invalid_request_error", "param": "id", "code": None}


def test_files_list_limit_out_of_range(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.list(limit=0)
    assert caught.value.body["message"] == (
        "Invalid 'limit': integer below minimum value or above maximum value (1 to 10000)."
    )


def test_files_without_bearer_token_401(server, check_spec):
    status, body = raw_request(server, "GET", "/v1/files", headers={"Authorization": ""})
    assert status == 401
    check_spec("ErrorResponse", body)
    assert body["error"]["message"].startswith("You didn't provide an API key.")
    assert body["error"]["type"] == "invalid_request_error"


def test_files_basic_auth_401_through_sdk(server):
    headers = {"Authorization": "Basic dGVzdDo="}
    with openai.OpenAI(base_url=server.base_url, api_key="k", default_headers=headers, max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            client.files.list()


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/form-data", b"--x\r\n", "Could not parse multipart form: the Content-Type header has no boundary."),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nno end",
            "Could not parse multipart form: the closing boundary is missing.",
        ),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data\r\n\r\nbatch\r\n--x--\r\n",
            "Could not parse multipart form: a part has no Content-Disposition: form-data with a name.",
        ),
        ("application/json", b"{}", "Invalid Content-Type header: expected multipart/form-data for a file upload."),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--x--\r\n',
            "Missing required parameter: 'file'.",
        ),
    ],
    ids=["no-boundary", "no-closing-boundary", "no-name", "not-multipart", "no-file"],
)
def test_files_malformed_upload_400(server, content_type, body, message):
    status, answer = raw_request(server, "POST", "/v1/files", body, {"Content-Type": content_type})
    assert (status, answer["error"]["message"]) == (400, message)
    # The server is still fine afterwards.
    assert raw_request(server, "GET", "/v1/files")[0] == 200


def test_files_bad_content_length_400(server):
    url = urllib.parse.urlsplit(server.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        answer = sock.makefile("rb").read()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["error"]["message"] == "Invalid Content-Length header."


def test_files_unknown_route_404(server):
    status, body = raw_request(server, "GET", "/v1/nothing-here")
    assert (status, body["error"]["message"]) == (404, "Invalid URL (GET /v1/nothing-here)")
