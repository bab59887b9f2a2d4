"""Tables in object storage and partitioned Parquet: a run reads its input from S3 and writes its output there.

The store is moto's S3 server on loopback, started by the tests and reached over HTTP through
AWS_ENDPOINT_URL, as an S3-compatible store is in use.
"""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openai_batch_api.utils.errors import ConfigError
from openai_batch_api.utils.files.table import iter_input_chunks, iter_input_frames, read_input_table
from openai_batch_api.utils.lifecycle import collation
from openai_batch_api.utils.state.run_store import load_run

WAIT = ("--wait", "--interval", "0.05")
BUCKET = "tables"


@pytest.fixture
def s3(monkeypatch):
    """An S3 server on loopback with an empty bucket; a boto3 client of it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # The server keeps its buckets for the whole process: each test starts from none.
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")).close()
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


def keys(s3, prefix: str) -> list[str]:
    """The objects under `prefix`, less the empty folder marker pyarrow leaves when it deletes an object."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in listed if item["Key"] != prefix)


def put_table(s3, key: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    if key.endswith(".csv"):
        buffer.write(frame.to_csv(index=False).encode())
    else:
        frame.to_parquet(buffer, index=False)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())


def rows(count: int, start: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [str(i) for i in range(start, start + count)], "content": [f"message {i}" for i in range(count)]}
    )


def test_run_reads_its_input_from_s3_and_writes_its_output_there(project, s3, monkeypatch):
    put_table(s3, "in/input.csv", rows(7))
    project.write_config(
        input_file=f"s3://{BUCKET}/in/input.csv", output_file=f"s3://{BUCKET}/out/output.parquet", batch_size=2
    )
    created = project.run("create-batch")
    assert created.exit_code == 0, created.err
    assert created.out.startswith("run run-")
    assert "7 rows in 4 shards" in created.out
    assert project.run("status-jobs", *WAIT).exit_code == 0
    monkeypatch.setattr(collation, "COLLATE_CHUNK_ROWS", 3)
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    assert collated.out.startswith(f"collated 7 rows into s3://{BUCKET}/out/output.parquet: 7 ok\n")
    body = s3.get_object(Bucket=BUCKET, Key="out/output.parquet")["Body"].read()
    table = pd.read_parquet(io.BytesIO(body))
    assert list(table["id"]) == [str(i) for i in range(1, 8)]
    assert set(table["api_status"]) == {"ok"}
    assert pq.ParquetFile(io.BytesIO(body)).num_row_groups == 2  # shards 1-2, then 3-4
    assert keys(s3, "out/") == ["out/output.parquet"]  # the temporary key is gone


def test_input_changed_in_s3_is_refused(project, s3):
    put_table(s3, "in/input.csv", rows(3))
    project.write_config(input_file=f"s3://{BUCKET}/in/input.csv", output_file="output.csv")
    assert project.run("create-batch").exit_code == 0
    run_id = load_run(project.data_path).run_id
    put_table(s3, "in/input.csv", rows(3, start=10))
    refused = project.run("collate-output")
    assert refused.exit_code == 1
    assert refused.err == (
        f"error: {project.config_path}: the input table input.csv changed since run {run_id} took it up in "
        f"{project.data_path}: the cells of input.csv; run create-batch to continue the run with the table as it "
        "is now (only its new and edited rows are sent), or restore the table\n"
    )


def test_collate_failing_midway_leaves_the_old_object_in_s3(project, s3, monkeypatch):
    put_table(s3, "in/input.csv", rows(6))
    output = f"s3://{BUCKET}/out/output.csv"
    project.write_config(input_file=f"s3://{BUCKET}/in/input.csv", output_file=output, batch_size=2)
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", *WAIT).exit_code == 0
    assert project.run("collate-output").exit_code == 0
    before = s3.get_object(Bucket=BUCKET, Key="out/output.csv")["Body"].read()
    last = max(load_run(project.data_path).shards, key=lambda s: s.index)
    collation.result_file_path(project.data_path, last, "output").write_bytes(b"not json\n")
    monkeypatch.setattr(collation, "COLLATE_CHUNK_ROWS", 2)
    assert project.run("collate-output").exit_code == 1
    assert s3.get_object(Bucket=BUCKET, Key="out/output.csv")["Body"].read() == before
    assert keys(s3, "out/") == ["out/output.csv"]


