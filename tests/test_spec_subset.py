"""The copied part of the OpenAPI spec holds what the tests validate against, and nothing dangles."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from test_local_server_support import *  # noqa: F403 - the shared fixtures

SPEC_DIR = Path(__file__).resolve().parents[1] / "spec"
# The extraction script, loaded from its file: spec/ is not a package.
_loader = importlib.util.spec_from_file_location("openapi_extract", SPEC_DIR / "extract.py")
extract = importlib.util.module_from_spec(_loader)
_loader.loader.exec_module(extract)


def test_spec_subset_holds_every_batch_endpoint_schema_and_resolves_every_ref():
    subset = json.loads((SPEC_DIR / "openapi_subset.json").read_text(encoding="utf-8"))
    schemas = subset["components"]["schemas"]
    assert set(extract.SCHEMAS) <= set(schemas)
    assert set(extract.PATHS) == set(subset["paths"])
    for ref in extract.refs(subset):
        _, _, kind, name = ref.split("/", 3)
        assert name in subset["components"][kind], ref


def test_spec_subset_extraction_keeps_only_what_is_referenced():
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "t"},
        "paths": {path: {"get": {"$ref": "#/components/schemas/Used"}} for path in extract.PATHS},
        "components": {
            "schemas": {
                **{name: {"type": "object"} for name in extract.SCHEMAS},
                "Batch": {"properties": {"errors": {"$ref": "#/components/schemas/Nested"}}},
                "Used": {"type": "string"},
                "Nested": {"type": "string"},
                "Unused": {"type": "string"},
            }
        },
    }
    schemas = extract.extract(spec)["components"]["schemas"]
    assert {"Used", "Nested"} <= set(schemas)
    assert "Unused" not in schemas


def test_check_spec_validates_a_batch_endpoint_request_schema(check_spec):
    check_spec("CreateEmbeddingRequest", {"model": "text-embedding-3-small", "input": "hello"})
    with pytest.raises(AssertionError, match="'input' is a required property"):
        check_spec("CreateEmbeddingRequest", {"model": "text-embedding-3-small"})


def test_request_fields_table_is_the_one_the_spec_subset_makes():
    # The package ships the table (spec/ is not installed); it must say what the subset says.
    from openai_batch_api.utils.request_fields import REQUEST_FIELDS

    subset = json.loads((SPEC_DIR / "openapi_subset.json").read_text(encoding="utf-8"))
    assert REQUEST_FIELDS == extract.request_fields(subset)
    assert REQUEST_FIELDS["/v1/chat/completions"]["max_tokens"] == ("integer", "null")
    assert REQUEST_FIELDS["/v1/moderations"] == {"input": ("string", "array"), "model": ("string",)}


def test_request_fields_follow_refs_and_compositions():
    spec = {
        "components": {
            "schemas": {
                "Base": {"properties": {"model": {"type": "string"}}},
                "Flag": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
                "Request": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Base"},
                        {
                            "properties": {
                                "flag": {"$ref": "#/components/schemas/Flag"},
                                "mode": {"enum": ["a", "b"]},
                                "anything": {"description": "no type"},
                            }
                        },
                    ]
                },
            }
        }
    }
    assert extract.body_fields(spec, spec["components"]["schemas"]["Request"]) == {
        "model": {"string"},
        "flag": {"boolean", "null"},
        "mode": {"string"},
        "anything": None,
    }
