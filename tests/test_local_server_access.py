"""Who gets in: the key, loopback, the upstream's key, and bodies read only after the key was checked."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import tracemalloc
import urllib.parse

import openai
import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import chat_lines, jsonl, read_lines, run_batch, sdk

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.local_server.multipart import parse_multipart
from openai_batch_api.utils.errors import BatchToolError

KEY = "local-test-key-0123456789"
BEYOND_LOOPBACK = (
    "--host 0.0.0.0 listens beyond loopback, where anyone who reaches this machine could use the backend; "
    "set a key with --api-key or OPENAI_BATCH_API_LOCAL_KEY, or listen on 127.0.0.1"
)
PLAIN_HTTP_UPSTREAM = (
    "--upstream http://example.com/v1 is plain HTTP beyond loopback: the key in OPENAI_API_KEY would cross the "
    "network readable by anyone on the way; use https://, or send it anyway with --upstream-key-over-http"
)


@pytest.fixture
def keyed(tmp_path):
    with LocalServer(state_dir=tmp_path / "keyed", api_key=KEY) as server:
        yield server


def raw_exchange(server: LocalServer, head: bytes) -> tuple[bytes, dict]:
    """Send only a request's head (no body at all) and read the answer the server gives to it."""
    url = urllib.parse.urlsplit(server.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head)
        answer = sock.makefile("rb").read()  # the server closes: it will not wait for the body
    status_line, _, rest = answer.partition(b"\r\n")
    return status_line, json.loads(rest.partition(b"\r\n\r\n")[2])


def test_key_lets_its_holder_in(keyed):
    with openai.OpenAI(base_url=keyed.base_url, api_key=KEY, max_retries=0) as client:
        assert run_batch(client, chat_lines(2)).status == "completed"


