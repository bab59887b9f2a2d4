"""`content_template`: the user content built from columns, `{column}` placeholders and nothing else.

`{{` and `}}` are literal braces. Nothing is evaluated: no format specs, attributes or indexes, so any
column name (spaces, dots, colons) can be a placeholder as it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# `{{`, `}}`, a placeholder, or a lone brace (an error).
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")

# A parsed template: (literal text, column or None) pairs, in order.
Pieces = Sequence[tuple[str, str | None]]


class TemplateError(ValueError):
    """Why a template cannot be parsed."""


def parse_template(template: str) -> list[tuple[str, str | None]]:
    """The template as (literal text before a placeholder, the placeholder's column) pairs.

    The last pair's column is None when the template ends in literal text.
    """
    pieces: list[tuple[str, str | None]] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(template):
        literal.append(template[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif token in ("{", "}"):
            raise TemplateError(
                f"has a lone '{token}' at character {match.start() + 1}; write '{token * 2}' for a literal brace"
            )
        else:
            column = match.group(1)
            if not column.strip():
                raise TemplateError(f"has an empty placeholder '{{}}' at character {match.start() + 1}; name a column")
            pieces.append(("".join(literal), column))
            literal = []
    literal.append(template[position:])
    tail = "".join(literal)
    if tail or not pieces:
        pieces.append((tail, None))
    return pieces


def template_columns(pieces: Pieces) -> list[str]:
    """The columns a parsed template names, each once, in order of first use."""
    return list(dict.fromkeys(column for _, column in pieces if column is not None))
