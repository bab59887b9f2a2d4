"""Reading the input table: each format, ids exactly as written, empty cells, and every error."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pandas as pd
import pytest

from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.files import table
from openai_batch_api.utils.files.table import id_text, iter_input_chunks, read_input_table

CSV_TEXT = 'id,content,extra\n1,hello,x\n001,"two\nlines",\n1.0,,z\n'


def write_frame(path: Path, frame: pd.DataFrame) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix in (".pkl", ".pickle"):
        frame.to_pickle(path)
    else:
        path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in frame.to_dict("records")))
    return path


def collect(path: Path, columns: list[str], chunk_rows: int = 2) -> dict[str, list]:
    merged: dict[str, list] = {name: [] for name in columns}
    for chunk in iter_input_chunks(path, columns=columns, chunk_rows=chunk_rows):
        assert len(chunk[columns[0]]) <= chunk_rows
        for name in columns:
            merged[name].extend(chunk[name])
    return merged


def test_read_input_table_csv_keeps_id_text_and_empty_cells():
    path = Path("input.csv")
    path.write_text(CSV_TEXT)
    table = read_input_table(path, id_column="id")
    assert table["id"].tolist() == ["1", "001", "1.0"]
    assert table["content"].tolist() == ["hello", "two\nlines", ""]
    assert table["extra"].tolist() == ["x", "", "z"]
    assert not table.isna().any().any()


def test_iter_input_chunks_csv_streams_text_cells():
    path = Path("input.csv")
    path.write_text(CSV_TEXT)
    assert collect(path, ["id", "content"]) == {"id": ["1", "001", "1.0"], "content": ["hello", "two\nlines", ""]}


def test_iter_input_chunks_csv_with_byte_order_mark():
    path = Path("input.csv")
    path.write_bytes(b"\xef\xbb\xbf" + CSV_TEXT.encode())
    assert collect(path, ["id"])["id"] == ["1", "001", "1.0"]


@pytest.mark.parametrize("name", ["input.parquet", "input.pkl", "input.pickle", "input.jsonl"])
def test_read_input_table_typed_formats_ids_through_str(name):
    path = write_frame(Path(name), pd.DataFrame({"id": [1, 2, 30], "content": ["a", None, "c"]}))
    table = read_input_table(path, id_column="id")
    assert table["id"].tolist() == ["1", "2", "30"]
    assert table["content"].tolist()[0] == "a"


@pytest.mark.parametrize("name", ["input.parquet", "input.pkl", "input.jsonl"])
def test_iter_input_chunks_typed_formats_keep_values(name):
    frame = pd.DataFrame({"id": [1, 2, 3], "content": ["a", None, "c"], "other": [0.5, 1.5, 2.5]})
    values = collect(write_frame(Path(name), frame), ["id", "content"])
    assert values["id"] == [1, 2, 3]
    assert values["content"][0] == "a" and values["content"][2] == "c"
    assert values["content"][1] is None or math.isnan(values["content"][1])
    assert [id_text(value) for value in values["id"]] == ["1", "2", "3"]


def test_iter_input_chunks_jsonl_missing_keys_are_none():
    path = Path("input.jsonl")
    path.write_text('{"id": "a", "content": "x"}\n\n{"id": "b"}\n')
    assert collect(path, ["id", "content"]) == {"id": ["a", "b"], "content": ["x", None]}


def test_id_text_of_missing_and_typed_values():
    assert [id_text(v) for v in ["07", 7, 7.0, None, float("nan"), pd.NA]] == ["07", "7", "7.0", "", "", ""]


def test_read_input_table_pickle_with_non_string_labels():
    path = write_frame(Path("input.pkl"), pd.DataFrame({0: [5, 6], "content": ["a", "b"]}))
    assert read_input_table(path, id_column="0")[0].tolist() == ["5", "6"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "input.xlsx",
            b"",
            "{path}: unknown input format (extension '.xlsx'); input_file must end in "
            ".csv, .pkl, .pickle, .parquet or .jsonl",
        ),
        (
            "input",
            b"",
            "{path}: unknown input format (no extension); input_file must end in .csv, .pkl, .pickle, .parquet or .jsonl",
        ),
        ("input.csv", b"", "{path}: the file is empty; a CSV input needs a header row naming its columns"),
        (
            "input.csv",
            b"id,content\n1,a,b\n",
            "{path}: cannot read it as CSV (CSV parse error: Expected 2 columns, got 3: 1,a,b); "
            "fix the file, or give it the extension of the format it is in",
        ),
        (
            "input.pkl",
            b"not a pickle",
            "{path}: cannot read it as pickle (invalid load key, 'n'.); "
            "fix the file, or give it the extension of the format it is in",
        ),
        (
            "input.parquet",
            b"id,content\n1,a\n",
            "{path}: cannot read it as Parquet (Parquet magic bytes not found in footer. Either the file is "
            "corrupted or this is not a parquet file.); fix the file, or give it the extension of the format it is in",
        ),
        (
            "input.jsonl",
            b'{"id": 1, "content": "a"}\n{"id": 2,\n',
            "{path}: line 2 is not valid JSON (unexpected end of data at column 10); "
            "each line must hold one JSON object",
        ),
        (
            "input.jsonl",
            b'[1, "a"]\n',
            "{path}: line 1 holds a JSON list, not an object; each line must hold one JSON object of column: value",
        ),
    ],
)
def test_iter_input_chunks_unreadable_file_error(name, content, expected):
    path = Path(name).resolve()
    path.write_bytes(content)
    with pytest.raises(BatchToolError) as caught:
        list(iter_input_chunks(path, columns=["id", "content"]))
    assert str(caught.value) == expected.format(path=path)


def test_read_input_table_pickle_of_other_object_error():
    path = Path("input.pkl").resolve()
    pd.to_pickle([1, 2], path)
    with pytest.raises(BatchToolError) as caught:
        read_input_table(path)
    assert str(caught.value) == (
        f"{path}: the pickle holds a list, not a pandas DataFrame; save the table with DataFrame.to_pickle"
    )


def test_iter_input_chunks_missing_file_error():
    path = Path("nowhere.csv").resolve()
    with pytest.raises(BatchToolError) as caught:
        iter_input_chunks(path, columns=["id"])
    assert str(caught.value) == f"{path}: no such input file; fix input_file in the config"


def test_read_input_table_folder_error():
    path = Path("table.csv").resolve()
    path.mkdir()
    with pytest.raises(BatchToolError) as caught:
        read_input_table(path)
    assert str(caught.value) == (
        f"{path}: holds no .parquet files; input_file must name a table file, or a folder or glob of Parquet files"
    )


@pytest.mark.parametrize("name", ["input.csv", "input.parquet", "input.pkl", "input.jsonl"])
def test_iter_input_chunks_missing_column_error(name):
    path = write_frame(Path(name).resolve(), pd.DataFrame({"id": ["a"], "content": ["x"], "Image": ["y"]}))
    if name.endswith(".csv"):
        path.write_text("id,content,Image\na,x,y\n")
    keys = {"id": "id_column", "contnet": "content_column", "image": "image_url_column"}
    with pytest.raises(BatchToolError) as caught:
        list(iter_input_chunks(path, columns=["id", "contnet", "image", "label"], column_keys=keys))
    assert str(caught.value) == (
        f"{path}: no column 'contnet' (content_column in the config, did you mean 'content'?); "
        "no column 'image' (image_url_column in the config, did you mean 'Image'?); no column 'label'; "
        "the file has columns 'id', 'content', 'Image': fix the config or rename the column"
    )


def test_iter_input_chunks_missing_column_suggests_no_loose_match():
    path = Path("input.csv").resolve()
    path.write_text("id,content,extra\n1,a,b\n")
    with pytest.raises(BatchToolError) as caught:
        list(iter_input_chunks(path, columns=["id", "text"], column_keys={"text": "content_column"}))
    assert str(caught.value) == (
        f"{path}: no column 'text' (content_column in the config); "
        "the file has columns 'id', 'content', 'extra': fix the config or rename the column"
    )


def test_read_input_table_missing_id_column_error():
    path = Path("input.csv").resolve()
    path.write_text("ID,content\n1,a\n")
    with pytest.raises(BatchToolError) as caught:
        read_input_table(path, id_column="id")
    assert str(caught.value) == (
        f"{path}: no column 'id' (id_column in the config, did you mean 'ID'?); "
        "the file has columns 'ID', 'content': fix the config or rename the column"
    )


def test_iter_input_chunks_csv_row_longer_than_a_block(monkeypatch):
    monkeypatch.setattr(table, "CSV_BLOCK_BYTES", 1024)
    contents = [f"row {i}" for i in range(300)]
    contents[200] = "long " * 2000  # 10 kB: past the first block size, met after rows were given out
    path = Path("input.csv")
    path.write_text("id,content\n" + "".join(f"{i},{text}\n" for i, text in enumerate(contents)))
    values = collect(path, ["id", "content"], chunk_rows=7)
    assert values == {"id": [str(i) for i in range(300)], "content": contents}
    assert read_input_table(path)["content"].tolist() == contents
