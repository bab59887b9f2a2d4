"""Anthropic's API key: ANTHROPIC_API_KEY from the environment, else a .env beside the config or in the working folder.

The same places as OpenAI's key, under Anthropic's name, so one .env can hold both.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..addresses import is_loopback_url
from ..config import Config
from ..errors import ConfigError

ANTHROPIC_KEY_ENV = "ANTHROPIC_API_KEY"
ANTHROPIC_BASE_URL_ENV = "ANTHROPIC_BASE_URL"
# Sent to a server on this machine when no key is set: a local backend needs none from the user.
LOOPBACK_PLACEHOLDER_KEY = "local"


def _dotenv_value(path: Path, name: str) -> str | None:
    from dotenv import dotenv_values

    try:
        return dotenv_values(path, interpolate=False, encoding="utf-8").get(name)
    except (OSError, UnicodeDecodeError):
        return None


def anthropic_api_key(config: Config) -> str:
    """The key to send to Anthropic's API (or a placeholder for a server on loopback); ConfigError when none."""
    key = os.environ.get(ANTHROPIC_KEY_ENV)
    for folder in (config.path.parent, Path.cwd()):
        key = key or _dotenv_value(folder / ".env", ANTHROPIC_KEY_ENV)
    if key:
        return key
    if is_loopback_url(config.base_url or os.environ.get(ANTHROPIC_BASE_URL_ENV)):
        return LOOPBACK_PLACEHOLDER_KEY
    raise ConfigError(
        f"no API key: set {ANTHROPIC_KEY_ENV} in the environment or in a .env file beside {config.path.name}, "
        "or set `base_url: local` in the config to use the local backend"
    )
