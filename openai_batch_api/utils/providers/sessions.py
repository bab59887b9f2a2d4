"""The provider session of a run, by the config's `provider`: the one place that chooses between them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Config
from .base import Provider


def check_api_settings(config: Config) -> None:
    """Fail before any work on what opening the session would refuse: a missing key, bad local_backend options."""
    if config.provider == "anthropic":
        from .anthropic import check_anthropic_settings

        check_anthropic_settings(config)
    else:
        from .openai import check_api_settings as check_openai_settings

        check_openai_settings(config)


@contextmanager
def open_api(config: Config) -> Iterator[Provider]:
    """The provider session for the config's server; with `base_url: local`, a local backend runs meanwhile."""
    if config.provider == "anthropic":
        from .anthropic import open_anthropic

        with open_anthropic(config) as provider:
            yield provider
    else:
        from .openai import open_api as open_openai

        with open_openai(config) as provider:
            yield provider
