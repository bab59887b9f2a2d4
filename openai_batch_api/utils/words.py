"""How messages count things and name the next command: shared by the core's errors and the printing."""

from __future__ import annotations

import shlex


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {word}"


def next_command(command: str, config_arg: str, *extra: str) -> str:
    return shlex.join([command, "--config", config_arg, *extra])
