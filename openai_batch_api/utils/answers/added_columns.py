"""The columns collate adds to a table, for a config: known before any result is read.

create-batch refuses an input column of these names before anything is paid for, so they are worked
out here without pandas (which create-batch does not import).
"""

from __future__ import annotations

from ..config import Config
from ..endpoints import MODERATIONS, RESPONSES
from . import result_columns as columns


def result_columns(config: Config) -> list[str]:
    """The columns collate adds for the config's endpoint, in order (with `provenance`, where each answer came from)."""
    added = list(columns.COLLATED)
    if config.endpoint == MODERATIONS:
        added = [columns.COLLATED[0], columns.CATEGORIES, *columns.COLLATED[1:]]
    return [*added, *columns.PROVENANCE] if config.provenance else added


def answer_format(config: Config) -> dict | None:
    """The JSON answer format of the requests: chat's `response_format`, or the Responses API's `text.format`
    (Anthropic's `output_config.format` in the same shape)."""
    if config.provider == "anthropic":
        from ..requests.message_params import as_response_format

        return as_response_format(config.model_params)
    if config.endpoint == RESPONSES:
        text = config.model_params.get("text")
        return text.get("format") if isinstance(text, dict) else None
    return config.model_params.get("response_format")


def added_columns(config: Config) -> list[str]:
    """Every column collate adds to the input's: the api_* columns, and those of a JSON answer format."""
    return [*result_columns(config), *answer_columns(answer_format(config), prefix=config.answer_column_prefix)]


def column_clash_message(config: Config, clashes: list[str]) -> str:
    """What to do about input columns named like columns collate adds (it would overwrite them)."""
    answers = answer_columns(answer_format(config), prefix=config.answer_column_prefix)
    fix = "rename the column in the input"
    if any(name in answers and name != columns.JSON_ERROR for name in clashes):
        fix += ", or set answer_column_prefix to another prefix"
    listed = ", ".join(f"'{name}'" for name in clashes)
    noun = "column" if len(clashes) == 1 else "columns"
    return f"{config.input_file}: the input {noun} {listed} would be overwritten by collate-output's results; {fix}"


def answer_columns(response_format: dict | None, *, prefix: str) -> list[str]:
    """The columns expand_structured_answers makes for this answer format, in order."""
    kind = (response_format or {}).get("type")
    if kind not in ("json_object", "json_schema"):
        return []
    schema = schema_of(response_format) if kind == "json_schema" else None  # type: ignore[arg-type]
    properties = (schema or {}).get("properties") or {}
    return [*(f"{prefix}{name}" for name in properties), columns.JSON_ERROR]


def schema_of(response_format: dict) -> dict | None:
    """The JSON schema of a chat `response_format` or of a Responses `text.format`."""
    if "json_schema" in response_format:
        schema = (response_format.get("json_schema") or {}).get("schema")
    else:
        schema = response_format.get("schema")
    return schema if isinstance(schema, dict) else None
