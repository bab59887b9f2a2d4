"""A run's results as one row per request, and what the failures and the JSON answers say.

The result files are read through the providers' readers (providers/result_lines.py), which give each
line as a neutral result record: the row's id, its answer and its failure. Nothing here knows what a
provider's result line looks like.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from ..providers.result_lines import read_answer_table, read_result_file
from . import result_columns as columns
from .added_columns import schema_of
from .failures import FailureGroup  # noqa: F401 - where callers have found it


def load_results(
    paths: Iterable[str | PathLike[str]], *, skip: Mapping[Path, Collection[str]] | None = None
) -> pd.DataFrame:
    """One row per request from a run's result files (output and error files, any provider's), indexed by custom_id.

    Files are read in the order given, oldest attempt first: when a custom_id appears more than once,
    the last line wins. Columns are result_columns.LOADED; token counts are nullable Int64. A line
    that is not a result line raises BatchToolError naming the file and line.

    `api_output` is the answer's text (chat, completions, responses), the vector as a float32 array
    (embeddings) or whether the input was flagged (moderations, with the flagged `api_categories`).
    `skip` names, per file, the custom_ids whose lines are left out (requests the table no longer asks).
    """
    parts: list[pd.DataFrame] = []
    lines: _ResultLines | None = None
    for path in paths:
        path = Path(path)
        # A file of successes (most output files) is read at once as columns; any other, a line at a time.
        answers = None if skip else read_answer_table(path)
        if answers is None:
            lines = lines or _ResultLines()
            lines.read(path, skip=skip.get(path) if skip else None)
            continue
        if lines is not None:  # the files before it, in order: a later line of a custom_id wins
            parts.append(lines.frame())
            lines = None
        parts.append(_answer_frame(answers))
        del answers
    if lines is not None or not parts:
        parts.append((lines or _ResultLines()).frame())
    del lines  # the frame holds the values now: the million objects of its lists can go
    frame = parts[0] if len(parts) == 1 else pd.concat(parts)
    del parts
    return _last_attempt_only(frame)


def _answer_frame(answers: pa.Table) -> pd.DataFrame:
    """The frame of result_columns.LOADED of a file whose every line succeeded, from its answer columns."""

    def text(name: str) -> np.ndarray:
        return answers.column(name).to_numpy(zero_copy_only=False)  # str objects, None for null

    def tokens(name: str) -> pd.api.extensions.ExtensionArray:
        return answers.column(name).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).array

    return _frame(
        ids=answers.column("custom_id").to_pandas(),  # pandas keeps Arrow's strings: no str object made for an id
        outputs=text("output"),
        refusals=text("refusal"),
        finishes=text("finish_reason"),
        categories=np.full(answers.num_rows, None, dtype=object),
        prompt_tokens=tokens("prompt_tokens"),
        completion_tokens=tokens("completion_tokens"),
        total_tokens=tokens("total_tokens"),
        failures=[],
    )


class _ResultLines:
    """The result lines read so far, one list per column; failures kept apart."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.outputs: list[Any] = []
        self.refusals: list[str | None] = []
        self.finishes: list[str | None] = []
        self.categories: list[str | None] = []
        self.prompt_tokens: list[int | None] = []
        self.completion_tokens: list[int | None] = []
        self.total_tokens: list[int | None] = []
        # Most rows succeed: failures are kept apart as (row position, status, error, code, retryable).
        self.failures: list[tuple[int, str, str, str, bool]] = []

    def read(self, path: Path, *, skip: Collection[str] | None = None) -> None:
        """Add the records of one result file, streamed: it can hold a million; `skip`'s ids are left out."""
        # The per-record work is kept to the appends each column needs, bound once.
        add_id, add_output, add_refusal = self.ids.append, self.outputs.append, self.refusals.append
        add_finish, add_categories = self.finishes.append, self.categories.append
        add_prompt, add_completion = self.prompt_tokens.append, self.completion_tokens.append
        add_total, add_failure = self.total_tokens.append, self.failures.append
        # A million lines share a handful of finish reasons: keep one string of each, not one per line.
        reasons: dict[str | None, str | None] = {}
        for custom_id, answer, failure in read_result_file(path, skip=skip):
            if failure is not None:
                add_failure((len(self.ids), *failure))
            output, refusal, finish, flagged_categories, prompt, completion, total = answer
            add_id(custom_id)
            add_output(output)
            add_refusal(refusal)
            add_finish(reasons.setdefault(finish, finish))
            add_categories(flagged_categories)
            add_prompt(prompt)
            add_completion(completion)
            add_total(total)

    def frame(self) -> pd.DataFrame:
        """The lines as a frame of result_columns.LOADED, indexed by custom_id (repeats included)."""
        return _frame(
            ids=self.ids,
            outputs=self.outputs,
            refusals=self.refusals,
            finishes=self.finishes,
            categories=self.categories,
            prompt_tokens=pd.array(self.prompt_tokens, dtype="Int64"),
            completion_tokens=pd.array(self.completion_tokens, dtype="Int64"),
            total_tokens=pd.array(self.total_tokens, dtype="Int64"),
            failures=self.failures,
        )


