"""An offline, approximate token count for Claude models, whose tokenizer is not public.

Method: the text's o200k_base tokens (tiktoken, exact for OpenAI's models) times CLAUDE_TOKEN_RATIO,
plus the Messages API's fixed parts. Claude's tokenizer cuts English prose into roughly a fifth more
tokens than o200k_base; code, other scripts and numbers differ more. The estimate is labelled
approximate wherever it is shown; the usage the API reports for a finished batch is the real figure.
"""

from __future__ import annotations

import math
from typing import Any

from .tokens import TokenEstimator

# Claude tokens per o200k_base token, for prose; the label says it is an approximation.
CLAUDE_TOKEN_RATIO = 1.2
# An image of unknown size: Anthropic's rule is width x height / 750 tokens, about 1,600 for the
# largest image sent unscaled (1092 x 1092): the upper figure, so the estimate does not fall short.
CLAUDE_IMAGE_TOKENS = 1600
# Per message: the role and turn markers (an estimate, like the rest).
CLAUDE_TOKENS_PER_MESSAGE = 4


def is_claude(model: str | None) -> bool:
    return bool(model) and str(model).startswith("claude")


class ClaudeTokenEstimator(TokenEstimator):
    """Approximate Claude tokens of texts and Messages request params."""

    def __init__(self, model: str | None = None):
        super().__init__("o200k-counted")  # any unknown name counts with o200k_base
        self.exact = False
        self.method = f"approximate: {self.method} tokens x {CLAUDE_TOKEN_RATIO}, as Claude's tokenizer is not public"

    def count(self, text: str) -> int:
        return math.ceil(super().count(text) * CLAUDE_TOKEN_RATIO) if text else 0

    def body_tokens(self, body: dict, *, endpoint: str = "") -> int:
        """Input tokens of one Messages request: the system text and every message."""
        total = self._value_tokens(body.get("system"))
        for message in body.get("messages") or ():
            total += CLAUDE_TOKENS_PER_MESSAGE + self._value_tokens(message.get("content"))
        return total

    def _part_tokens(self, part: dict[str, Any]) -> int:
        if part.get("type") == "image":
            return CLAUDE_IMAGE_TOKENS
        return super()._part_tokens(part)
