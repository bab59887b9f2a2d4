"""The console scripts, light to import: Ctrl-C and a closed pipe are handled from the first moment.

A command module imports the SDK, pandas and pyarrow, which takes a second or more; a Ctrl-C in
that time would print a long traceback. Here only the standard library is imported before the
handlers are in place, and the command module is imported inside them.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys

from ..utils.errors import INTERRUPTED_MESSAGE, ExitStatus

# A process whose reader went away (`status-jobs | head -2`) exits as if killed by SIGPIPE.
BROKEN_PIPE_STATUS = 128 + signal.SIGPIPE


def run_module(module: str) -> int:
    """Import `openai_batch_api.commands.<module>` and run its main(), turning Ctrl-C and EPIPE into quiet exits."""
    debug = "--debug" in sys.argv[1:]
    try:
        code = importlib.import_module(f"openai_batch_api.commands.{module}").main()
        sys.stdout.flush()  # a broken pipe shows here, not at interpreter exit
        # The command is done: its files closed, its run state committed. What is left (the SDK's
        # thousands of classes) is freed with the process; sparing the collector a last walk over it
        # shortens the exit by a few tenths of a second.
        gc.freeze()
        return code
    except KeyboardInterrupt:
        if debug:
            raise
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the line short
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        # Point stdout at /dev/null so that the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS


def create_batch() -> int:
    return run_module("create_batch")


def status_jobs() -> int:
    return run_module("status_jobs")


def collate_output() -> int:
    return run_module("collate_output")


def delete_tasks() -> int:
    return run_module("delete_tasks")
