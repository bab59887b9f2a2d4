"""The package's errors, one base class with a subclass per kind of failure, and the exit codes.

A caller catches the base (`BatchApiToolError`) for any failure the user can fix, or one kind:
`ConfigError`, `InputError`, `ApiError` (and its `LostCreationError`), `RunLockedError`, `RunChangedError` (and its
`LostRunError`),
`CostOverLimitError`.
Each carries the one-line message the commands print after `error: `. This module stays free of
heavy imports: the console scripts import it before anything else.
"""

from __future__ import annotations

from enum import IntEnum

INTERRUPTED_MESSAGE = "interrupted; nothing is lost: run the command again to continue"


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130


class BatchApiToolError(Exception):
    """A predictable failure the user can fix: printed as one `error: ...` line, exit 1.

    The message names the file, key or row at fault and says how to fix it.
    """

    exit_code: int = ExitStatus.ERROR


# The name of the base class before the error kinds existed; code that catches it keeps working.
BatchToolError = BatchApiToolError


class UsageError(BatchApiToolError):
    """Flags that do not go together: exit 2, as argparse's own usage errors."""

    exit_code: int = ExitStatus.USAGE


class ConfigError(BatchApiToolError):
    """The config (a YAML file or a mapping) is missing, unreadable or breaks the schema."""


class InputError(BatchApiToolError):
    """The input table cannot be read, or a row or column in it cannot be sent."""


class ApiError(BatchApiToolError):
    """The API refused a call, could not be reached, or answered in a way the run cannot use.

    Errors of the `openai` SDK reach a `Run` caller as this class, with the SDK's error as
    `__cause__` (its status code and request id are there).
    """


class RunLockedError(BatchApiToolError):
    """Another process holds the run's lock: one step at a time works on a run."""


class RunChangedError(BatchApiToolError):
    """The table, prompt or model parameters differ from those the run in data_path was made from."""


class LostRunError(RunChangedError):
    """Data_path holds no run state, but the API holds batches of a run of this input and data_path.

    A new run would pay for every row again: the run is refused, or taken up again with adopt.
    Also raised when adopt is asked for and no such run is found: nothing is started then.
    """


class LostCreationError(ApiError):
    """Batch creations whose answers were lost on a server that cannot say whether they made a batch.

    No other batch is created for those shards (that could pay twice): the user, who can look on the
    server, settles each with `create-batch --settle SHARD=BATCH_ID` or `--settle SHARD=none`.
    `shards` holds (shard key, its input file id) pairs.
    """

    def __init__(self, shards: list[tuple[str, str]], *, status: int, config_arg: str | None = None) -> None:
        self.shards = shards
        self.status = status
        command = f"create-batch --config {config_arg}" if config_arg else "create-batch"
        if len(shards) == 1:
            key, file_id = shards[0]
            message = (
                f"shard {key}: a batch creation's answer was lost and the server does not list batches ({status}), "
                f"so whether it made a batch from input file {file_id} cannot be checked; no other batch is created "
                "for this shard (that could pay twice): look on the server for a batch of that input file, then run "
                f"{command} --settle {key}=BATCH_ID (that batch is the shard's) or --settle {key}=none (there is "
                "none: submit the shard again)"
            )
        else:
            listed = ", ".join(f"{key} (input file {file_id})" for key, file_id in shards)
            message = (
                f"shards {listed}: batch creations' answers were lost and the server does not list batches "
                f"({status}), so whether they made batches cannot be checked; no other batch is created for these "
                "shards (that could pay twice): look on the server for a batch of each input file, then run "
                f"{command} with --settle SHARD=BATCH_ID for each shard whose batch you found and --settle "
                "SHARD=none for each that has none (it is submitted again)"
            )
        super().__init__(message)

    def for_config(self, config_arg: str) -> LostCreationError:
        """The same error, its command naming the config as the user gave it."""
        return LostCreationError(self.shards, status=self.status, config_arg=config_arg)


class CostOverLimitError(BatchApiToolError):
    """The estimated cost is above max_cost, or cannot be bounded while max_cost is set."""


def with_filename(exc: OSError, path: object) -> OSError:
    """`exc` naming `path` when it names no file: a failed write (a full disk) says which file it was."""
    if exc.filename is not None:
        return exc
    named = OSError(exc.errno, exc.strerror or str(exc), str(path))
    named.__cause__ = exc
    return named
