"""Extract the parts of the official OpenAPI spec the tests use into openapi_subset.json.

    python spec/extract.py [path/to/openapi.json]

The default path is ../shared/reference/openapi.json beside the checkout. The subset keeps the
Files and Batches operations, the request and response schemas of every endpoint a batch can
target, and every schema they reference, unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SPEC = HERE.parents[1] / "shared/reference/openapi.json"
OUTPUT = HERE / "openapi_subset.json"
PATHS = (
    "/files",
    "/files/{file_id}",
    "/files/{file_id}/content",
    "/batches",
    "/batches/{batch_id}",
    "/batches/{batch_id}/cancel",
)
SCHEMAS = (
    # Files and Batches objects.
    "OpenAIFile",
    "Batch",
    "DeleteFileResponse",
    "ListFilesResponse",
    "ListBatchesResponse",
    "ErrorResponse",
    # The endpoints a batch line can target: requests and responses.
    "CreateChatCompletionRequest",
    "CreateChatCompletionResponse",
    "CreateResponse",
    "Response",
    "CreateEmbeddingRequest",
    "CreateEmbeddingResponse",
    "CreateCompletionRequest",
    "CreateCompletionResponse",
    "CreateModerationRequest",
    "CreateModerationResponse",
)


def refs(node: Any) -> list[str]:
    """Every local `$ref` inside a node."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {path: spec["paths"][path] for path in PATHS}
    components: dict[str, dict[str, Any]] = {}
    todo = [f"#/components/schemas/{name}" for name in SCHEMAS] + refs(paths)
    while todo:
        ref = todo.pop()
        _, _, kind, name = ref.split("/", 3)
        if name in components.get(kind, {}):
            continue
        node = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = node
        todo.extend(refs(node))
    return {
        "openapi": spec["openapi"],
        "info": spec["info"],
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Write openapi_subset.json from the official OpenAPI spec.")
    parser.add_argument("spec", nargs="?", type=Path, default=DEFAULT_SPEC, help=f"default: {DEFAULT_SPEC}")
    source = parser.parse_args(argv).spec
    if not source.is_file():
        parser.error(f"{source}: no such file; pass the path of the official openapi.json")
    subset = extract(json.loads(source.read_text(encoding="utf-8")))
    OUTPUT.write_text(json.dumps(subset, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    schemas = len(subset["components"].get("schemas", {}))
    print(f"wrote {OUTPUT.name}: {len(subset['paths'])} paths, {schemas} schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
