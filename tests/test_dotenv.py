"""The API key read from a .env file, as python-dotenv reads it, sent to a backend that checks it."""

from __future__ import annotations

import openai
import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from project_support import Project

KEY = "sk-abc"


@pytest.fixture
def keyed_project(tmp_path, monkeypatch):
    """A project whose backend answers only requests bearing KEY; no key in the environment."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LocalServer(state_dir=tmp_path / "server-state", options=ServerOptions(seed=7), api_key=KEY) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(3)
        yield project


@pytest.mark.parametrize(
    "dotenv",
    [
        f"OPENAI_API_KEY={KEY}  # my key\n",
        f"OPENAI_API_KEY={KEY} # my key\n",
        f"OPENAI_API_KEY='{KEY}'  # quoted\n",
        f'OPENAI_API_KEY="{KEY}"\n',
        f"export OPENAI_API_KEY={KEY}\n",
        f"# a comment line\n\nOTHER=x\nexport OPENAI_API_KEY = '{KEY}'\n",
    ],
    ids=["comment", "comment-one-space", "single-quotes", "double-quotes", "export", "export-spaces"],
)
def test_create_batch_api_key_from_dotenv_forms(keyed_project, dotenv):
    (keyed_project.root / ".env").write_text(dotenv, encoding="utf-8")
    result = keyed_project.run("create-batch")
    assert result.exit_code == 0, result.err
    client = openai.OpenAI(base_url=keyed_project.base_url, api_key=KEY, max_retries=0)
    assert len(list(client.batches.list())) == 1


def test_create_batch_api_key_environment_wins_over_dotenv(keyed_project, monkeypatch):
    (keyed_project.root / ".env").write_text("OPENAI_API_KEY=sk-wrong\n", encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    result = keyed_project.run("create-batch")
    assert result.exit_code == 0, result.err


def test_create_batch_api_key_dotenv_beside_config_wins_over_working_folder(keyed_project, tmp_path, monkeypatch):
    (keyed_project.root / ".env").write_text(f"OPENAI_API_KEY={KEY}\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".env").write_text("OPENAI_API_KEY=sk-wrong\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    result = keyed_project.run("create-batch")
    assert result.exit_code == 0, result.err


def test_create_batch_api_key_dotenv_in_working_folder(keyed_project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".env").write_text(f"OPENAI_API_KEY={KEY}  # from the working folder\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    result = keyed_project.run("create-batch")
    assert result.exit_code == 0, result.err
