"""How a message names the step to take next: a command line for the commands, a method from Python.

A run made from a config file is driven by the commands, and its messages say
`create-batch --config config.yaml --adopt`; a run given its config from Python (`batch()`,
`Run.from_mapping`) is driven by `Run`'s methods, and the same message says `Run.create(adopt=True)`.
"""

from __future__ import annotations

import shlex

from .config import Config

# (command, flags...) -> the same step from Python.
PYTHON_STEPS: dict[tuple[str, ...], str] = {
    ("create-batch",): "Run.create()",
    ("create-batch", "--adopt"): "Run.create(adopt=True) (or batch(..., adopt=True))",
    ("create-batch", "--retry"): "Run.retry()",
    ("status-jobs", "--wait"): "Run.wait()",
    ("status-jobs", "--cancel"): "Run.cancel()",
    ("collate-output",): "Run.collate()",
    ("delete-tasks",): "Run.delete()",
    ("delete-tasks", "--force"): "Run.delete(force=True)",
}


def from_python(config: Config) -> bool:
    """Whether the config was given from Python (its messages name methods, not commands)."""
    return config.source is not None


def next_step(config: Config, config_arg: str | None, command: str, *flags: str) -> str:
    """The step to take, as the caller takes it: `status-jobs --config c.yaml --wait` or `Run.wait()`."""
    if from_python(config):
        return PYTHON_STEPS[(command, *flags)]
    return shlex.join([command, "--config", config_arg or str(config.path), *flags])


def option(config: Config, flag: str, keyword: str) -> str:
    """A flag of the commands (`--force`), or the keyword of the method from Python (`force=True`)."""
    return keyword if from_python(config) else flag
