"""A client clock ahead of the server's: lost batch creations are still found, never paid for twice.

The local backend's clock_offset moves every time it reports (created_at, the Date header) by that
much, as a server whose clock is behind this machine's would; this machine's clock is left alone.
"""

from __future__ import annotations

from collections import Counter

import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from openai_batch_api.utils.providers import openai as api_module
from openai_batch_api.utils.state.ledger import CREATING
from openai_batch_api.utils.state.run_store import load_run as load_ledger
from project_support import Project

# The client's clock 7 minutes ahead: more than any margin a search by the local clock could allow.
SKEW = -420
LOST_CREATES = {"http_error_kinds": ("drop_after",), "http_error_paths": "^POST /v1/batches$"}


def batches_per_shard(project: Project) -> Counter:
    return Counter((b.metadata or {}).get("shard") for b in project.server_batches())


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def test_clock_ahead_lost_create_answers_one_batch_per_shard(tmp_path):
    options = ServerOptions(seed=11, clock_offset=SKEW, http_error_rate=0.5, **LOST_CREATES)
    with LocalServer(state_dir=tmp_path / "state", options=options) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(8)
        project.write_config(batch_size=2, concurrency=1)
        created = project.run("create-batch")
        assert created.exit_code == 0, created.err
        assert "retrying" in created.err  # creations' answers were lost, and found again
        shards = [s.key for s in load_ledger(project.data_path).shards]
        assert batches_per_shard(project) == Counter(dict.fromkeys(shards, 1))


def test_clock_ahead_rerun_after_every_create_answer_was_lost_one_batch_per_shard(tmp_path, monkeypatch):
    """As a kill just after each creation reached the server: the next create-batch finds every batch."""
    monkeypatch.setattr(api_module, "DEFAULT_RETRY", api_module.RetryPolicy(attempts=1))
    state = tmp_path / "state"
    with LocalServer(state_dir=state, options=ServerOptions(clock_offset=SKEW, http_error_rate=1.0, **LOST_CREATES)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(8)
        project.write_config(batch_size=2, concurrency=1)
        assert project.run("create-batch").exit_code == 1
    assert [s.state for s in load_ledger(project.data_path).shards] == [CREATING] * 4
    monkeypatch.undo()
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=state, options=ServerOptions(clock_offset=SKEW)) as server:
        project.base_url = server.base_url
        project.write_config(base_url=server.base_url)
        again = project.run("create-batch")
        assert again.exit_code == 0, again.err
        shards = [s.key for s in load_ledger(project.data_path).shards]
        assert batches_per_shard(project) == Counter(dict.fromkeys(shards, 1))
