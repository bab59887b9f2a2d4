"""Extract the parts of the official OpenAPI spec the tests use into openapi_subset.json.

    python spec/extract.py [path/to/openapi.json]
    python spec/extract.py --fields-only

The default path is ../shared/reference/openapi.json beside the checkout. The subset keeps the
Files and Batches operations, the request and response schemas of every endpoint a batch can
target, and every schema they reference, unchanged.

From the subset it also writes the package's table of request fields
(openai_batch_api/utils/request_fields.py): for each endpoint, the top-level fields of its
request body and the JSON types each takes, which the config check and the local backend hold
`model_params` to. `--fields-only` writes that table again from the subset already here.
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
FIELDS_OUTPUT = HERE.parent / "openai_batch_api/utils/request_fields.py"
# endpoint -> the schema of its request body.
REQUEST_SCHEMAS = {
    "/v1/chat/completions": "CreateChatCompletionRequest",
    "/v1/responses": "CreateResponse",
    "/v1/embeddings": "CreateEmbeddingRequest",
    "/v1/completions": "CreateCompletionRequest",
    "/v1/moderations": "CreateModerationRequest",
}
JSON_KINDS = ("string", "integer", "number", "boolean", "array", "object", "null")
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


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        _, _, kind, name = node["$ref"].split("/", 3)
        node = spec["components"][kind][name]
    return node


def value_kinds(spec: dict[str, Any], node: Any, seen: frozenset[int] = frozenset()) -> set[str] | None:
    """The JSON types a schema lets a value be, or None when it does not say (any value)."""
    node = _resolve(spec, node)
    if not isinstance(node, dict) or id(node) in seen:
        return None
    seen = seen | {id(node)}
    kinds: set[str] = set()
    declared = node.get("type")
    if isinstance(declared, str):
        kinds.add(declared)
    elif isinstance(declared, list):
        kinds.update(declared)
    if node.get("nullable"):
        kinds.add("null")
    values = node.get("enum", [node["const"]] if "const" in node else None)
    if values is not None and not declared:
        kinds.update(_kind_of(value) for value in values)
    for key in ("anyOf", "oneOf"):
        for part in node.get(key, []):
            part_kinds = value_kinds(spec, part, seen)
            if part_kinds is None:
                return None
            kinds |= part_kinds
    for part in node.get("allOf", []):
        kinds |= value_kinds(spec, part, seen) or set()
    return kinds or None


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def body_fields(spec: dict[str, Any], node: Any) -> dict[str, set[str] | None]:
    """The top-level properties of an object schema (through allOf), each with the JSON types it takes."""
    node = _resolve(spec, node)
    fields: dict[str, set[str] | None] = {}
    for part in node.get("allOf", []):
        fields.update(body_fields(spec, part))
    for name, schema in node.get("properties", {}).items():
        fields[name] = value_kinds(spec, schema)
    return fields


def request_fields(spec: dict[str, Any]) -> dict[str, dict[str, tuple[str, ...] | None]]:
    """endpoint -> {field: the JSON types it takes, None for any}, from each endpoint's request schema."""
    table = {}
    for endpoint, schema in REQUEST_SCHEMAS.items():
        fields = body_fields(spec, spec["components"]["schemas"][schema])
        table[endpoint] = {
            name: None if kinds is None else tuple(k for k in JSON_KINDS if k in kinds)
            for name, kinds in sorted(fields.items())
        }
    return table


def _python_kinds(kinds: tuple[str, ...] | None) -> str:
    if kinds is None:
        return "None"
    return "(" + ", ".join(json.dumps(kind) for kind in kinds) + ("," if len(kinds) == 1 else "") + ")"


def write_fields(subset: dict[str, Any]) -> None:
    lines = [
        '"""The fields of each endpoint\'s request body and the JSON types each takes, from the OpenAPI spec.',
        "",
        "Written by `python spec/extract.py` from spec/openapi_subset.json (see spec/README.md): do not edit.",
        "None: the spec does not say (any value).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "REQUEST_FIELDS: dict[str, dict[str, tuple[str, ...] | None]] = {",
    ]
    for endpoint, fields in request_fields(subset).items():
        lines.append(f"    {json.dumps(endpoint)}: {{")
        lines.extend(f"        {json.dumps(name)}: {_python_kinds(kinds)}," for name, kinds in fields.items())
        lines.append("    },")
    lines.append("}")
    FIELDS_OUTPUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {FIELDS_OUTPUT.relative_to(HERE.parent)}: the request fields of {len(REQUEST_SCHEMAS)} endpoints")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Write openapi_subset.json from the official OpenAPI spec.")
    parser.add_argument("spec", nargs="?", type=Path, default=DEFAULT_SPEC, help=f"default: {DEFAULT_SPEC}")
    parser.add_argument(
        "--fields-only", action="store_true", help="only write the request fields table again from the subset here"
    )
    args = parser.parse_args(argv)
    if args.fields_only:
        write_fields(json.loads(OUTPUT.read_text(encoding="utf-8")))
        return 0
    source = args.spec
    if not source.is_file():
        parser.error(f"{source}: no such file; pass the path of the official openapi.json")
    subset = extract(json.loads(source.read_text(encoding="utf-8")))
    OUTPUT.write_text(json.dumps(subset, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    schemas = len(subset["components"].get("schemas", {}))
    print(f"wrote {OUTPUT.name}: {len(subset['paths'])} paths, {schemas} schemas")
    write_fields(subset)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