def _frame(
    *,
    ids: Sequence[str] | pd.Series,
    outputs: Sequence[Any],
    refusals: Sequence[str | None],
    finishes: Sequence[str | None],
    categories: Sequence[str | None],
    prompt_tokens: Any,
    completion_tokens: Any,
    total_tokens: Any,
    failures: list[tuple[int, str, str, str, bool]],
) -> pd.DataFrame:
    """A frame of result_columns.LOADED indexed by custom_id; `failures` as _ResultLines keeps them, the rest ok."""
    count = len(ids)
    statuses = np.full(count, "ok", dtype=object)
    errors = np.full(count, None, dtype=object)
    codes = np.full(count, None, dtype=object)
    retryables = np.zeros(count, dtype=bool)
    if failures:
        positions, failure_statuses, failure_errors, failure_codes, failure_retryables = zip(*failures, strict=True)
        rows = np.fromiter(positions, dtype=np.intp, count=len(failures))
        statuses[rows] = failure_statuses
        errors[rows] = failure_errors
        codes[rows] = failure_codes
        retryables[rows] = failure_retryables
    frame = pd.DataFrame(
        {
            columns.STATUS: pd.Series(statuses, dtype=object),
            columns.OUTPUT: pd.Series(outputs, dtype=object),
            columns.ERROR: pd.Series(errors, dtype=object),
            columns.ERROR_CODE: pd.Series(codes, dtype=object),
            columns.FINISH_REASON: pd.Series(finishes, dtype=object),
            columns.REFUSAL: pd.Series(refusals, dtype=object),
            columns.CATEGORIES: pd.Series(categories, dtype=object),
            columns.PROMPT_TOKENS: prompt_tokens,
            columns.COMPLETION_TOKENS: completion_tokens,
            columns.TOTAL_TOKENS: total_tokens,
            columns.RETRYABLE: retryables,
        }
    )
    frame.index = pd.Index(ids, name="custom_id", dtype=str)
    return frame


def _last_attempt_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Each custom_id's last row, in the order they were last seen: a custom_id seen again is a later attempt."""
    repeated = frame.index.duplicated(keep="last")
    return frame[~repeated] if repeated.any() else frame


def summarize_failures(results: pd.DataFrame) -> list[FailureGroup]:
    """Failed requests grouped by error code, most frequent first, each with an example row."""
    failed = results[results[columns.STATUS] != "ok"]
    groups = []
    for code, frame in failed.groupby(columns.ERROR_CODE, sort=False):
        groups.append(
            FailureGroup(
                code=str(code),
                count=len(frame),
                retryable=bool(frame[columns.RETRYABLE].all()),
                example_id=str(frame.index[0]),
                example_error=str(frame[columns.ERROR].iloc[0]),
            )
        )
    groups.sort(key=lambda group: (-group.count, group.code))
    return groups


_JSON_TYPE_NAMES = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array"}
_JSON_TYPE_NAMES.update({dict: "object", type(None): "null"})


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _matches_type(value: Any, expected: str) -> bool:
    actual = _json_type(value)
    return actual == expected or (expected == "number" and actual == "integer")


def _problems(answer: Any, schema: dict | None, required: list[str], properties: dict) -> str | None:
    """Why a parsed answer does not fit the schema's top level, or None."""
    root_type = (schema or {}).get("type", "object")
    if isinstance(root_type, str) and root_type != "object":
        if _matches_type(answer, root_type):
            return None
        return f"answer is a JSON {_json_type(answer)}, not {root_type}"
    if not isinstance(answer, dict):
        return f"answer is a JSON {_json_type(answer)}, not an object"
    problems = []
    missing = [name for name in required if name not in answer]
    if missing:
        problems.append("missing required " + ", ".join(repr(name) for name in missing))
    for name, spec in properties.items():
        if name not in answer or not isinstance(spec, dict):
            continue
        value = answer[name]
        expected = spec.get("type")
        allowed = [expected] if isinstance(expected, str) else expected
        if isinstance(allowed, list) and not any(_matches_type(value, kind) for kind in allowed):
            problems.append(f"{name!r} is {_json_type(value)}, expected {' or '.join(allowed)}")
        elif isinstance(spec.get("enum"), list) and value not in spec["enum"]:
            problems.append(f"{name!r} is {value!r}, not one of {spec['enum']!r}")
    return "; ".join(problems) or None


def expand_structured_answers(outputs: pd.Series, *, response_format: dict | None, prefix: str) -> pd.DataFrame:
    """JSON answers as columns, aligned with `outputs`' index.

    With a `json_schema` response format each top-level property becomes a column `<prefix><name>`;
    with `json_object` there are no property columns. Either way the `api_json_error` column says why an
    answer is not valid JSON, not an object, or misses a required property or has a wrong top-level type
    (None when it fits, or when there is no answer). Without a JSON response format: an empty frame.
    """
    kind = (response_format or {}).get("type")
    if kind not in ("json_object", "json_schema"):
        return pd.DataFrame(index=outputs.index)
    schema = schema_of(response_format) if kind == "json_schema" else None
    properties = (schema or {}).get("properties") or {}
    required = [name for name in (schema or {}).get("required") or [] if isinstance(name, str)]
    names = list(properties)
    values: dict[str, list[Any]] = {name: [] for name in names}
    json_errors: list[str | None] = []
    loads = orjson.loads
    for text in outputs:
        answer = None
        problem = None
        if isinstance(text, str):
            try:
                answer = loads(text)
            except orjson.JSONDecodeError as exc:
                problem = f"answer is not valid JSON ({exc})"
            else:
                problem = _problems(answer, schema, required, properties)
        fields = answer if isinstance(answer, dict) else {}
        for name in names:
            values[name].append(fields.get(name))
        json_errors.append(problem)
    data = {f"{prefix}{name}": pd.Series(column, dtype=object) for name, column in values.items()}
    data[columns.JSON_ERROR] = pd.Series(json_errors, dtype=object)
    frame = pd.DataFrame(data)
    frame.index = outputs.index
    return frame
