"""What every command has in common: the common flags and the one error boundary."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..utils.errors import INTERRUPTED_MESSAGE, BatchToolError, ExitStatus

if TYPE_CHECKING:
    from ..utils.config import Config

# Tests set this so that an unexpected exception fails loudly instead of becoming a line.
RAISE_ENV = "OPENAI_BATCH_API_RAISE"


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config",
        default="config.yaml",
        metavar="PATH",
        help="the YAML config of the run (default: config.yaml)",
    )
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


class StderrHandler(logging.Handler):
    """Log lines (the API layer's retries) on whatever sys.stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr, flush=True)


def show_log_on_stderr() -> None:
    logger = logging.getLogger("openai_batch_api")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        logger.addHandler(StderrHandler())
        logger.setLevel(logging.INFO)


def disk_full_message(exc: OSError, config: Config | None) -> str:
    """A full disk: every write is atomic or a transaction, so what was saved before it is whole."""
    where = exc.filename or (config.data_path if config is not None else Path.cwd())
    return (
        f"{where}: no space left on the device; free some space there and run the command again "
        "(what was saved before is kept, nothing half-written)"
    )


def run_command(
    *,
    prog: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    handler: Callable[[argparse.Namespace, Config], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse arguments, load the config and run `handler`, turning failures into one line."""
    parser = build_parser(prog, description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    show_log_on_stderr()
    config: Config | None = None
    try:
        from ..utils.config import load_config  # after the flags: `--help` does not load the schema

        config = load_config(args.config)
        return int(handler(args, config) or ExitStatus.OK)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BatchToolError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        raise  # the reader of stdout left: the console script exits quietly
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and not args.debug:
            print(f"error: {disk_full_message(exc, config)}", file=sys.stderr)
            return ExitStatus.ERROR
        if args.debug or os.environ.get(RAISE_ENV):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc}; run again with --debug for the traceback",
            file=sys.stderr,
        )
        return ExitStatus.ERROR
