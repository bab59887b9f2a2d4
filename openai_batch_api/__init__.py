"""Run a table through the OpenAI Batch API from one YAML config, or from Python.

    import openai_batch_api
    table = openai_batch_api.batch(df, prompt=..., model_params={"model": ...}, data_path="run-1",
                                   content_column="text")

`batch()` is the one call for notebooks; `Run` offers each step (create, submit, status, wait,
cancel, retry, collate, delete). Errors are `BatchApiToolError` and its subclasses. `Run` and
`batch` are imported on first use, so `import openai_batch_api` (and every command's --help) stays
quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .utils.errors import (
    ApiError,
    BatchApiToolError,
    BatchToolError,
    ConfigError,
    CostOverLimitError,
    InputError,
    LostCreationError,
    LostRunError,
    RunChangedError,
    RunLockedError,
)

if TYPE_CHECKING:
    from .notebook import batch
    from .run import Run
    from .step_results import Cancelled, Collated, Created, Deleted, Retried, RunStatus, Submitted
    from .utils.lifecycle.settling import Settled
    from .utils.lifecycle.waiting import WaitUpdate

__version__ = "0.2.0"

# Public name -> the module that holds it, imported when the name is first used.
LAZY = {
    "batch": "notebook",
    "Run": "run",
    "Created": "step_results",
    "Submitted": "step_results",
    "Retried": "step_results",
    "RunStatus": "step_results",
    "Cancelled": "step_results",
    "Collated": "step_results",
    "Deleted": "step_results",
    "Settled": "utils.lifecycle.settling",
    "WaitUpdate": "utils.lifecycle.waiting",
}

__all__ = [
    "ApiError",
    "BatchApiToolError",
    "BatchToolError",
    "Cancelled",
    "Collated",
    "ConfigError",
    "CostOverLimitError",
    "Created",
    "Deleted",
    "InputError",
    "LostCreationError",
    "LostRunError",
    "Retried",
    "Run",
    "RunChangedError",
    "RunLockedError",
    "RunStatus",
    "Settled",
    "Submitted",
    "WaitUpdate",
    "__version__",
    "batch",
]


def __getattr__(name: str) -> Any:
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY))
