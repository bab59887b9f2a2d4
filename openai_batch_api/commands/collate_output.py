"""collate-output: download the results and join them onto the input rows, into output_file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import run_command

if TYPE_CHECKING:
    from ..utils.config import Config

DESCRIPTION = (
    "Download the results of every finished batch and join them onto the input rows by id, "
    "into output_file. A run still going is collated as far as it goes."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """collate-output takes only the common flags."""


def handle(args: argparse.Namespace, config: Config) -> int:
    from ..run import Run
    from .reporting import collated_lines

    collated = Run(config, config_arg=args.config, command="collate-output").collate(table=False)
    print("\n".join(collated_lines(collated, config, config_arg=args.config)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `collate-output`."""
    return run_command(
        prog="collate-output", description=DESCRIPTION, add_arguments=add_arguments, handler=handle, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
