"""The Message Batches provider through the official anthropic SDK against the local backend: create
from a shard's request file, poll, results streamed back onto the rows' ids, cancel, delete, and a
lost create found again or refused, never made twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from anthropic_support import *  # noqa: F403 - the shared fixtures
from test_local_server_support import *  # noqa: F403 - the shared fixtures

from openai_batch_api.utils.answers.results import load_results
from openai_batch_api.utils.config import validate_config_mapping
from openai_batch_api.utils.providers.anthropic import open_provider, shard_ids
from openai_batch_api.utils.providers.base import ProviderError
from openai_batch_api.utils.providers.retries import RetryPolicy
from openai_batch_api.utils.requests.custom_ids import run_tag
from openai_batch_api.utils.requests.request_lines import RequestLines

ROW_IDS = ["7", "07", "a b/c", "zürich ✓", "x" * 100]
FAST = RetryPolicy(attempts=4, base_delay=0.3, max_delay=0.3)
TAG = run_tag("run-1")


def shard_file(tmp_path: Path, row_ids=ROW_IDS, name: str = "shard-0.jsonl") -> Path:
    config = validate_config_mapping(
        {
            "provider": "anthropic",
            "input_file": "input.csv",
            "id_column": "id",
            "content_column": "content",
            "prompt": "Answer briefly.",
            "model_params": {"model": "claude-haiku-4-5", "max_tokens": 32},
            "output_file": "output.csv",
            "data_path": "data",
        },
        path=tmp_path / "config.yaml",
    )
    lines = RequestLines(config)
    path = tmp_path / name
    path.write_bytes(b"".join(lines.text_line(row_id, f"question {i}") for i, row_id in enumerate(row_ids)))
    return path


def provider_of(server, policy: RetryPolicy = FAST):
    return open_provider(api_key="test-key", base_url=server.base_url, policy=policy)


def until_ended(provider, batch_id: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while (batch := provider.retrieve(batch_id)).phase != "ended":
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
    return batch


def test_shard_goes_out_in_one_create_and_comes_back_on_its_row_ids(tmp_path, server):
    path = shard_file(tmp_path)
    ids = shard_ids(path, tag=TAG, shard=0)
    provider = provider_of(server)
    batch = provider.create_from_file(path, ids=ids, since=int(time.time()))
    assert (batch.status, batch.total) == ("in_progress", 5)
    done = until_ended(provider, batch.id)
    assert (done.status, done.completed, done.failed, done.output_file_id) == ("completed", 5, 0, batch.id)
    assert provider.poll({batch.id: batch.created_at})[batch.id].status == "completed"
    dest = tmp_path / "results.jsonl"
    assert provider.download_results(batch.id, dest, ids=ids) == 5
    results = load_results([dest])
    assert list(results.index) != [] and sorted(results.index) == sorted(ROW_IDS)
    assert set(results["api_status"]) == {"ok"}
    assert provider.delete_batch(batch.id) is True
    assert provider.delete_batch(batch.id) is False


def test_poll_of_many_batches_reads_the_listing(tmp_path, server):
    provider = provider_of(server)
    made = {}
    for shard in range(3):
        path = shard_file(tmp_path, ROW_IDS[: shard + 1], name=f"shard-{shard}.jsonl")
        batch = provider.create_from_file(path, ids=shard_ids(path, tag=TAG, shard=shard), since=0)
        made[batch.id] = batch.created_at
    calls = provider.calls
    polled = provider.poll(made)
    assert sorted(polled) == sorted(made)
    assert provider.calls - calls == 1  # one page of the listing answered all three
    assert sorted(batch.total for batch in polled.values()) == [1, 2, 3]


def test_cancel_of_a_running_batch_ends_it_cancelled(tmp_path, start_server):
    server = start_server(line_latency=0.5)
    path = shard_file(tmp_path)
    provider = provider_of(server)
    batch = provider.create_from_file(path, ids=shard_ids(path, tag=TAG, shard=0), since=0)
    assert provider.cancel(batch.id).status in ("cancelling", "cancelled")
    done = until_ended(provider, batch.id)
    assert done.status == "cancelled"
    assert provider.cancel(batch.id).status == "cancelled"  # ended meanwhile: as it now stands


def test_lost_create_answer_is_found_again_from_the_results_custom_ids(tmp_path, start_server):
    """Each create's answer is lost after the server acted; the batch it made is found, and only one is made."""
    server = start_server(http_error_rate=1.0, http_error_kinds=["drop_after"], http_error_paths="^POST ")
    path = shard_file(tmp_path)
    provider = provider_of(server)
    batch = provider.create_from_file(path, ids=shard_ids(path, tag=TAG, shard=0), since=int(time.time()))
    listed = list(provider.list_batches())
    assert [item.id for item in listed] == [batch.id]
    assert batch.status == "completed"  # confirmed from its results, which exist only once it ended


def test_lost_create_answer_with_the_batch_still_running_is_refused_not_made_again(tmp_path, start_server):
    server = start_server(
        http_error_rate=1.0, http_error_kinds=["drop_after"], http_error_paths="^POST /v1/messages/batches$",
        line_latency=0.3,
    )
    path = shard_file(tmp_path)
    ids = shard_ids(path, tag=TAG, shard=0)
    provider = provider_of(server)
    since = int(time.time())
    with pytest.raises(ProviderError) as caught:
        provider.create_from_file(path, ids=ids, since=since)
    [batch] = list(provider.list_batches())
    expires = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(batch.expires_at))
    assert str(caught.value) == (
        f"shard 0: a batch creation's answer was lost, and batch {batch.id} (in_progress, expires at {expires}) "
        "made since then holds 5 requests like this shard; it can be confirmed as this run's only from its "
        "results, once it has ended: run the command again then (creating another now could pay twice)"
    )
    until_ended(provider, batch.id)
    assert provider.find_submission(ids=ids, count=5, since=since).batch.id == batch.id


def test_another_runs_batch_of_the_same_size_is_not_taken_for_this_shards(tmp_path, server):
    path = shard_file(tmp_path)
    provider = provider_of(server)
    theirs = provider.create_from_file(path, ids=shard_ids(path, tag=run_tag("another run"), shard=0), since=0)
    until_ended(provider, theirs.id)
    ours = shard_ids(path, tag=TAG, shard=0)
    lookup = provider.find_submission(ids=ours, count=5, since=int(time.time()))
    assert (lookup.batch, lookup.unknowable) == (None, None)
    # Another shard of this run is not this shard either.
    assert provider.find_submission(ids=shard_ids(path, tag=TAG, shard=1), count=5, since=0).batch is None


def test_lost_create_answer_with_this_machines_clock_ahead_is_found_not_made_again(tmp_path, start_server):
    """The server's clock 7 minutes behind this machine's: its batch looks older than the run by the local clock."""
    server = start_server(
        clock_offset=-420, http_error_rate=1.0, http_error_kinds=["drop_after"], http_error_paths="^POST "
    )
    path = shard_file(tmp_path)
    provider = provider_of(server)
    batch = provider.create_from_file(path, ids=shard_ids(path, tag=TAG, shard=0), since=int(time.time()))
    assert [item.id for item in provider.list_batches()] == [batch.id]
    assert batch.created_at < time.time() - 400  # as the server's clock stamped it
