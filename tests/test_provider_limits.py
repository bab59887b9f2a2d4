"""Providers with other limits than OpenAI's, imitated by the local backend, and result retention."""

from __future__ import annotations

import pytest

from openai_batch_api.local_server import LocalServer, ServerOptions
from project_support import Project


@pytest.fixture
def limited(tmp_path, monkeypatch):
    """limited(**server options) -> a Project whose server applies those limits."""
    servers: list[LocalServer] = []
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")

    def start(**options) -> tuple[Project, LocalServer]:
        server = LocalServer(state_dir=tmp_path / "limited-state", options=ServerOptions(seed=3, **options))
        server.start()
        servers.append(server)
        project = Project(root=tmp_path, base_url=server.base_url)
        project.config.pop("batch_size")  # the default: as many rows as the limits allow
        return project, server

    yield start
    for server in servers:
        server.stop()


def batches_of(project: Project) -> list:
    return sorted(project.server_batches(), key=lambda batch: batch.created_at)


def test_server_request_limit_without_the_config_key_fails_batches(limited):
    project, server = limited(max_requests_per_file=3)
    project.write_rows(7)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    (batch,) = batches_of(project)
    assert batch.status == "failed"
    assert batch.errors.data[0].code == "too_many_requests"
    assert batch.errors.data[0].message == "The batch input file has 7 requests; the maximum is 3."


def test_max_requests_per_batch_keeps_every_batch_under_the_server_limit(limited):
    project, server = limited(max_requests_per_file=3)
    project.write_rows(7)
    project.write_config(max_requests_per_batch=3)
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "7 rows in 3 shards" in created.out
    assert server.wait_idle(timeout=10)
    batches = project.server_batches()
    assert sorted(batch.request_counts.total for batch in batches) == [1, 3, 3]
    assert {batch.status for batch in batches} == {"completed"}


def test_max_batch_bytes_keeps_every_file_under_the_server_limit(limited):
    project, server = limited(max_file_bytes=1000)
    project.write_rows(7)
    project.write_config(max_batch_bytes=1000)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    batches = project.server_batches()
    assert len(batches) > 1
    assert {batch.status for batch in batches} == {"completed"}
    assert sum(batch.request_counts.total for batch in batches) == 7
    assert all(file.bytes <= 1000 for file in project.server_files() if file.purpose == "batch")


def test_server_byte_limit_without_the_config_key_fails_batches(limited):
    project, server = limited(max_file_bytes=1000)
    project.write_rows(7)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    (batch,) = batches_of(project)
    assert batch.status == "failed"
    assert batch.errors.data[0].code == "file_too_large"


def test_result_retention_sets_the_expiry_of_result_files(limited):
    project, server = limited()
    project.write_rows(3)
    project.write_config(result_retention="2d")
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    (batch,) = batches_of(project)
    output = project.client().files.retrieve(batch.output_file_id)
    assert output.expires_at == output.created_at + 2 * 86400
    upload = project.client().files.retrieve(batch.input_file_id)
    assert upload.expires_at == upload.created_at + 30 * 86400  # the policy is for results only


def test_without_result_retention_result_files_keep_the_server_default(limited):
    project, server = limited()
    project.write_rows(3)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    (batch,) = batches_of(project)
    output = project.client().files.retrieve(batch.output_file_id)
    assert output.expires_at == output.created_at + 30 * 86400


def test_local_backend_limits_from_the_config(tmp_path, monkeypatch):
    project = Project(root=tmp_path, base_url="local")
    project.config.pop("batch_size")
    project.write_rows(5)
    project.write_config(local_backend={"max_requests_per_file": 2}, max_requests_per_batch=2)
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "5 rows in 3 shards" in created.out
    status = project.run("status-jobs", "--wait")
    assert status.exit_code == 0, status.err
    assert "rows: 5 done, 0 failed, 0 pending of 5; batches: 3 of 3 finished" in status.out


def test_empty_error_file_on_success_adds_no_failures(limited):
    project, server = limited(empty_error_file=True)
    project.write_rows(3)
    assert project.run("create-batch").exit_code == 0
    assert server.wait_idle(timeout=10)
    (batch,) = batches_of(project)
    assert batch.status == "completed"
    assert batch.error_file_id is not None
    assert project.client().files.content(batch.error_file_id).content == b""
    status = project.run("status-jobs")
    assert status.exit_code == 0, status.err
    assert "rows: 3 done, 0 failed, 0 pending of 3" in status.out
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    assert set(project.output()["api_status"]) == {"ok"}
