"""YAML read as yaml.safe_load reads it, except that a key given twice in one mapping is refused.

yaml.safe_load keeps the last of two equal keys without a word: `model_params` given twice would
send the second and drop the first, whatever the user meant.
"""

from __future__ import annotations

from typing import Any

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class RepeatedKeyError(yaml.YAMLError):
    """A mapping holds one key twice; `lines` are the 1-based lines of both."""

    def __init__(self, key: Any, lines: tuple[int, int]) -> None:
        super().__init__(f"key {key!r} given twice")
        self.key = key
        self.lines = lines


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue  # `<<: *defaults`: keys given beside it override the merged ones, as YAML means
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: construct_mapping refuses it with its own message
            if first is not None:
                raise RepeatedKeyError(key, (first, line))
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def safe_load_unique(text: str) -> Any:
    """`yaml.safe_load(text)`, raising RepeatedKeyError for a key given twice in one mapping."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
