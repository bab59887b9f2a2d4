"""Tables in Azure Blob Storage: a run reads its input from az:// and writes its output there.

The store is Azurite, Microsoft's emulator, on loopback: `.ci/run` installs it with npm, and the tests
find `azurite-blob` on the PATH, in `node_modules/.bin` of the checkout, or at $AZURITE_BLOB. The run
reaches it through AZURE_STORAGE_CONNECTION_STRING, as the Azure CLI and SDKs do.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from openai_batch_api.utils.lifecycle import collation
from openai_batch_api.utils.state.run_store import load_run

WAIT = ("--wait", "--interval", "0.05")
CONTAINER = "tables"
# Azurite's account and key: the emulator's own, the same on every machine (Microsoft documents them).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CHECKOUT = Path(__file__).resolve().parent.parent


def azurite_blob() -> str | None:
    found = os.environ.get("AZURITE_BLOB") or shutil.which("azurite-blob")
    local = CHECKOUT / "node_modules" / ".bin" / "azurite-blob"
    return found or (str(local) if local.exists() else None)


pytestmark = pytest.mark.skipif(
    azurite_blob() is None, reason="Azurite is not installed: npm install azurite@3 (as .ci/run does)"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Container:
    """A container of the emulator, written and read through pyarrow's own Azure filesystem."""

    def __init__(self, port: int) -> None:
        self.store = pafs.AzureFileSystem(
            account_name=ACCOUNT,
            account_key=KEY,
            blob_storage_authority=f"127.0.0.1:{port}",
            blob_storage_scheme="http",
            dfs_storage_authority=f"127.0.0.1:{port}",
            dfs_storage_scheme="http",
        )

    def put(self, key: str, body: bytes) -> None:
        with self.store.open_output_stream(f"{CONTAINER}/{key}") as stream:
            stream.write(body)

    def get(self, key: str) -> bytes:
        with self.store.open_input_stream(f"{CONTAINER}/{key}") as stream:
            return stream.read()

    def keys(self, prefix: str) -> list[str]:
        infos = self.store.get_file_info(pafs.FileSelector(f"{CONTAINER}/{prefix}", recursive=True))
        return sorted(info.path.split("/", 1)[1] for info in infos if info.type == pafs.FileType.File)

    def put_table(self, key: str, frame: pd.DataFrame) -> None:
        buffer = io.BytesIO()
        if key.endswith(".csv"):
            buffer.write(frame.to_csv(index=False).encode())
        else:
            frame.to_parquet(buffer, index=False)
        self.put(key, buffer.getvalue())


@pytest.fixture
def azure(monkeypatch, tmp_path):
    """Azurite's blob service on loopback with an empty container, named by AZURE_STORAGE_CONNECTION_STRING."""
    port = free_port()
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
        endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
        connection = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={endpoint};"
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
        monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
        container = Container(port)
        container.store.create_dir(CONTAINER)
        yield container
    finally:
        server.terminate()
        server.wait(timeout=10)


def rows(count: int, start: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [str(i) for i in range(start, start + count)], "content": [f"message {i}" for i in range(count)]}
    )


def test_run_reads_its_input_from_azure_and_writes_its_output_there(project, azure, monkeypatch):
    azure.put_table("in/input.csv", rows(7))
    project.write_config(
        input_file=f"az://{CONTAINER}/in/input.csv", output_file=f"az://{CONTAINER}/out/output.parquet", batch_size=2
    )
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert "7 rows in 4 shards" in created.out
    assert project.run("status-jobs", *WAIT).exit_code == 0
    monkeypatch.setattr(collation, "COLLATE_CHUNK_ROWS", 3)
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    assert collated.out.startswith(f"collated 7 rows into az://{CONTAINER}/out/output.parquet: 7 ok\n")
    body = azure.get("out/output.parquet")
    table = pd.read_parquet(io.BytesIO(body))
    assert list(table["id"]) == [str(i) for i in range(1, 8)]
    assert set(table["api_status"]) == {"ok"}
    assert pq.ParquetFile(io.BytesIO(body)).num_row_groups == 2  # shards 1-2, then 3-4
    assert azure.keys("out/") == ["out/output.parquet"]  # the temporary blob is gone


def test_input_changed_in_azure_is_refused(project, azure):
    azure.put_table("in/input.csv", rows(3))
    project.write_config(input_file=f"az://{CONTAINER}/in/input.csv", output_file="output.csv")
    assert project.run("create-batch").exit_code == 0
    run_id = load_run(project.data_path).run_id
    azure.put_table("in/input.csv", rows(3, start=10))  # the same size: only the blob's ETag tells
    refused = project.run("collate-output")
    assert refused.exit_code == 1
    assert refused.err.startswith(
        f"error: {project.config_path}: the input table input.csv changed since run {run_id} took it up"
    )


def test_parquet_folder_in_azure_is_one_input_in_sorted_order(project, azure):
    azure.put_table("ds/part-1.parquet", rows(2, start=3))
    azure.put_table("ds/part-0.parquet", rows(2, start=1))
    azure.put("ds/_SUCCESS", b"")
    project.write_config(input_file=f"az://{CONTAINER}/ds/", output_file=f"az://{CONTAINER}/out/output.csv")
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", *WAIT).exit_code == 0
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    table = pd.read_csv(io.BytesIO(azure.get("out/output.csv")), dtype=str)
    assert list(table["id"]) == ["1", "2", "3", "4"]
    assert list(table["api_status"]) == ["ok"] * 4

