"""Load and validate the YAML config: a closed schema, every problem reported at once."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import endpoints
from .addresses import is_loopback
from .content_template import TemplateError, parse_template
from .errors import ConfigError
from .files.storage import ObjectUrl, is_url
from .json_kinds import json_kind
from .layout import OWNED_FOLDERS
from .yaml_keys import RepeatedKeyError, safe_load_unique

# OpenAI's limits on one batch input file; other providers differ (see max_requests_per_batch).
MAX_REQUESTS_PER_BATCH = endpoints.MAX_REQUESTS_PER_FILE
MAX_BATCH_BYTES = endpoints.MAX_FILE_BYTES
# The batch APIs a run can go to; Anthropic's Message Batches take requests inline, up to their own limits.
PROVIDERS = ("openai", "anthropic")
DEFAULT_PROVIDER = "openai"
PROVIDER_LIMITS = {
    "openai": (MAX_REQUESTS_PER_BATCH, MAX_BATCH_BYTES),
    "anthropic": (endpoints.ANTHROPIC_MAX_REQUESTS, endpoints.ANTHROPIC_MAX_BATCH_BYTES),
}
# The range the API allows for output_expires_after.seconds.
RETENTION_MIN_SECONDS, RETENTION_MAX_SECONDS = 3600, 30 * 24 * 3600
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
IMAGE_DETAILS = ("low", "high", "auto")
LOCAL_BASE_URL = "local"
OUTPUT_FORMATS = (".pkl", ".pickle", ".csv", ".parquet", ".jsonl")
# model_params keys that cap a request's output tokens: the cost estimate multiplies by them.
TOKEN_LIMIT_PARAMS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# The longest first interval of status-jobs --wait: a day. Longer ones (1e300) overflow the clock.
MAX_POLL_INTERVAL = 86400

# key -> one-line meaning; the README's config reference is checked against this.
CONFIG_KEYS: dict[str, str] = {
    "provider": "the batch API: openai (default) or anthropic (Message Batches)",
    "input_file": "the table of rows: .csv, .pkl, .parquet or .jsonl",
    "id_column": "the column holding each row's unique id",
    "endpoint": "the Batch API endpoint: /v1/chat/completions (default), /v1/responses, /v1/embeddings, "
    "/v1/completions or /v1/moderations",
    "content_column": "the column sent as the user message (or use content_template)",
    "content_template": "the user message built from columns: `{column}` placeholders, `{{`/`}}` for braces",
    "image_url_column": "optional column of image URLs or local image paths",
    "image_detail": "detail of image inputs: low, high or auto",
    "prompt": "the system message of every request (chat, responses, completions only)",
    "examples": "few-shot pairs `[{user: ..., assistant: ...}]` sent before each row (chat, responses)",
    "batch_size": "the most rows in one batch (at most max_requests_per_batch)",
    "max_requests_per_batch": "the most requests the server takes in one batch (OpenAI: 50000, Anthropic: 100000)",
    "max_batch_bytes": "the most bytes the server takes in one batch (OpenAI: 200 MB, Anthropic: 256 MB)",
    "result_retention": "how long the server keeps result files: seconds or a duration like 7d (1h to 30d)",
    "model_params": "fields spread into every request body; `model` is required",
    "output_file": "where collate-output writes the table: .pkl, .csv, .parquet or .jsonl",
    "data_path": "the folder for task files, downloaded results and the run state",
    "base_url": "an OpenAI-compatible server (or Anthropic's API), or `local` for the built-in local backend",
    "local_backend": "options of the local backend when base_url is local",
    "max_enqueued_tokens": "submit only batches whose prompt tokens fit under this many enqueued tokens",
    "max_cost": "refuse to submit when the estimated cost in USD is above this",
    "max_retries": "how many times `status-jobs --wait` resubmits rows that failed retryably",
    "prices": "USD per million tokens at standard prices, per model: {input, output}",
    "answer_column_prefix": "prefix of the columns made from a JSON schema's properties",
    "concurrency": "how many uploads, creations and downloads run at once",
    "poll_interval": "seconds between polls of `status-jobs --wait` at first (it backs off)",
    "provenance": "add where each answer came from: api_batch_id, api_model, api_request_hash (true/false)",
    "notify": "a shell command run once when the run ends, told how in OPENAI_BATCH_API_* variables",
    "notify_url": "an https:// URL sent one POST of JSON when the run ends (Slack, Teams incoming webhooks)",
}
LEGACY_KEYS = {
    "image_url": "image_url_column",  # older spelling, same meaning
    "batch_submit_data": None,  # written by older versions; ignored
}
REQUIRED_KEYS = (
    "input_file",
    "id_column",
    "model_params",
    "output_file",
    "data_path",
)
# Required unless the endpoint has no place for them (prompt), or one of a pair is given (content).
CONDITIONAL_KEYS = ("content_column", "content_template", "prompt")


@dataclass(frozen=True)
class Config:
    """A validated config; paths are absolute, resolved against the config file's folder."""

    path: Path
    input_file: Path | ObjectUrl  # a local path, or an s3://, gs:// or az:// URL
    id_column: str
    model_params: dict[str, Any]
    output_file: Path | ObjectUrl | None  # None only for a run made from Python that returns its table
    data_path: Path
    content_column: str | None = None  # exactly one of content_column and content_template is set
    content_template: str | None = None
    prompt: str | None = None  # None only for endpoints without a prompt (embeddings, moderations)
    endpoint: str = endpoints.DEFAULT_ENDPOINT
    examples: list[dict[str, str]] = field(default_factory=list)
    image_url_column: str | None = None
    image_detail: str = "low"
    batch_size: int = MAX_REQUESTS_PER_BATCH
    max_requests_per_batch: int = MAX_REQUESTS_PER_BATCH
    max_batch_bytes: int = MAX_BATCH_BYTES
    # Seconds the server keeps output and error files (output_expires_after), or None for its default.
    result_retention: int | None = None
    base_url: str | None = None
    local_backend: dict[str, Any] = field(default_factory=dict)
    max_enqueued_tokens: int | None = None
    max_cost: float | None = None
    max_retries: int = 0
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    answer_column_prefix: str = "answer_"
    concurrency: int = 4
    poll_interval: float = 30.0
    provenance: bool = False
    provider: str = DEFAULT_PROVIDER
    notify: str | None = None  # a shell command run when the run ends
    notify_url: str | None = None  # https://, or http:// to this machine
    # How messages name a config given from Python ("batch()"): a mapping has no file to name.
    source: str | None = None

    @property
    def name(self) -> str:
        """The config as messages name it: its file, or the call it was given to."""
        return self.source or str(self.path)

    @property
    def model(self) -> str:
        return self.model_params["model"]

    @property
    def is_local(self) -> bool:
        return self.base_url == LOCAL_BASE_URL


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def interval_problem(value: Any, *, shown: str | None = None) -> str | None:
    """What is wrong with a poll interval in seconds ("must be ..."), or None when it is fine.

    `shown` is the value as the user typed it (a flag's text), quoted in the message.
    """
    if not _is_number(value) or not 0 < value <= MAX_POLL_INTERVAL:
        got = repr(shown) if shown is not None else repr(value)
        return f"must be a number of seconds above 0 and at most {MAX_POLL_INTERVAL} (a day), got {got}"
    return None


