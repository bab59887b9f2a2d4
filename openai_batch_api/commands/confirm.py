"""Asking before destructive steps, and refusing to guess when nobody can answer."""

from __future__ import annotations

import sys
from typing import TextIO

from ..utils.errors import BatchToolError


def confirm(question: str, *, assume_yes: bool, stdin: TextIO | None = None) -> bool:
    """True when the user answers yes; without a terminal to ask on, --yes is required."""
    if assume_yes:
        return True
    stdin = stdin or sys.stdin
    if stdin is None or not stdin.isatty():
        raise BatchToolError(f"{question} Standard input is not a terminal, so nobody can answer: pass --yes")
    print(f"{question} [y/N] ", end="", flush=True)
    answer = stdin.readline().strip().lower()
    return answer in ("y", "yes")
