"""Startup options: the config mapping, the command line, and binding to loopback."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import urllib.parse

import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.local_server.__main__ import OPTION_FLAGS, build_parser, options_from_args
from openai_batch_api.utils.errors import BatchToolError


def test_options_from_mapping():
    options = ServerOptions.from_mapping(
        {"line_latency": 0.5, "http_error_kinds": ["429", "drop_after"], "seed": 1, "enqueued_token_limit": 1000}
    )
    assert options.http_error_kinds == ("429", "drop_after")
    assert (options.line_latency, options.seed, options.enqueued_token_limit) == (0.5, 1, 1000)
    assert ServerOptions.from_mapping(None) == ServerOptions()
    assert ServerOptions.from_mapping({"http_error_kinds": "500, 503"}).http_error_kinds == ("500", "503")


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"line_latncy": 1}, "local_backend: unknown key `line_latncy`; did you mean `line_latency`?"),
        (
            {"colour": 1},
            "local_backend: unknown key `colour`; known keys: "
            + ", ".join(f.name for f in dataclasses.fields(ServerOptions)),
        ),
        (
            {"line_failure_rate": "often"},
            "local_backend.line_failure_rate must be a probability from 0 to 1, not 'often'; fix it in the config",
        ),
        (
            {"line_failure_status": 200},
            "local_backend.line_failure_status must be an HTTP error status from 400 to 599, not 200; "
            "fix it in the config",
        ),
        (
            {"http_error_kinds": ["429", "timeout"]},
            "local_backend.http_error_kinds has unknown kind 'timeout'; choose among 429, 500, 503, drop, drop_after; "
            "fix it in the config",
        ),
        (
            {"line_failure_pattern": "("},
            "local_backend.line_failure_pattern is not a valid regular expression "
            "(missing ), unterminated subpattern at position 0); fix it in the config",
        ),
        (
            {"enqueued_token_limit": True},
            "local_backend.enqueued_token_limit must be a whole number of tokens > 0 or null, not True; "
            "fix it in the config",
        ),
        (
            {"completion_window": 0},
            "local_backend.completion_window must be a number of seconds > 0 and at most 2592000 (30 days), not 0; "
            "fix it in the config",
        ),
        (
            {"completion_window": float("inf")},
            "local_backend.completion_window must be a number of seconds > 0 and at most 2592000 (30 days), not inf; "
            "fix it in the config",
        ),
        (
            {"line_latency": float("nan")},
            "local_backend.line_latency must be a number of seconds from 0 to 86400, not nan; fix it in the config",
        ),
        (
            {"api_latency": 1e300},
            "local_backend.api_latency must be a number of seconds from 0 to 86400, not 1e+300; fix it in the config",
        ),
        (
            {"retry_after": float("-inf")},
            "local_backend.retry_after must be a number of seconds from 0 to 86400, not -inf; fix it in the config",
        ),
        (
            {"upstream": "localhost:11434"},
            "local_backend.upstream must be an http:// or https:// base URL or null, not 'localhost:11434'; "
            "fix it in the config",
        ),
        (
            {"max_requests_per_file": 0},
            "local_backend.max_requests_per_file must be a whole number >= 1, not 0; fix it in the config",
        ),
        (
            {"upstream_concurrency": 10**12},
            "local_backend.upstream_concurrency must be a whole number from 1 to 256, not 1000000000000; "
            "fix it in the config",
        ),
        (
            {"max_file_bytes": "200MB"},
            "local_backend.max_file_bytes must be a whole number >= 1, not '200MB'; fix it in the config",
        ),
        (
            {"clock_offset": float("nan")},
            "local_backend.clock_offset must be a number of seconds from -2592000 to 2592000, not nan; "
            "fix it in the config",
        ),
    ],
    ids=[
        "typo", "unknown", "rate", "status", "kind", "regex", "bool-limit", "window", "window-inf",
        "latency-nan", "api-latency-huge", "retry-after-inf", "upstream", "requests", "upstream-threads", "bytes",
        "clock-nan",
    ],
)
def test_options_from_mapping_errors(mapping, message):
    with pytest.raises(BatchToolError) as caught:
        ServerOptions.from_mapping(mapping)
    assert str(caught.value) == message


def test_options_direct_construction_checked():
    with pytest.raises(BatchToolError) as caught:
        ServerOptions(line_latency=-1)
    assert str(caught.value) == "ServerOptions.line_latency must be a number of seconds from 0 to 86400, not -1"


def test_cli_help_describes_every_option():
    text = build_parser().format_help()
    for field in dataclasses.fields(ServerOptions):
        assert f"--{field.name.replace('_', '-')}" in text
        assert OPTION_FLAGS[field.name][1].split()[0] in text
    for flag in ("--host", "--port", "--state-dir"):
        assert flag in text


def test_cli_serves_until_interrupted(tmp_path):
    state = tmp_path / "state"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openai_batch_api.local_server",
            "--port",
            "0",
            "--state-dir",
            str(state),
            "--seed",
            "1",
            "--http-error-kinds",
            "429,500",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    os.kill(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=15)
    assert line.startswith("local Batch API backend at http://127.0.0.1:")
    assert line.endswith(f"/v1 (state in {state}); set base_url to it\n")
    assert (process.returncode, out, err) == (0, "", "")


def test_cli_rejects_a_bad_value():
    result = subprocess.run(
        [sys.executable, "-m", "openai_batch_api.local_server", "--state-dir", "s", "--http-error-kinds", "404"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "python -m openai_batch_api.local_server: error: --http-error-kinds has unknown kind '404'; "
        "choose among 429, 500, 503, drop, drop_after"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--port", "99999"], "argument --port: must be a port number from 0 to 65535, got '99999'"),
        (["--port", "-1"], "argument --port: must be a port number from 0 to 65535, got '-1'"),
        (["--port", "http"], "argument --port: must be a port number from 0 to 65535, got 'http'"),
        (["--line-latency", "nan"], "--line-latency must be a number of seconds from 0 to 86400, not nan"),
        (["--api-latency", "1e400"], "--api-latency must be a number of seconds from 0 to 86400, not inf"),
        (
            ["--completion-window", "inf"],
            "--completion-window must be a number of seconds > 0 and at most 2592000 (30 days), not inf",
        ),
    ],
    ids=["port-high", "port-negative", "port-text", "latency-nan", "latency-huge", "window-inf"],
)
def test_cli_usage_errors(tmp_path, arguments, message):
    result = subprocess.run(
        [sys.executable, "-m", "openai_batch_api.local_server", "--state-dir", str(tmp_path / "s"), *arguments],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m openai_batch_api.local_server ")
    assert result.stderr.splitlines()[-1] == f"python -m openai_batch_api.local_server: error: {message}"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()


def test_cli_port_in_use(tmp_path):
    with LocalServer(state_dir=tmp_path / "a") as first:
        result = subprocess.run(
            [sys.executable, "-m", "openai_batch_api.local_server", "--state-dir", str(tmp_path / "b"),
             "--port", str(first.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: cannot listen on 127.0.0.1:{first.port} (Address already in use); choose another --port\n"
    )


def test_server_binds_loopback_by_default(tmp_path):
    with LocalServer(state_dir=tmp_path / "state") as server:
        url = urllib.parse.urlsplit(server.base_url)
        assert (url.hostname, url.path) == ("127.0.0.1", "/v1")
        assert server.host == "127.0.0.1"
    assert build_parser().parse_args(["--state-dir", "s"]).host == "127.0.0.1"


def test_server_port_in_use(tmp_path):
    with LocalServer(state_dir=tmp_path / "a") as first:
        with pytest.raises(BatchToolError) as caught:
            LocalServer(state_dir=tmp_path / "b", port=first.port).start()
    assert str(caught.value) == (
        f"cannot listen on 127.0.0.1:{first.port} (Address already in use); choose another --port"
    )
    # The failed start left its state dir free.
    with LocalServer(state_dir=tmp_path / "b"):
        pass


def test_cli_provider_limit_flags():
    parser = build_parser()
    args = parser.parse_args(
        ["--state-dir", "s", "--max-requests-per-file", "100000", "--max-file-bytes", "1000", "--empty-error-file"]
    )
    options = options_from_args(parser, args)
    assert (options.max_requests_per_file, options.max_file_bytes, options.empty_error_file) == (100_000, 1000, True)
    assert options_from_args(parser, parser.parse_args(["--state-dir", "s"])).empty_error_file is False
