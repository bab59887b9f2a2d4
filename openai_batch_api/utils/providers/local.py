"""The local backend, started for a run whose config says `base_url: local` (no key, no network).

The one module of the client side that reaches into `local_server`, and only when a run needs the
backend: the backend never imports the client side back. When another command already runs the
backend on this run's state (a status-jobs --wait), this one is given that backend's address.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import BatchToolError, ConfigError
from ..layout import local_backend_dir
from .api_key import LOOPBACK_PLACEHOLDER_KEY

# Seconds a local in-process backend gets to finish its batches before the command exits.
LOCAL_SETTLE_SECONDS = 3.0


def local_state_dir(config: Config) -> Path:
    return local_backend_dir(config.data_path)


def check_local_settings(config: Config) -> None:
    """Fail before any work on local_backend options the backend would refuse at its start."""
    from ...local_server import ServerOptions
    from ...local_server.upstream import upstream_key_problem

    problem = upstream_key_problem(ServerOptions.from_mapping(config.local_backend))
    if problem:
        raise ConfigError(problem)  # the words LocalServer.start would say, before any work


def remove_local_backend_state(config: Config) -> None:
    """Remove the files the run's local backend wrote (see LocalServer.remove_state); a user's stay."""
    from ...local_server import LocalServer

    LocalServer(state_dir=local_state_dir(config)).remove_state()


@dataclass(frozen=True)
class LocalBackend:
    """Where a run's local backend answers, and with which key."""

    base_url: str
    api_key: str
    # Set when the backend is another command's: how to tell its end from a failure of its own.
    holder: Any = None
    state_dir: Path | None = None

    @property
    def borrowed(self) -> bool:
        return self.holder is not None

    def check_running(self) -> None:
        """After a failed connection to a borrowed backend: an error saying its command stopped."""
        from ...local_server.server import still_running

        if self.holder is not None and not still_running(self.state_dir, self.holder):
            raise BatchToolError(
                f"{self.state_dir}: the local backend of process {self.holder.pid}, which this command was "
                "using, stopped; run the command again"
            )


@contextmanager
def local_backend(config: Config) -> Iterator[LocalBackend]:
    """The run's local backend, started for the block (and given time to finish small batches after
    it), or the one another live command runs on this run's state."""
    from ...local_server import LocalServer, ServerOptions
    from ...local_server.server import StateDirInUse

    options = ServerOptions.from_mapping(config.local_backend)
    # A key of this command's own: the backend's address is recorded on disk for other commands of
    # this user, and no other process on the machine should be able to use it.
    server = LocalServer(state_dir=local_state_dir(config), options=options, api_key=secrets.token_urlsafe(24))
    try:
        server.start()
    except StateDirInUse as busy:
        yield borrowed_backend(config, busy)
        return
    try:
        yield LocalBackend(base_url=server.base_url, api_key=server.api_key)
        # The local backend answers only while a command runs: give small batches time to finish.
        server.wait_idle(timeout=LOCAL_SETTLE_SECONDS)
    finally:
        server.stop()


def borrowed_backend(config: Config, busy: BatchToolError) -> LocalBackend:
    """The local backend another live command runs on this run's state."""
    from ...local_server.server import ADDRESS_WAIT_SECONDS, holder_pid, read_running_backend

    state_dir = local_state_dir(config)
    pid = holder_pid(getattr(busy, "holder", ""))
    backend = None
    # The holder writes its address a moment after taking the lock: give a starting one that moment.
    deadline = time.monotonic() + ADDRESS_WAIT_SECONDS
    while pid is not None:
        backend = read_running_backend(state_dir, pid=pid)
        if backend is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if backend is None:
        raise busy  # a server from an older version, or one listening beyond loopback
    key = backend.api_key or LOOPBACK_PLACEHOLDER_KEY
    return LocalBackend(base_url=backend.base_url, api_key=key, holder=backend, state_dir=state_dir)