def test_wrong_key_401(keyed):
    with openai.OpenAI(base_url=keyed.base_url, api_key="sk-wrong-key-abcd", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            client.files.list()
    assert caught.value.body == {
        "message": "Incorrect API key provided: sk-...abcd. This local backend accepts only the key it was "
        "started with (--api-key or OPENAI_BATCH_API_LOCAL_KEY).",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


def test_wrong_key_401_before_the_body_is_read(keyed):
    head = (
        b"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-the-key\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 500000000\r\n\r\n"
    )
    status_line, body = raw_exchange(keyed, head)
    assert status_line == b"HTTP/1.1 401 Unauthorized"
    assert body["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("key", "first_line"), [("not-the-key", b"HTTP/1.1 401 Unauthorized"), (KEY, b"HTTP/1.1 100 Continue")]
)
def test_body_asked_for_with_100_continue_only_with_the_key(keyed, key, first_line):
    url = urllib.parse.urlsplit(keyed.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.makefile("rb").readline().rstrip(b"\r\n") == first_line


def test_missing_key_401_before_the_body_is_read_on_loopback(server):
    head = b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000000\r\n\r\n"
    status_line, body = raw_exchange(server, head)
    assert status_line == b"HTTP/1.1 401 Unauthorized"
    assert body["error"]["message"].startswith("You didn't provide an API key.")


def test_loopback_without_a_key_takes_any_bearer_token(client):
    assert client.files.list().data == []


def test_beyond_loopback_without_a_key_refused(tmp_path):
    with pytest.raises(BatchToolError) as caught:
        LocalServer(state_dir=tmp_path / "state", host="0.0.0.0").start()
    assert str(caught.value) == BEYOND_LOOPBACK


def test_command_line_beyond_loopback_without_a_key_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BATCH_API_LOCAL_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "openai_batch_api.local_server", "--host", "0.0.0.0", "--port", "0"]
        + ["--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"error: {BEYOND_LOOPBACK}\n")


def test_command_line_beyond_loopback_with_a_key_prints_the_bound_address(tmp_path):
    env = {**os.environ, "OPENAI_BATCH_API_LOCAL_KEY": KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "openai_batch_api.local_server", "--host", "0.0.0.0", "--port", "0"]
        + ["--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        warning = process.stderr.readline()
        line = process.stdout.readline()
        port = int(line.split("http://0.0.0.0:")[1].split("/")[0])
        assert line == (
            f"local Batch API backend at http://0.0.0.0:{port}/v1 (state in {tmp_path / 'state'}); set base_url to it\n"
        )
        assert warning == (
            f"warning: listening beyond loopback on 0.0.0.0, port {port}: anyone who can reach this machine "
            "and holds the key can use this backend\n"
        )
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError):
                client.files.list()
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0) as client:
            assert client.files.list().data == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == 0


def test_fifty_parallel_sdk_clients_all_get_in(server):
    # A connection the listen backlog has no room for is dropped and tried again a second later by
    # the kernel; with a shorter connect timeout, such a client fails instead of waiting unnoticed.
    timeout = openai.Timeout(30.0, connect=0.9)
    start = threading.Barrier(50)
    outcomes: list[object] = []

    def call() -> None:
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=timeout) as client:
            start.wait()
            try:
                outcomes.append(client.files.list().object)
            except openai.APIError as exc:
                outcomes.append(repr(exc))

    threads = [threading.Thread(target=call) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [outcome for outcome in outcomes if outcome != "list"] == []
    assert len(outcomes) == 50


# -- the upstream's key ----------------------------------------------------------------------------


def test_upstream_gets_no_key_unless_configured(start_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "upstream-secret")
    with LocalServer(state_dir=tmp_path / "upstream", api_key="upstream-secret") as upstream:
        silent = start_server(state_dir=tmp_path / "silent", upstream=upstream.base_url)
        with sdk(silent) as client:
            batch = run_batch(client, chat_lines(1))
            [error] = read_lines(client, batch.error_file_id)
        assert error["response"]["status_code"] == 401
        assert error["response"]["body"]["error"]["message"].startswith("You didn't provide an API key.")
        told = start_server(state_dir=tmp_path / "told", upstream=upstream.base_url, upstream_key_env="OPENAI_API_KEY")
        with sdk(told) as client:
            assert run_batch(client, chat_lines(1)).request_counts.completed == 1


def test_upstream_key_over_plain_http_beyond_loopback_refused(tmp_path):
    options = ServerOptions(upstream="http://example.com/v1", upstream_key_env="OPENAI_API_KEY")
    with pytest.raises(BatchToolError) as caught:
        LocalServer(state_dir=tmp_path / "state", options=options).start()
    assert str(caught.value) == PLAIN_HTTP_UPSTREAM
    assert not (tmp_path / "state").exists()


def test_command_line_upstream_key_over_plain_http_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "openai_batch_api.local_server", "--port", "0", "--state-dir", str(tmp_path / "s")]
        + ["--upstream", "http://example.com/v1", "--upstream-key-env", "OPENAI_API_KEY"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"error: {PLAIN_HTTP_UPSTREAM}\n")


@pytest.mark.parametrize(
    "values",
    [
        {"upstream": "http://example.com/v1", "upstream_key_env": "OPENAI_API_KEY", "upstream_key_over_http": True},
        {"upstream": "https://example.com/v1", "upstream_key_env": "OPENAI_API_KEY"},
        {"upstream": "http://example.com/v1"},
    ],
    ids=["allowed-by-flag", "https", "no-key"],
)
def test_upstream_key_allowed(tmp_path, values):
    # Nothing is sent before a batch runs: starting and stopping reaches no one.
    with LocalServer(state_dir=tmp_path / "state", options=ServerOptions(**values)) as server:
        assert server.base_url is not None


# -- uploads in bounded memory -----------------------------------------------------------------------


def test_upload_is_streamed_to_disk_in_bounded_memory(server):
    size = 64 * 1024 * 1024
    boundary = b"bounded"
    head_part = (
        b'--bounded\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        b'--bounded\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    )
    tail = b"\r\n--bounded--\r\n"
    url = urllib.parse.urlsplit(server.base_url)
    block = (b"0123456789abcdef" * 4096)[:65536]
    tracemalloc.start()
    try:
        with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
            sock.sendall(
                b"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
                b"Content-Length: " + str(len(head_part) + size + len(tail)).encode() + b"\r\n\r\n" + head_part
            )
            for _ in range(size // len(block)):
                sock.sendall(block)
            sock.sendall(tail)
            answer = sock.makefile("rb").readline()
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer == b"HTTP/1.1 200 OK\r\n"
    with sdk(server) as client:
        [file] = client.files.list().data
    assert file.bytes == size
    assert peak < size / 8, f"{peak} bytes held while uploading {size}"


def test_file_content_is_sent_from_disk_in_bounded_memory(client, server):
    size = 48 * 1024 * 1024
    created = client.files.create(file=("big.bin", b"x" * size), purpose="user_data")
    url = urllib.parse.urlsplit(server.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    received = 0
    tracemalloc.start()
    try:
        connection.request("GET", f"/v1/files/{created.id}/content", headers={"Authorization": "Bearer k"})
        response = connection.getresponse()
        while chunk := response.read(256 * 1024):
            received += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        connection.close()
    assert (response.status, received) == (200, size)
    assert peak < size / 8, f"{peak} bytes held while sending {size}"


def test_upload_content_kept_exactly_around_boundary_like_bytes(client):
    # Bytes that start like the delimiter, placed across the parser's read slices.
    piece = b"\r\n--not-the-boundary\r\n--"
    data = jsonl(chat_lines(3)) + (piece * 40_000)[:700_000]
    created = client.files.create(file=("odd.bin", data), purpose="user_data")
    assert client.files.content(created.id).content == data


class Trickle(io.RawIOBase):
    """A stream that hands out one byte per read, as the slowest client would."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self.data.read(1)


def test_multipart_parsed_a_byte_at_a_time(tmp_path):
    body = (
        b'preamble\r\n--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.jsonl"\r\n\r\n'
        b"line one\r\n--a\r\n-\r\n--b--\r\n"
    )
    form = parse_multipart("multipart/form-data; boundary=b", Trickle(body), file_path=tmp_path / "spool")
    assert form["purpose"].data == b"batch"
    assert (form["file"].filename, form["file"].size) == ("x.jsonl", 16)
    assert (tmp_path / "spool").read_bytes() == b"line one\r\n--a\r\n-"


def test_command_line_api_key_flag_on_loopback(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "openai_batch_api.local_server", "--port", "0", "--api-key", KEY]
        + ["--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().split(" at ")[1].split(" ")[0]
        assert base_url.startswith("http://127.0.0.1:")
        with openai.OpenAI(base_url=base_url, api_key="any-other-key", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError):
                client.files.list()
        with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
            assert client.files.list().data == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        process.stdout.close()
        assert process.stderr.read() == ""  # no warning on loopback
        process.stderr.close()


def test_command_line_empty_api_key_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "openai_batch_api.local_server", "--api-key", "", "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[-1] == "python -m openai_batch_api.local_server: error: --api-key must not be empty"
    )
    assert not (tmp_path / "s").exists()


def test_chunked_upload_is_streamed_too(server):
    data = jsonl(chat_lines(50))
    parts = [
        b'--c\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n',
        b'--c\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n',
        *(data[i : i + 1000] for i in range(0, len(data), 1000)),
        b"\r\n--c--\r\n",
    ]
    url = urllib.parse.urlsplit(server.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        headers = {"Authorization": "Bearer k", "Content-Type": "multipart/form-data; boundary=c"}
        connection.request("POST", "/v1/files", body=iter(parts), headers=headers, encode_chunked=True)
        response = connection.getresponse()
        created = json.loads(response.read())
    finally:
        connection.close()
    assert (response.status, created["bytes"], created["filename"]) == (200, len(data), "in.jsonl")
    with sdk(server) as client:
        assert client.files.content(created["id"]).content == data
