"""python -m openai_batch_api.local_server: serve the local Batch API backend until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ..utils.errors import BatchToolError, ExitStatus
from .access import KEY_ENV
from .options import HTTP_ERROR_KINDS, ServerOptions, option_problem
from .server import LocalServer

DESCRIPTION = (
    "Serve the OpenAI Files and Batches API, and Anthropic's Message Batches API, locally (on loopback no key is "
    "needed): batches are answered by a "
    "deterministic built-in responder or by an upstream OpenAI-compatible server, and state is kept on "
    "disk so batches survive a restart. Point the SDK or the config's base_url at the printed URL."
)

# option name -> (type, help); each becomes --option-name.
OPTION_FLAGS: dict[str, tuple[Any, str]] = {
    "upstream": (
        str,
        "base URL of an OpenAI-compatible server (e.g. http://127.0.0.1:11434/v1) that answers "
        "the request lines instead of the built-in responder",
    ),
    "upstream_key_env": (
        str,
        "environment variable holding the key sent to the upstream, e.g. OPENAI_API_KEY (default: no key is sent)",
    ),
    "upstream_key_over_http": (
        bool,
        "send that key even to a plain http:// upstream beyond loopback, where anyone on the way can read it",
    ),
    "upstream_concurrency": (int, "requests sent to the upstream at once (default 8)"),
    "line_latency": (float, "seconds spent on each request line (default 0)"),
    "api_latency": (float, "seconds each files/batches API call waits before it is handled (default 0)"),
    "line_failure_rate": (float, "probability that a request line fails (default 0)"),
    "line_failure_pattern": (str, "regex on custom_id: matching request lines fail"),
    "line_failure_status": (int, "HTTP status of failing request lines, 400-599 (default 500)"),
    "http_error_rate": (float, "probability that a files/batches API call gets a transient fault (default 0)"),
    "http_error_kinds": (
        str,
        f"comma-separated faults to choose from: {', '.join(HTTP_ERROR_KINDS)} "
        "(default 429,500,drop; drop_after handles the call, then drops the connection)",
    ),
    "http_error_paths": (str, 'regex on "METHOD /path" limiting which calls get faults, e.g. "POST /v1/batches$"'),
    "retry_after": (float, "seconds in the Retry-After header of injected 429s (default 1)"),
    "completion_window": (float, "seconds until a batch expires (default 86400, the API's 24h)"),
    "enqueued_token_limit": (
        int,
        "most prompt tokens enqueued per model; a batch over it fails with token_limit_exceeded (default: no limit)",
    ),
    "seed": (int, "makes random faults and the completion order reproducible"),
    "max_requests_per_file": (
        int,
        "most request lines in one batch input file, to imitate another provider (default 50000; Azure: 100000)",
    ),
    "max_file_bytes": (int, "most bytes in one batch input file (default 200 MB, 209715200)"),
    "max_requests_per_message_batch": (int, "most requests in one Anthropic message batch (default 100000)"),
    "max_message_batch_bytes": (int, "most bytes in one Anthropic message batch (default 256 MB, 268435456)"),
    "empty_error_file": (
        bool,
        "give every completed batch an error file, empty when no line failed, as Azure OpenAI does",
    ),
    "no_files_listing": (bool, "answer GET /v1/files with 405, like servers that cannot list files"),
    "no_batches_listing": (bool, "answer GET /v1/batches with 405, like servers that cannot list batches"),
    "no_batch_metadata": (bool, "keep no batch metadata (always null), like servers that drop it"),
    "clock_offset": (
        float,
        "seconds added to the times the backend reports (created_at, Date), e.g. -600: a server clock 10 "
        "minutes behind the client's (default 0)",
    ),
}

METAVARS = {
    "clock_offset": "SECONDS",
    "upstream": "URL",
    "upstream_key_env": "NAME",
    "upstream_concurrency": "N",
    "line_latency": "SECONDS",
    "api_latency": "SECONDS",
    "line_failure_rate": "P",
    "line_failure_pattern": "REGEX",
    "line_failure_status": "STATUS",
    "http_error_rate": "P",
    "http_error_kinds": "KINDS",
    "http_error_paths": "REGEX",
    "retry_after": "SECONDS",
    "completion_window": "SECONDS",
    "enqueued_token_limit": "TOKENS",
    "seed": "N",
    "max_requests_per_file": "N",
    "max_file_bytes": "BYTES",
    "max_requests_per_message_batch": "N",
    "max_message_batch_bytes": "BYTES",
}


def port_number(text: str) -> int:
    """The --port flag: 0 (a free port) to 65535; anything else is a usage error, not a traceback."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m openai_batch_api.local_server", description=DESCRIPTION)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, loopback only); any other address needs a key",
    )
    parser.add_argument(
        "--port", type=port_number, default=8089, help="port to listen on; 0 picks a free one (default 8089)"
    )
    parser.add_argument(
        "--state-dir",
        required=True,
        metavar="DIR",
        help="folder for files, batches and progress: a new or empty folder, or one the backend used before",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"answer only requests bearing this key (default: ${KEY_ENV}; without either, any key on loopback)",
    )
    for name, (kind, help_text) in OPTION_FLAGS.items():
        if kind is bool:  # a switch: present means true
            flag = f"--{name.replace('_', '-')}"
            parser.add_argument(flag, dest=name, action="store_const", const=True, help=help_text)
            continue
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, type=kind, default=None, metavar=METAVARS[name], help=help_text
        )
    return parser


def options_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ServerOptions:
    values: dict[str, Any] = {}
    for name in OPTION_FLAGS:
        value = getattr(args, name)
        if value is None:
            continue
        problem = option_problem(name, value)
        if problem:
            parser.error(f"--{name.replace('_', '-')} {problem}")
        values[name] = value
    return ServerOptions(**values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    options = options_from_args(parser, args)
    if args.api_key is not None and not args.api_key.strip():
        parser.error("--api-key must not be empty")
    api_key = args.api_key or os.environ.get(KEY_ENV) or None
    stop = threading.Event()
    # Set explicitly, and before the URL is printed: a process started in the background may inherit
    # an ignored SIGINT. SIGTERM (a service manager, `kill`) stops as gracefully as Ctrl-C.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = LocalServer(state_dir=args.state_dir, options=options, host=args.host, port=args.port, api_key=api_key)
    try:
        base_url = server.start()
    except BatchToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitStatus.ERROR
    if server.beyond_loopback:
        print(
            f"warning: listening beyond loopback on {args.host}, port {server.port}: anyone who can reach this "
            "machine and holds the key can use this backend",
            file=sys.stderr,
            flush=True,
        )
    print(f"local Batch API backend at {base_url} (state in {args.state_dir}); set base_url to it", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())
