"""Request lines per endpoint: config keys, templates over columns, examples, every line valid against the spec."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from test_local_server_support import SPEC_PATH

from openai_batch_api.utils.config import Config, validate_config_mapping
from openai_batch_api.utils.costs.pricing import max_output_tokens
from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.requests import config_request_body, write_shards
from openai_batch_api.utils.state.ledger import request_sha256

REQUEST_SCHEMAS = {
    "/v1/chat/completions": "CreateChatCompletionRequest",
    "/v1/responses": "CreateResponse",
    "/v1/embeddings": "CreateEmbeddingRequest",
    "/v1/completions": "CreateCompletionRequest",
    "/v1/moderations": "CreateModerationRequest",
}
PNG = b"\x89PNG\r\n\x1a\n fake image bytes"
EXAMPLES = [{"user": "Great value.", "assistant": "positive"}, {"user": "Broke at once.", "assistant": "negative"}]
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
    "required": ["label"],
    "additionalProperties": False,
}
BASE = {
    "input_file": "input.csv",
    "id_column": "id",
    "content_column": "body",
    "prompt": "Label the review.",
    "model_params": {"model": "gpt-4o-mini"},
    "output_file": "output.csv",
    "data_path": "data",
}
# endpoint -> the config changes that use what it takes: examples, images, its own model parameters.
ENDPOINT_CONFIGS = {
    "/v1/chat/completions": {
        "examples": EXAMPLES,
        "image_url_column": "image",
        "model_params": {
            "model": "gpt-4o-mini",
            "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "label", "schema": ANSWER_SCHEMA}},
        },
    },
    "/v1/responses": {
        "examples": EXAMPLES,
        "image_url_column": "image",
        "image_detail": "high",
        "model_params": {
            "model": "gpt-4o-mini",
            "max_output_tokens": 50,
            "text": {"format": {"type": "json_schema", "name": "label", "schema": ANSWER_SCHEMA, "strict": True}},
        },
    },
    "/v1/embeddings": {
        "prompt": None,
        "model_params": {"model": "text-embedding-3-small", "dimensions": 8, "encoding_format": "base64"},
    },
    "/v1/completions": {"model_params": {"model": "gpt-3.5-turbo-instruct", "max_tokens": 20}},
    "/v1/moderations": {
        "prompt": None,
        "image_url_column": "image",
        "model_params": {"model": "omni-moderation-latest"},
    },
}


def make_config(**changes) -> Config:
    raw = {**BASE, **changes}
    raw = {key: value for key, value in raw.items() if value is not None}
    return validate_config_mapping(raw, path=Path("config.yaml").resolve())


def config_error(**changes) -> str:
    with pytest.raises(BatchToolError) as caught:
        make_config(**changes)
    return str(caught.value)


def write_input(text: str) -> None:
    Path("input.csv").write_text(text, encoding="utf-8")


def read_lines(plan) -> list[dict]:
    return [orjson.loads(line) for shard in plan.shards for line in shard.path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def request_validators() -> dict[str, Draft202012Validator]:
    # The spec's oneOf alternatives overlap (a user message with content parts is both an
    # EasyInputMessage and an input Item), so a valid body matches "more than one"; the API reads them
    # as alternatives, so they are checked as anyOf.
    text = SPEC_PATH.read_text(encoding="utf-8").replace('"oneOf":', '"anyOf":')
    spec = json.loads(text)
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(spec, DRAFT202012))
    return {
        endpoint: Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)
        for endpoint, name in REQUEST_SCHEMAS.items()
    }


# -- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"endpoint": "/v1/embedding"},
            "'endpoint' must be one of /v1/chat/completions, /v1/responses, /v1/embeddings, /v1/completions, "
            "/v1/moderations, got '/v1/embedding' (did you mean '/v1/embeddings'?)",
        ),
        (
            {"endpoint": "/v1/embeddings", "model_params": {"model": "text-embedding-3-small"}},
            "'prompt' is not sent to /v1/embeddings, which has no system message: remove it",
        ),
        (
            {"endpoint": "/v1/moderations", "model_params": {"model": "omni-moderation-latest"}},
            "'prompt' is not sent to /v1/moderations, which has no system message: remove it",
        ),
        ({"endpoint": "/v1/responses", "prompt": None}, "missing key 'prompt'"),
        ({"content_template": "{title}"}, "'content_column' and 'content_template' both given: keep one"),
        ({"content_column": None}, "missing key 'content_column' (or 'content_template')"),
        (
            {"content_column": None, "content_template": "Title: {title} {"},
            "'content_template' has a lone '{' at character 16; write '{{' for a literal brace",
        ),
        (
            {"content_column": None, "content_template": "{title} and }"},
            "'content_template' has a lone '}' at character 13; write '}}' for a literal brace",
        ),
        (
            {"content_column": None, "content_template": "Title: {}"},
            "'content_template' has an empty placeholder '{}' at character 8; name a column",
        ),
        ({"examples": [{"user": "a"}]}, "'examples' item 1 must be a mapping with exactly the keys 'user' and 'assistant'"),
        ({"examples": []}, "'examples' must be a list of {user: ..., assistant: ...} pairs"),
        (
            {"examples": [{"user": "a", "assistant": 3}]},
            "'examples' item 1 must give non-empty text for 'user' and 'assistant'",
        ),
        (
            {"endpoint": "/v1/completions", "examples": EXAMPLES},
            "'examples' are not sent to /v1/completions; they are for /v1/chat/completions and /v1/responses: "
            "remove them",
        ),
        (
            {"endpoint": "/v1/embeddings", "prompt": None, "image_url_column": "image",
             "model_params": {"model": "text-embedding-3-small"}},
            "'image_url_column' is not sent to /v1/embeddings, which takes text only: remove it",
        ),
        (
            {"endpoint": "/v1/responses", "model_params": {"model": "gpt-4o-mini", "input": "x"}},
            "'model_params' must not hold `input`: for /v1/responses it is built from the prompt and the content",
        ),
    ],
)
def test_config_endpoint_keys_errors(changes, message):
    assert config_error(**changes) == f"{Path('config.yaml').resolve()}: {message}"


def test_config_endpoint_problems_listed_together():
    message = config_error(endpoint="/v1/embeddings", content_template="{a}", examples=EXAMPLES)
    assert message == (
        f"{Path('config.yaml').resolve()}: 3 problems: "
        "'content_column' and 'content_template' both given: keep one; "
        "'prompt' is not sent to /v1/embeddings, which has no system message: remove it; "
        "'examples' are not sent to /v1/embeddings; they are for /v1/chat/completions and /v1/responses: remove them"
    )


def test_config_defaults_keep_existing_configs_unchanged():
    config = make_config()
    assert (config.endpoint, config.content_template, config.examples) == ("/v1/chat/completions", None, [])
    path = Path("config.yaml").resolve()
    left_empty = validate_config_mapping({**BASE, "endpoint": None, "examples": None}, path=path)
    assert (left_empty.endpoint, left_empty.examples) == ("/v1/chat/completions", [])
    with pytest.raises(BatchToolError, match="missing key 'prompt'"):
        validate_config_mapping({**{k: v for k, v in BASE.items() if k != "prompt"}, "endpoint": None}, path=path)


def test_request_hash_covers_endpoint_template_and_examples_and_not_defaults():
    base = make_config()
    # The hash of a config without the new keys is what it was before they existed.
    old_shape = {
        "prompt": "Label the review.",
        "model_params": {"model": "gpt-4o-mini"},
        "id_column": "id",
        "content_column": "body",
        "image_url_column": None,
        "image_detail": "low",
        "batch_size": 50000,
    }
    import hashlib

    old = hashlib.sha256(json.dumps(old_shape, sort_keys=True, default=str).encode()).hexdigest()
    assert request_sha256(base) == old
    assert request_sha256(make_config(endpoint="/v1/chat/completions")) == old
    others = [
        make_config(endpoint="/v1/responses"),
        make_config(examples=EXAMPLES),
        make_config(content_column=None, content_template="{body}"),
    ]
    assert len({old, *(request_sha256(c) for c in others)}) == 4


def test_output_token_bound_per_endpoint():
    assert max_output_tokens({"model": "m"}, endpoint="/v1/embeddings") == 0
    assert max_output_tokens({"model": "m"}, endpoint="/v1/moderations") == 0
    assert max_output_tokens({"model": "m"}, endpoint="/v1/completions") == 16
    assert max_output_tokens({"model": "m", "max_tokens": 5}, endpoint="/v1/completions") == 5
    assert max_output_tokens({"model": "m", "max_output_tokens": 7}, endpoint="/v1/responses") == 7
    assert max_output_tokens({"model": "m"}, endpoint="/v1/chat/completions") is None


def spec_problems(validators, endpoint: str, body: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validators[endpoint].iter_errors(body)]


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("/v1/responses", {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": {"url": "u"}}]}]}),
        ("/v1/embeddings", {"model": "m", "input": "x", "messages": []}),
        ("/v1/moderations", {"input": [{"type": "image_url", "image_url": "u"}]}),
        ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user"}]}),
        ("/v1/completions", {"model": "m"}),
    ],
)
def test_spec_check_rejects_malformed_requests(endpoint, body, request_validators):
    assert spec_problems(request_validators, endpoint, body)


# -- request lines -----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", list(ENDPOINT_CONFIGS))
def test_request_lines_match_the_spec_for_every_endpoint(endpoint, request_validators):
    Path("pic.png").write_bytes(PNG)
    changes = ENDPOINT_CONFIGS[endpoint]
    config = make_config(endpoint=endpoint, **changes)
    third = "" if config.image_url_column else "third"  # an image alone, where images are sent
    write_input(
        "id,body,image\n"
        "1,plain text ünïcode,\n"
        '2,"quotes "" and\nnewline",https://example.com/a.png\n'
        f"3,{third},pic.png\n"
        "4,a local image too,pic.png\n"
    )
    plan = write_shards(config, out_dir=Path("data/tasks/attempt-1").resolve())
    lines = read_lines(plan)
    assert len(lines) == 4
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    images = [None, "https://example.com/a.png", data_url, data_url] if config.image_url_column else [None] * 4
    contents = ["plain text ünïcode", 'quotes " and\nnewline', third, "a local image too"]
    for line, content, image in zip(lines, contents, images, strict=True):
        assert line["url"] == endpoint and line["method"] == "POST"
        assert line["body"] == config_request_body(config, content=content, image_url=image)
        problems = spec_problems(request_validators, endpoint, line["body"])
        assert not problems, f"line {line['custom_id']} does not match {REQUEST_SCHEMAS[endpoint]}: {problems}"


# -- content_template --------------------------------------------------------------------------


def test_template_renders_columns_with_literal_braces_and_counts_missing_cells():
    write_input('id,title,body\n1,Kettle,"Boils fast, {really}."\n2,,No title here\n3,Lid,\n4,,only braces {}\n')
    config = make_config(content_column=None, content_template="Title: {title}\n{{{body}}}")
    plan = write_shards(config, out_dir=Path("data/tasks/attempt-1").resolve())
    texts = [line["body"]["messages"][1]["content"] for line in read_lines(plan)]
    assert texts == [
        "Title: Kettle\n{Boils fast, {really}.}",
        "Title: \n{No title here}",
        "Title: Lid\n{}",
        "Title: \n{only braces {}}",
    ]
    assert plan.missing_cells == {"title": 2, "body": 1}


def test_template_placeholder_naming_no_column_is_an_error_before_anything_is_written():
    write_input("id,title,body\n1,a,b\n")
    config = make_config(content_column=None, content_template="{titel}: {body} {Body} {summary}")
    out_dir = Path("data/tasks/attempt-1").resolve()
    with pytest.raises(BatchToolError) as caught:
        write_shards(config, out_dir=out_dir)
    assert str(caught.value) == (
        f"{Path('input.csv').resolve()}: no column 'titel' (a placeholder of content_template in the config, "
        "did you mean 'title'?); no column 'Body' (a placeholder of content_template in the config, did you mean "
        "'body'?); no column 'summary' (a placeholder of content_template in the config); the file has columns "
        "'id', 'title', 'body': fix the config or rename the column"
    )
    assert not out_dir.exists() and list(out_dir.parent.iterdir()) == []


def test_template_over_typed_cells_renders_numbers_and_refuses_other_values():
    import pandas as pd

    pd.DataFrame({"id": ["1", "2", "3"], "year": [2020, 2021, 2022], "tags": [None, float("nan"), ["x"]]}).to_pickle(
        "input.pkl"
    )
    config = make_config(input_file="input.pkl", content_column=None, content_template="{year} {tags}")
    with pytest.raises(BatchToolError) as caught:
        write_shards(config, out_dir=Path("data/tasks/attempt-1").resolve())
    assert str(caught.value) == (
        f"{Path('input.pkl').resolve()}: row 3 (id '3'): column 'tags' holds ['x'], a list, not text"
    )


def test_template_row_rendering_to_nothing_has_no_content():
    write_input("id,title,body\n1,a,b\n2,,\n")
    config = make_config(content_column=None, content_template="{title}{body}")
    with pytest.raises(BatchToolError) as caught:
        write_shards(config, out_dir=Path("data/tasks/attempt-1").resolve())
    assert str(caught.value) == f"{Path('input.csv').resolve()}: row 2 (id '2') has neither content nor image"
