"""The copied part of the OpenAPI spec holds what the tests validate against, and nothing dangles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SPEC_DIR = Path(__file__).resolve().parent / "spec"
sys.path.insert(0, str(SPEC_DIR))

import extract  # noqa: E402


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
