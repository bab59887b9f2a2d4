"""Shared pieces of the local backend's tests: servers, SDK clients, input lines, spec checks.

The other test_local_server_* modules import from here. Everything goes through the official SDK
over real HTTP on loopback; nothing in the SDK is patched.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from openai_batch_api.local_server import LocalServer, ServerOptions

# The fixtures other modules take with `from test_local_server_support import *`.
__all__ = ["check_spec", "client", "server", "spec_validators", "start_server", "warm_tokenizer"]

# The parts of the official spec the tests use, extracted by spec/extract.py.
SPEC_PATH = Path(__file__).resolve().parents[1] / "spec/openapi_subset.json"
CHAT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
# Batch fields the API always fills; every other Batch field may be null (see the reference README).
BATCH_NEVER_NULL = ("id", "object", "endpoint", "input_file_id", "completion_window", "status", "created_at")


# -- servers and clients -----------------------------------------------------------------------


@pytest.fixture
def start_server(tmp_path) -> Iterator[Callable[..., LocalServer]]:
    """start_server(**option_values, state_dir=...) -> a started LocalServer, stopped after the test."""
    servers: list[LocalServer] = []

    def start(state_dir: Path | None = None, **values: Any) -> LocalServer:
        server = LocalServer(state_dir=state_dir or tmp_path / "state", options=ServerOptions(**values))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def warm_tokenizer() -> None:
    """Load the tokenizer the in-process server counts with, for tests whose timing its first load
    (most of a second) would upset, such as a batch that must expire mid-way."""
    from openai_batch_api.utils.costs.tokens import count_text_tokens

    count_text_tokens("warm up", MODEL)


@pytest.fixture
def server(start_server) -> LocalServer:
    return start_server(seed=7)


def sdk(server: LocalServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)


@pytest.fixture
def client(server) -> Iterator[openai.OpenAI]:
    with sdk(server) as client:
        yield client


# -- input lines and batches -------------------------------------------------------------------


def chat_line(custom_id: str, text: str, *, model: str = MODEL, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": model, "messages": [{"role": "user", "content": text}], **body},
    }


def chat_lines(count: int, **body: Any) -> list[dict[str, Any]]:
    return [chat_line(f"row-{i}", f"text of row {i}", **body) for i in range(count)]


def jsonl(lines: list[Any]) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def upload(client: openai.OpenAI, lines: list[Any] | bytes, name: str = "input.jsonl", purpose: str = "batch"):
    data = lines if isinstance(lines, bytes) else jsonl(lines)
    return client.files.create(file=(name, data), purpose=purpose)  # type: ignore[arg-type]


def create_batch(client: openai.OpenAI, lines: list[Any] | bytes, *, endpoint: str = CHAT, **kwargs: Any):
    file = upload(client, lines)
    return client.batches.create(
        input_file_id=file.id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        **kwargs,
    )


def wait_for(client: openai.OpenAI, batch_id: str, statuses: tuple[str, ...], timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout}s")
        time.sleep(0.02)


def finished(client: openai.OpenAI, batch_id: str, timeout: float = 20.0):
    return wait_for(client, batch_id, ("completed", "failed", "expired", "cancelled"), timeout)


def run_batch(client: openai.OpenAI, lines: list[Any] | bytes, **kwargs: Any):
    return finished(client, create_batch(client, lines, **kwargs).id)


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def raw_json(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The JSON body exactly as the server sent it, for a `client.<resource>.with_raw_response.<method>`."""
    return json.loads(call(*args, **kwargs).text)


# -- the OpenAPI spec --------------------------------------------------------------------------


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


@pytest.fixture(scope="session")
def spec_validators() -> dict[str, Draft202012Validator]:
    """Validators for the spec's Files and Batches schemas, with the nulls the real API sends allowed."""
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    relaxed = copy.deepcopy(spec)
    batch = relaxed["components"]["schemas"]["Batch"]
    for name, prop in batch["properties"].items():
        if name not in BATCH_NEVER_NULL:
            batch["properties"][name] = _nullable(prop)
    # The API sends the deprecated status_details as null (the SDK's FileObject expects the key).
    file_props = relaxed["components"]["schemas"]["OpenAIFile"]["properties"]
    file_props["status_details"] = _nullable(file_props["status_details"])
    # The API sends null first_id/last_id on an empty page.
    for page in ("ListFilesResponse", "ListBatchesResponse"):
        for name in ("first_id", "last_id"):
            props = relaxed["components"]["schemas"][page]["properties"]
            props[name] = _nullable(props[name])
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(relaxed, DRAFT202012))

    class Validators(dict):
        """A validator for any schema of the subset (e.g. CreateEmbeddingRequest), made on first use."""

        def __missing__(self, name: str) -> Draft202012Validator:
            assert name in schemas, f"{name} is not in {SPEC_PATH.name}: add it in spec/extract.py"
            self[name] = Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)
            return self[name]

    return Validators()


@pytest.fixture
def check_spec(spec_validators) -> Callable[[str, Any], None]:
    """check_spec("Batch", body): fail with every schema violation of the body."""

    def check(name: str, body: Any) -> None:
        problems = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in spec_validators[name].iter_errors(body)
        ]
        assert not problems, f"{name} does not match the spec: {problems}"

    return check


def test_spec_check_rejects_a_batch_without_status(check_spec):
    body = {
        "id": "batch_1",
        "object": "batch",
        "endpoint": CHAT,
        "input_file_id": "f",
        "completion_window": "24h",
        "created_at": 1,
    }
    with pytest.raises(AssertionError, match="'status' is a required property"):
        check_spec("Batch", body)


def test_spec_check_accepts_null_batch_timestamps(check_spec):
    body = {
        "id": "batch_1",
        "object": "batch",
        "endpoint": CHAT,
        "input_file_id": "f",
        "completion_window": "24h",
        "created_at": 1,
        "status": "validating",
        "completed_at": None,
        "errors": None,
        "output_file_id": None,
    }
    check_spec("Batch", body)