def notify_url_problem(value: Any) -> str | None:
    """What is wrong with notify_url, or None.

    Plain http:// would show the run's name and counts to the network: only to this machine. A
    webhook URL often holds its secret, so a message names only its scheme and host.
    """
    if not isinstance(value, str) or not value.strip():
        return f"must be an https:// URL, got {_type_name(value)}"
    parts = urlsplit(value.strip())
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname:
        if is_loopback(parts.hostname):
            return None
        return (
            "must be an https:// URL (plain http:// only to this machine: localhost, 127.x.x.x, ::1), "
            f"got http://{parts.hostname}/..."
        )
    return "must be an https:// URL such as https://hooks.slack.com/services/..."


def parse_duration(value: Any) -> int | None:
    """Seconds from a whole number of seconds or a text like "3600", "90m", "12h" or "7d"; None if neither."""
    if _is_int(value):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    unit = DURATION_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    if not number.strip().isdigit():
        return None
    return int(number) * (unit or 1)


def _check_value(key: str, value: Any, *, max_requests: int = MAX_REQUESTS_PER_BATCH) -> str | None:
    """Return what is wrong with one key's value, or None."""
    if key in ("input_file", "output_file", "data_path", "id_column", "content_column",
               "image_url_column", "base_url", "answer_column_prefix"):
        if not isinstance(value, str) or (not value.strip() and key != "answer_column_prefix"):
            return f"must be a non-empty string, got {_type_name(value)}"
        if key == "output_file" and Path(value).suffix.lower() not in OUTPUT_FORMATS:
            return f"must end in {', '.join(OUTPUT_FORMATS)}, got {value!r}"
        if key == "data_path" and is_url(value.strip()):
            return (
                f"must be a local folder, got {value!r}: the run's state and locks need a real filesystem "
                "(input_file and output_file may be URLs)"
            )
        if key == "base_url" and value.strip() != LOCAL_BASE_URL and not value.strip().startswith(("http://", "https://")):
            return f"must be `local` or an http:// or https:// URL such as http://127.0.0.1:8089/v1, got {value!r}"
    elif key == "prompt":
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string (the system message)"
    elif key == "provider":
        if value not in PROVIDERS:
            close = difflib.get_close_matches(str(value), PROVIDERS, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return f"must be one of {', '.join(PROVIDERS)}, got {value!r}{hint}"
    elif key == "endpoint":
        if value not in endpoints.ENDPOINTS:
            close = difflib.get_close_matches(str(value), endpoints.ENDPOINTS, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return f"must be one of {', '.join(endpoints.ENDPOINTS)}, got {value!r}{hint}"
    elif key == "content_template":
        if not isinstance(value, str) or not value.strip():
            return f"must be a non-empty string, got {_type_name(value)}"
        try:
            parse_template(value)
        except TemplateError as exc:
            return str(exc)
    elif key == "examples":
        if not isinstance(value, list) or not value:
            return "must be a list of {user: ..., assistant: ...} pairs"
        for number, example in enumerate(value, 1):
            if not isinstance(example, dict) or set(example) != {"user", "assistant"}:
                return f"item {number} must be a mapping with exactly the keys 'user' and 'assistant'"
            if not all(isinstance(text, str) and text.strip() for text in example.values()):
                return f"item {number} must give non-empty text for 'user' and 'assistant'"
    elif key == "image_detail":
        if value not in IMAGE_DETAILS:
            return f"must be one of {', '.join(IMAGE_DETAILS)}, got {value!r}"
    elif key == "batch_size":
        if not _is_int(value) or not 1 <= value <= max_requests:
            return f"must be a whole number from 1 to {max_requests}, got {value!r}"
    elif key == "result_retention":
        seconds = parse_duration(value)
        if seconds is None or not RETENTION_MIN_SECONDS <= seconds <= RETENTION_MAX_SECONDS:
            return f"must be seconds or a duration like 7d or 12h, from 1h to 30d, got {value!r}"
    elif key == "model_params":
        if not isinstance(value, dict):
            return f"must be a mapping of request fields, got {_type_name(value)}"
        if not isinstance(value.get("model"), str) or not value["model"].strip():
            return "must name the model, e.g. `model: gpt-4o-mini`"
        if "messages" in value:
            return "must not hold `messages`: they are built from prompt and content_column"
        # The fields of other endpoints' bodies are checked with the endpoint, in _check_endpoint_keys.
    elif key in ("local_backend", "prices"):
        if not isinstance(value, dict):
            return f"must be a mapping, got {_type_name(value)}"
        if key == "prices":
            for model, price in value.items():
                if not isinstance(price, dict) or set(price) != {"input", "output"} or not all(
                    _is_number(p) and p >= 0 for p in price.values()
                ):
                    return f"{model}: must be {{input: USD per 1M tokens, output: USD per 1M tokens}}"
    elif key in ("max_enqueued_tokens", "concurrency", "max_requests_per_batch", "max_batch_bytes"):
        if not _is_int(value) or value < 1:
            return f"must be a whole number of at least 1, got {value!r}"
    elif key == "max_retries":
        if not _is_int(value) or value < 0:
            return f"must be a whole number of at least 0, got {value!r}"
    elif key == "max_cost":
        if not _is_number(value) or value <= 0:
            return f"must be a positive number, got {value!r}"
    elif key == "poll_interval":
        return interval_problem(value)
    elif key == "provenance":
        if not isinstance(value, bool):
            return f"must be true or false, got {value!r}"
    elif key == "notify":
        if not isinstance(value, str) or not value.strip():
            return f"must be a shell command as a non-empty string, got {_type_name(value)}"
    elif key == "notify_url":
        return notify_url_problem(value)
    return None


def _model_params_problems(params: dict[str, Any]) -> list[str]:
    """Token limits that are not whole positive numbers, and numbers that are not finite, anywhere in model_params.

    YAML's .nan and .inf would be sent as null, and a negative max_tokens would make a negative cost estimate.
    """
    problems = []
    for key in TOKEN_LIMIT_PARAMS:
        value = params.get(key)
        if value is not None and (not _is_int(value) or value < 1):
            problems.append(f"'model_params.{key}' must be a whole number of at least 1, got {value!r}")

    def walk(value: Any, where: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"'{where}' must be a finite number, got {value!r}")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")

    walk(params, "model_params")
    return problems


# How messages name the JSON types of the request schema, in YAML's and Python's words.
KIND_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true/false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def knows_request_fields(base_url: str | None) -> bool:
    """Whether the server is one whose request schema is the spec's: OpenAI, Azure OpenAI or the local backend.

    Another OpenAI-compatible server (vLLM, a gateway) may take fields of its own: only their types are checked.
    """
    if base_url is None or base_url.strip() == LOCAL_BASE_URL:
        return True
    host = urlsplit(base_url.strip()).hostname or ""
    return host == "api.openai.com" or host.endswith(".openai.azure.com")


def _model_params_schema_problems(endpoint: str, params: dict[str, Any], *, base_url: str | None) -> list[str]:
    """model_params fields the endpoint's request schema does not have, or of a type it does not take.

    The API refuses such a request line with a 400 (`Unrecognized request argument supplied`), after
    the batch has waited its turn: here it is refused before anything is written.
    """
    from .request_fields import REQUEST_FIELDS

    fields = REQUEST_FIELDS[endpoint]
    built = set(endpoints.BUILT_FIELDS[endpoint]) | {"messages", "model"}  # refused or checked already
    problems = []
    for name, value in params.items():
        if name in built:
            continue
        if name not in fields:
            if knows_request_fields(base_url):
                close = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                problems.append(f"unknown model_params field '{name}'{hint}: {endpoint} requests have no such field")
            continue
        kinds = fields[name]
        if kinds is None or name in TOKEN_LIMIT_PARAMS:  # the token limits have their own check
            continue
        kind = json_kind(value)
        if kind in kinds or (kind == "integer" and "number" in kinds):
            continue
        words = [KIND_WORDS[k] for k in kinds]
        expected = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
        problems.append(f"'model_params.{name}' must be {expected}, got {KIND_WORDS.get(kind, kind)} ({value!r:.40})")
    return problems


def _path_problems(values: dict[str, Any]) -> list[str]:
    """Resolved paths that cannot be what they name: found at load, before a run pays for rows."""
    problems = []
    output_file = values.get("output_file")
    if output_file is not None and not isinstance(output_file, ObjectUrl):
        if output_file.is_dir():
            problems.append(f"output_file {output_file} is a folder; name the file collate-output writes")
        elif (blocker := _file_in_the_way(output_file.parent)) is not None:
            problems.append(f"output_file {output_file}: {blocker} is a file, not a folder; choose another output_file")
    data_path = values["data_path"]
    blocker = _file_in_the_way(data_path)
    if blocker == data_path:
        problems.append(f"data_path {data_path} is a file; name a folder (it is made if missing)")
    elif blocker is not None:
        problems.append(f"data_path {data_path}: {blocker} is a file, not a folder; choose another data_path")
    return problems


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest existing path at or above `folder` when it is not a folder (so `folder` cannot be made)."""
    for path in (folder, *folder.parents):
        if path.exists():
            return None if path.is_dir() else path
    return None


def _unknown_key_message(key: str, *, keywords: Sequence[str] | None = None) -> str:
    """`unknown key 'promt' (did you mean 'prompt'?)`; with `keywords` (a function's own), among those too."""
    close = difflib.get_close_matches(key, [*(keywords or ()), *CONFIG_KEYS, *LEGACY_KEYS], n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {'key' if keywords is None else 'keyword'} '{key}'{hint}"


def _check_endpoint_keys(raw: dict, values: dict[str, Any], *, noun: str = "key") -> list[str]:
    """Problems of keys that depend on each other and on the endpoint."""
    problems = []
    endpoint = values.get("endpoint", endpoints.DEFAULT_ENDPOINT)
    if "content_column" in raw and "content_template" in raw:
        problems.append("'content_column' and 'content_template' both given: keep one")
    elif "content_column" not in raw and "content_template" not in raw:
        problems.append(f"missing {noun} 'content_column' (or 'content_template')")
    if raw.get("endpoint") is not None and "endpoint" not in values:
        return problems  # an unknown endpoint: the checks below would only guess
    if endpoint in endpoints.PROMPT_ENDPOINTS:
        if "prompt" not in raw:
            problems.append(f"missing {noun} 'prompt'")
    elif "prompt" in raw:
        problems.append(f"'prompt' is not sent to {endpoint}, which has no system message: remove it")
    if "examples" in raw and endpoint not in endpoints.EXAMPLE_ENDPOINTS:
        problems.append(
            f"'examples' are not sent to {endpoint}; they are for {' and '.join(endpoints.EXAMPLE_ENDPOINTS)}: "
            "remove them"
        )
    if values.get("image_url_column") and endpoint not in endpoints.IMAGE_ENDPOINTS:
        problems.append(f"'image_url_column' is not sent to {endpoint}, which takes text only: remove it")
    params = values.get("model_params") or {}
    built = [name for name in endpoints.BUILT_FIELDS[endpoint] if name in params and name != "messages"]
    if built:
        problems.append(
            f"'model_params' must not hold `{built[0]}`: for {endpoint} it is built from the prompt and the content"
        )
    return problems


def validate_config_mapping(
    raw: Any,
    *,
    path: Path,
    required: tuple[str, ...] = REQUIRED_KEYS,
    source: str | None = None,
    keywords: Sequence[str] | None = None,
) -> Config:
    """Check a parsed config against the schema; raise one error listing every problem.

    `required` is the keys that must be given: a run made from Python may leave out output_file.
    A config given from Python names its `source` in messages ("batch()") rather than `path`, whose
    folder relative paths are read from; with `keywords` (the calling function's own keyword
    arguments) the keys are keywords, and a mistyped one is matched among those too.
    """
    where = source or path
    noun = "key" if keywords is None else "keyword"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the config must be a mapping of {noun}s, got {_type_name(raw)}")
    values: dict[str, Any] = {}
    problems: list[str] = []
    # batch_size is checked against the server's limit, when that limit is itself valid.
    provider = raw.get("provider") if raw.get("provider") in PROVIDERS else DEFAULT_PROVIDER
    max_requests = raw.get("max_requests_per_batch")
    if _check_value("max_requests_per_batch", max_requests) is not None:
        max_requests = PROVIDER_LIMITS[provider][0]
    for key, value in raw.items():
        key = str(key)
        if key in LEGACY_KEYS:
            new_key = LEGACY_KEYS[key]
            if new_key is None:
                continue
            if new_key in raw:
                problems.append(f"'{key}' and '{new_key}' both given: keep only '{new_key}'")
                continue
            key = new_key
        if key not in CONFIG_KEYS:
            problems.append(_unknown_key_message(key, keywords=keywords))
            continue
        if value is None and key not in required and key not in CONDITIONAL_KEYS:
            continue  # an optional key left empty means its default
        problem = _check_value(key, value, max_requests=max_requests)
        if problem:
            problems.append(f"'{key}' {problem}")
        else:
            values[key] = value
    for key in required:
        if key not in raw:
            problems.append(f"missing {noun} '{key}'")
    problems.extend(_check_endpoint_keys(raw, values, noun=noun))
    if isinstance(values.get("model_params"), dict):
        problems.extend(_model_params_problems(values["model_params"]))
        # An unknown endpoint has no schema to check; provider anthropic's model_params have their own check.
        if (raw.get("endpoint") is None or "endpoint" in values) and provider == DEFAULT_PROVIDER:
            endpoint = values.get("endpoint", endpoints.DEFAULT_ENDPOINT)
            problems.extend(
                _model_params_schema_problems(endpoint, values["model_params"], base_url=values.get("base_url"))
            )
    if provider == "anthropic":
        problems.extend(_anthropic_problems(raw, values))
    if problems:
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise ConfigError(f"{where}: {count}{'; '.join(problems)}")

    folder = path.parent
    values.setdefault("output_file", None)
    for key in ("input_file", "output_file", "data_path"):
        if values[key] is not None and is_url(values[key].strip()):
            values[key] = ObjectUrl(values[key].strip())
        elif values[key] is not None:
            values[key] = (folder / Path(values[key]).expanduser()).resolve()
    path_problems = _path_problems(values)
    if path_problems:
        count = f"{len(path_problems)} problems: " if len(path_problems) > 1 else ""
        raise ConfigError(f"{where}: {count}{'; '.join(path_problems)}")
    if values["output_file"] == values["input_file"]:
        # collate-output would overwrite the table the run was made from, and the run with it.
        raise ConfigError(
            f"{where}: output_file is the input_file ({values['input_file'].name}); collate-output would "
            "overwrite the table the run was made from: choose another output_file"
        )
    for key in ("input_file", "output_file"):
        owner = owned_folder(values[key], data_path=values["data_path"])
        if owner is not None:
            raise ConfigError(
                f"{where}: {key} {values[key]} is inside {owner}, where the tool writes and deletes its own "
                f"files; move it out of that folder (or set another data_path) and fix {key} in the config"
            )
    if "result_retention" in values:
        values["result_retention"] = parse_duration(values["result_retention"])
    for key in ("base_url", "notify_url"):
        if values.get(key) is not None:
            values[key] = values[key].strip()
    if provider == "anthropic":
        values["endpoint"] = endpoints.MESSAGES
        values.setdefault("max_requests_per_batch", endpoints.ANTHROPIC_MAX_REQUESTS)
        values.setdefault("max_batch_bytes", endpoints.ANTHROPIC_MAX_BATCH_BYTES)
        values.setdefault("batch_size", endpoints.ANTHROPIC_MAX_REQUESTS)
    return Config(path=path, source=source, **values)


def _anthropic_problems(raw: dict, values: dict[str, Any]) -> list[str]:
    """What provider anthropic refuses: OpenAI's endpoint choice, and model_params the Messages API has not."""
    from .message_fields import message_params_problems

    problems = []
    if raw.get("endpoint") is not None:
        problems.append(f"'endpoint' is for provider openai; provider anthropic sends {endpoints.MESSAGES}: remove it")
    if raw.get("image_detail") is not None:
        problems.append("'image_detail' is for provider openai; Anthropic sizes images itself: remove it")
    if isinstance(values.get("model_params"), dict):
        problems.extend(message_params_problems(values["model_params"]))
    return problems




def owned_folder(file: Path | ObjectUrl | None, *, data_path: Path) -> Path | None:
    """The folder of data_path the tool owns that holds `file`, or None."""
    if not isinstance(file, Path):
        return None  # a URL in object storage
    for name in OWNED_FOLDERS:
        folder = data_path / name
        if file == folder or folder in file.parents:
            return folder
    return None


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML config at `path`."""
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file; pass one with --config path/to/config.yaml"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None
    try:
        raw = safe_load_unique(text)
    except RepeatedKeyError as exc:
        first, second = exc.lines
        raise ConfigError(
            f"{path}: key '{exc.key}' is given twice (lines {first} and {second}); keep one of them"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: the config is empty; see the README's config reference")
    return validate_config_mapping(raw, path=path)