def test_parquet_folder_in_s3_is_one_input_in_sorted_order(project, s3):
    put_table(s3, "ds/part-1.parquet", rows(2, start=3))
    put_table(s3, "ds/part-0.parquet", rows(2, start=1))
    s3.put_object(Bucket=BUCKET, Key="ds/_SUCCESS", Body=b"")
    project.write_config(input_file=f"s3://{BUCKET}/ds/", output_file="output.csv")
    assert project.run("create-batch").exit_code == 0
    assert project.run("status-jobs", *WAIT).exit_code == 0
    collated = project.run("collate-output")
    assert collated.exit_code == 0, collated.err
    table = pd.read_csv(project.root / "output.csv", dtype=str)
    assert list(table["id"]) == ["1", "2", "3", "4"]
    assert list(table["api_status"]) == ["ok"] * 4


def test_missing_object_in_s3_error(project, s3):
    project.write_config(input_file=f"s3://{BUCKET}/in/missing.csv")
    missing = project.run("create-batch", "--dry-run")
    assert missing.exit_code == 1
    assert missing.err == f"error: s3://{BUCKET}/in/missing.csv: no such input file; fix input_file in the config\n"


def test_data_path_in_object_storage_config_error(project):
    project.write_rows(2)
    project.write_config(data_path="s3://tables/run")
    refused = project.run("create-batch")
    assert refused.exit_code == 1
    assert refused.err == (
        f"error: {project.config_path}: 'data_path' must be a local folder, got 's3://tables/run': the run's state "
        "and locks need a real filesystem (input_file and output_file may be URLs)\n"
    )
    with pytest.raises(ConfigError):
        from openai_batch_api import Run

        Run.from_mapping({**project.config, "data_path": "gs://bucket/run"})


def write_partitioned(root: Path) -> None:
    """A hive-partitioned dataset written out of order, with files that are not part of it."""
    for year, start in (("2025", 3), ("2024", 1)):
        folder = root / f"year={year}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(rows(2, start=start), preserve_index=False), folder / "part-0.parquet")
    (root / "_SUCCESS").write_bytes(b"")
    (root / "year=2024" / ".part-1.parquet.crc").write_bytes(b"")


@pytest.mark.parametrize("name", ["dataset", "dataset/*/*.parquet"])
def test_parquet_folder_or_glob_is_one_table_in_sorted_order(name):
    write_partitioned(Path("dataset"))
    path = Path.cwd() / name
    table = read_input_table(path, id_column="id")
    assert list(table["id"]) == ["1", "2", "3", "4"]
    assert list(table["year"]) == [2024, 2024, 2025, 2025]
    chunks = list(iter_input_chunks(path, columns=["id", "content"], chunk_rows=3))
    assert [chunk["id"] for chunk in chunks] == [["1", "2"], ["3", "4"]]
    frames = list(iter_input_frames(path, id_column="id", sizes=[3]))
    assert [list(frame["id"]) for frame in frames] == [["1", "2", "3"], ["4"]]


def test_folder_without_parquet_files_error():
    Path("empty").mkdir()
    (Path("empty") / "notes.txt").write_text("x")
    with pytest.raises(Exception) as caught:
        read_input_table(Path("empty").resolve())
    assert str(caught.value) == (
        f"{Path('empty').resolve()}: holds no .parquet files; input_file must name a table file, or a folder or "
        "glob of Parquet files"
    )


def test_az_url_without_an_account_is_a_config_error(project, monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    project.write_config(input_file="az://tables/in/input.csv")
    refused = project.run("create-batch", "--dry-run")
    assert refused.exit_code == 1
    assert refused.err == (
        "error: az://tables/in/input.csv: set AZURE_STORAGE_ACCOUNT_NAME (or AZURE_STORAGE_CONNECTION_STRING) "
        "to the storage account of an az:// URL, or give the URL as abfs://container@account.dfs.core.windows.net/key\n"
    )
