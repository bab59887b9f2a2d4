"""Where the API key comes from: the environment, else a .env beside the config or in the working folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..addresses import is_loopback_url
from ..config import Config
from ..errors import BatchToolError, ConfigError

API_KEY_ENV = "OPENAI_API_KEY"
# Sent to a server on this machine when no key is set: a local backend needs none from the user.
LOOPBACK_PLACEHOLDER_KEY = "local"


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file, as python-dotenv reads them (comments, `export`, quotes).

    Values are taken literally: `${NAME}` is not expanded, as a key never holds one.
    """
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path, interpolate=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return {key: value for key, value in values.items() if value is not None}


def find_api_key(config: Config) -> str:
    """The key from OPENAI_API_KEY, else from a .env beside the config or in the working folder."""
    key = os.environ.get(API_KEY_ENV)
    if key:
        return key
    for folder in (config.path.parent, Path.cwd()):
        key = read_dotenv(folder / ".env").get(API_KEY_ENV)
        if key:
            return key
    raise ConfigError(
        f"no API key: set {API_KEY_ENV} in the environment or in a .env file beside {config.path.name}, "
        "or set `base_url: local` in the config to use the local backend"
    )


def api_key_for(config: Config) -> str:
    """The key to send: found by find_api_key, or a placeholder for a server on loopback."""
    base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
    try:
        return find_api_key(config)
    except BatchToolError:
        if is_loopback_url(base_url):
            return LOOPBACK_PLACEHOLDER_KEY
        raise
