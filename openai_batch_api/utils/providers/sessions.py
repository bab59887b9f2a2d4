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
        check_openai_settings(config)


def check_openai_settings(config: Config) -> None:
    """Provider openai's checks, without its SDK (a second to import, and a dry run never calls the API)."""
    from .api_key import api_key_for
    from .local import check_local_settings

    if config.is_local:
        check_local_settings(config)
    else:
        api_key_for(config)


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
