"""Object ids such as file-…, batch_…, chatcmpl-…: unique, not secret, and cheap to make by the million."""

from __future__ import annotations

import random

# Seeded from os.urandom; never from ServerOptions.seed, so two servers never share ids.
_random = random.Random()


def new_id(prefix: str) -> str:
    """`prefix` followed by 24 random hex digits."""
    return f"{prefix}{_random.getrandbits(96):024x}"
