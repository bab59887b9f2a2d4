"""Request lines and shard files: their exact bytes, the shard limits, images, retries, every input error."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import orjson
import pandas as pd
import pytest

from openai_batch_api.utils.config import Config, validate_config_mapping
from openai_batch_api.utils.costs.tokens import estimate_body_tokens
from openai_batch_api.utils.endpoints import CHAT as ENDPOINT
from openai_batch_api.utils.errors import BatchToolError
from openai_batch_api.utils.requests import ShardPlan, build_request_body, repeated_ids, write_shards
from openai_batch_api.utils.requests.problems import short

PNG = b"\x89PNG\r\n\x1a\n fake image bytes"
JPEG = b"\xff\xd8\xff\xe0 fake jpeg bytes"
MODEL_PARAMS = {"model": "gpt-4o-mini", "temperature": 0, "response_format": {"type": "json_object"}}


def make_config(input_name: str = "input.csv", **overrides) -> Config:
    raw = {
        "input_file": input_name,
        "id_column": "id",
        "content_column": "content",
        "prompt": "Label the text.",
        "model_params": MODEL_PARAMS,
        "output_file": "output.csv",
        "data_path": "data",
        **overrides,
    }
    return validate_config_mapping(raw, path=Path("config.yaml").resolve())


def write_csv(rows: list[str], header: str = "id,content,image") -> Path:
    path = Path("input.csv").resolve()
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def read_lines(plan: ShardPlan) -> list[dict]:
    return [orjson.loads(line) for shard in plan.shards for line in shard.path.read_bytes().splitlines()]


def out_dir() -> Path:
    return Path("data/tasks/attempt-1").resolve()


def shard_error(config: Config, **kwargs) -> str:
    with pytest.raises(BatchToolError) as caught:
        write_shards(config, out_dir=out_dir(), **kwargs)
    return str(caught.value)


def test_build_request_body_text_only():
    body = build_request_body(
        prompt="P", content="hello", image_url=None, image_detail="low", model_params={"model": "m", "n": 1}
    )
    assert body == {
        "model": "m",
        "n": 1,
        "messages": [{"role": "system", "content": "P"}, {"role": "user", "content": "hello"}],
    }


def test_build_request_body_image_with_and_without_text():
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}}
    with_text = build_request_body(
        prompt="P", content="look", image_url="https://example.com/a.png", image_detail="high", model_params={"model": "m"}
    )
    assert with_text["messages"][1]["content"] == [{"type": "text", "text": "look"}, image]
    without_text = build_request_body(
        prompt="P", content="", image_url="https://example.com/a.png", image_detail="high", model_params={"model": "m"}
    )
    assert without_text["messages"][1]["content"] == [image]


def test_write_shards_lines_are_the_request_bodies():
    write_csv(["1,hello,", '001,"two\nlines, ünïcode",', "1.0,with image,https://example.com/a.png"])
    config = make_config(image_url_column="image")
    plan = write_shards(config, out_dir=out_dir())
    assert [line["custom_id"] for line in read_lines(plan)] == ["1", "001", "1.0"]
    contents = ["hello", "two\nlines, ünïcode", "with image"]
    images = [None, None, "https://example.com/a.png"]
    for line, content, image in zip(read_lines(plan), contents, images, strict=True):
        assert line["method"] == "POST" and line["url"] == ENDPOINT
        assert line["body"] == build_request_body(
            prompt="Label the text.", content=content, image_url=image, image_detail="low", model_params=MODEL_PARAMS
        )
    raw = plan.shards[0].path.read_bytes()
    assert raw.startswith(b'{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{"model"')
    assert "ünïcode".encode() in raw  # UTF-8, not \\u escapes


def test_write_shards_plan_describes_the_files():
    write_csv([f"r{i},text {i}," for i in range(5)])
    plan = write_shards(make_config(batch_size=2), out_dir=out_dir())
    assert plan.rows == 5
    assert [(s.index, s.rows, s.first_id, s.last_id) for s in plan.shards] == [
        (1, 2, "r0", "r1"),
        (2, 2, "r2", "r3"),
        (3, 1, "r4", "r4"),
    ]
    assert [s.path.name for s in plan.shards] == ["shard-0001.jsonl", "shard-0002.jsonl", "shard-0003.jsonl"]
    for shard in plan.shards:
        data = shard.path.read_bytes()
        assert shard.path.parent == out_dir()
        assert shard.bytes == len(data)
        assert shard.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(os.listdir(out_dir().parent)) == ["attempt-1"]


def test_write_shards_never_more_than_the_request_limit():
    write_csv([f"r{i},text," for i in range(7)])
    plan = write_shards(make_config(max_requests_per_batch=3), out_dir=out_dir())
    assert [s.rows for s in plan.shards] == [3, 3, 1]


def test_write_shards_batch_size_below_the_request_limit_wins():
    write_csv([f"r{i},text," for i in range(7)])
    plan = write_shards(make_config(batch_size=2, max_requests_per_batch=3), out_dir=out_dir())
    assert [s.rows for s in plan.shards] == [2, 2, 2, 1]


def test_write_shards_closes_a_shard_before_the_configured_byte_limit():
    write_csv([f"r{i},{'x' * 50}," for i in range(10)])
    whole = write_shards(make_config(), out_dir=Path("whole").resolve()).shards[0]
    line = len(whole.path.read_bytes().splitlines(keepends=True)[0])
    plan = write_shards(make_config(max_batch_bytes=line * 4), out_dir=out_dir())
    assert [s.rows for s in plan.shards] == [4, 4, 2]


def test_write_shards_closes_a_shard_before_the_byte_limit():
    write_csv([f"r{i},{'x' * (10 + i * 7)}," for i in range(30)])
    unlimited = write_shards(make_config(), out_dir=Path("whole").resolve())
    sizes = [len(line) for line in unlimited.shards[0].path.read_bytes().splitlines(keepends=True)]
    limit = max(sizes) * 3 + 5
    plan = write_shards(make_config(), out_dir=out_dir(), max_file_bytes=limit)
    assert len(plan.shards) > 1
    assert sum(s.rows for s in plan.shards) == 30
    start = 0
    for shard in plan.shards:
        assert shard.bytes <= limit
        end = start + shard.rows
        assert shard.bytes == sum(sizes[start:end])
        if end < len(sizes):  # closed only because the next line would not fit
            assert shard.bytes + sizes[end] > limit
        start = end


def test_write_shards_byte_limit_counts_utf8_bytes_not_characters():
    write_csv([f"r{i},{'é' * 50}," for i in range(6)])
    whole = write_shards(make_config(), out_dir=Path("whole").resolve())
    line = whole.shards[0].path.read_bytes().splitlines(keepends=True)[0]
    assert len(line) == len(line.decode()) + 50  # each é is two bytes in UTF-8
    # Two lines are 100 characters less than two lines' bytes: counted in characters, two would fit.
    plan = write_shards(make_config(), out_dir=out_dir(), max_file_bytes=len(line) * 2 - 1)
    assert [s.rows for s in plan.shards] == [1] * 6
    assert all(s.bytes == len(s.path.read_bytes()) == len(line) for s in plan.shards)


def test_write_shards_local_images_count_towards_the_byte_limit():
    Path("images").mkdir()
    Path("images/a.png").write_bytes(PNG * 100)
    write_csv([f"r{i},,images/a.png" for i in range(4)])
    line_bytes = len(
        write_shards(make_config(image_url_column="image"), out_dir=Path("one").resolve())
        .shards[0]
        .path.read_bytes()
        .splitlines(keepends=True)[0]
    )
    assert line_bytes > len(PNG) * 100
    plan = write_shards(make_config(image_url_column="image"), out_dir=out_dir(), max_file_bytes=line_bytes * 2)
    assert [s.rows for s in plan.shards] == [2, 2]


def test_write_shards_images_url_data_url_and_local_files():
    Path("pics").mkdir()
    Path("pics/cat.PNG").write_bytes(PNG)
    absolute = Path("pics/dog.jpeg").resolve()
    absolute.write_bytes(JPEG)
    data_url = "data:image/gif;base64," + base64.b64encode(b"gif").decode()
    write_csv(["a,one,https://example.com/a.png?s=1", f'b,,"{data_url}"', "c,three,pics/cat.PNG", f"d,four,{absolute}"])
    plan = write_shards(make_config(image_url_column="image", image_detail="auto"), out_dir=out_dir())
    urls = [line["body"]["messages"][1]["content"][-1]["image_url"] for line in read_lines(plan)]
    assert urls == [
        {"url": "https://example.com/a.png?s=1", "detail": "auto"},
        {"url": data_url, "detail": "auto"},
        {"url": "data:image/png;base64," + base64.b64encode(PNG).decode(), "detail": "auto"},
        {"url": "data:image/jpeg;base64," + base64.b64encode(JPEG).decode(), "detail": "auto"},
    ]
    assert read_lines(plan)[1]["body"]["messages"][1]["content"][0]["type"] == "image_url"  # no empty text part


def test_write_shards_missing_cells_are_never_nan():
    frame = pd.DataFrame({"id": [1, 2], "content": [None, "text"], "image": ["https://example.com/a.png", float("nan")]})
    frame.to_pickle("input.pkl")
    plan = write_shards(make_config("input.pkl", image_url_column="image"), out_dir=out_dir())
    raw = b"".join(shard.path.read_bytes() for shard in plan.shards)
    assert b"NaN" not in raw and b"nan" not in raw and b"null" not in raw
    first, second = read_lines(plan)
    assert first["custom_id"] == "1"
    assert first["body"]["messages"][1]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}
    ]
    assert second["body"]["messages"][1]["content"] == "text"


@pytest.mark.parametrize("name", ["input.parquet", "input.jsonl", "input.pkl"])
def test_write_shards_typed_formats_ids_as_text(name):
    frame = pd.DataFrame({"id": [7, 10, 3], "content": ["a", "b", "c"]})
    path = Path(name)
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    elif name.endswith(".pkl"):
        frame.to_pickle(path)
    else:
        path.write_text('{"id": 7, "content": "a"}\n{"id": 10, "content": "b"}\n{"id": 3, "content": "c"}\n')
    plan = write_shards(make_config(name), out_dir=out_dir())
    assert [line["custom_id"] for line in read_lines(plan)] == ["7", "10", "3"]


def test_write_shards_only_ids_in_input_order():
    write_csv([f"r{i},text {i}," for i in range(6)])
    plan = write_shards(make_config(), out_dir=out_dir(), only_ids=["r4", "r1", "r5"])
    assert plan.rows == 3
    assert [line["custom_id"] for line in read_lines(plan)] == ["r1", "r4", "r5"]


def test_write_shards_only_ids_not_in_input_error():
    path = write_csv(["r1,text,", "r2,text,"])
    assert shard_error(make_config(), only_ids=["r2", "gone", "lost"]) == (
        f"{path}: 2 of the ids to submit are not in the input ('gone', 'lost'); "
        "was the input file changed since the run began?"
    )


def test_write_shards_token_estimate_of_small_shards_is_exact():
    write_csv(["a,short text,", "b,a somewhat longer text with more words in it,https://example.com/a.png"])
    config = make_config(image_url_column="image")
    plan = write_shards(config, out_dir=out_dir())
    exact = sum(estimate_body_tokens(line["body"]) for line in read_lines(plan))
    assert plan.prompt_tokens == plan.shards[0].prompt_tokens == exact
    assert plan.token_method == "tiktoken o200k_base"


def test_write_shards_token_estimate_extrapolates_beyond_the_sample():
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    write_csv([f"r{i},{' '.join(words[j % 6] for j in range(i % 40))} end," for i in range(1000)])
    plan = write_shards(make_config(), out_dir=out_dir())
    exact = sum(estimate_body_tokens(line["body"]) for line in read_lines(plan))
    assert abs(plan.prompt_tokens - exact) / exact < 0.01
    assert plan.token_method == "tiktoken o200k_base; content beyond a sample of each shard extrapolated by length"


def test_write_shards_error_leaves_nothing_behind():
    path = write_csv(["a,text,", "a,more text,"] + [f"r{i},text," for i in range(50)])
    assert shard_error(make_config(batch_size=5)) == f"{path}: 1 id repeated in 2 rows (rows 1 and 2: id 'a')"
    assert os.listdir(out_dir().parent) == []


def test_write_shards_repeated_ids_found_with_hashes_spilled_to_disk(monkeypatch):
    # Past SPILL_BYTES of hashes (a million rows), they go to bucket files beside the shards and each
    # bucket is sorted on its own: here at once.
    monkeypatch.setattr(repeated_ids, "SPILL_BYTES", 48)
    rows = [f"r{i},text," for i in range(40)]
    rows[35] = "r3,text,"
    rows[38] = "r20,text,"
    path = write_csv(rows)
    with pytest.raises(BatchToolError) as raised:
        write_shards(make_config(), out_dir=out_dir())
    assert str(raised.value) == (
        f"{path}: 2 problems: 2 ids repeated in 4 rows (rows 4 and 36: id 'r3'; rows 21 and 39: id 'r20')"
    )
    assert os.listdir(out_dir().parent) == []


def test_write_shards_spilled_hashes_leave_nothing_behind(monkeypatch):
    monkeypatch.setattr(repeated_ids, "SPILL_BYTES", 48)
    write_csv([f"r{i},text," for i in range(40)])
    plan = write_shards(make_config(batch_size=15), out_dir=out_dir())
    assert [shard.rows for shard in plan.shards] == [15, 15, 10]
    assert sorted(os.listdir(out_dir().parent)) == ["attempt-1"]
    assert sorted(os.listdir(out_dir())) == ["shard-0001.jsonl", "shard-0002.jsonl", "shard-0003.jsonl"]


def test_write_shards_existing_out_dir_error():
    write_csv(["a,text,"])
    out_dir().mkdir(parents=True)
    assert shard_error(make_config()) == f"{out_dir()}: already exists; shard files are written into a new folder"


def test_write_shards_no_rows_error():
    path = write_csv([])
    assert shard_error(make_config()) == f"{path}: the input has no rows; add the rows to send"


def test_write_shards_several_problems_in_one_message():
    path = write_csv(
        [
            "a1,text,",
            "a2,text,",
            "7,text,",
            "7,text,",
            "a5,text,",
            "a6,text,",
            "a7,text,",
            "a8,text,",
            "7,text,",
            "a10,text,",
            "a11,text,",
            "a12,,",
            "a13,text,",
            "a14,text,",
            "a15,text,ftp://x",
        ]
    )
    assert shard_error(make_config(image_url_column="image")) == (
        f"{path}: 3 problems: 1 id repeated in 3 rows (rows 3, 4 and 9: id '7'); row 12 (id 'a12') has neither content "
        "nor image; row 15 (id 'a15'): image 'ftp://x' is not an http(s) URL, data URL or existing file"
    )


def test_write_shards_many_problems_list_the_first_rows_of_each_kind():
    rows = [f"d{i % 5},text," for i in range(12)] + [f"e{i},  ," for i in range(5)] + [",text,", " ,text,"]
    path = write_csv(rows)
    assert shard_error(make_config()) == (
        f"{path}: 12 problems: 5 ids repeated in 12 rows (rows 1, 6 and 11: id 'd0'; rows 2, 7 and 12: id 'd1'; "
        "rows 3 and 8: id 'd2'; 2 more repeated ids); row 18 has an empty id; row 19 has an empty id; "
        "row 13 (id 'e0') has neither content nor image; row 14 (id 'e1') has neither content nor image; "
        "row 15 (id 'e2') has neither content nor image; 2 more rows with neither content nor image"
    )


def test_write_shards_content_not_text_error():
    path = Path("input.jsonl").resolve()
    path.write_text(
        '{"id": "a", "content": 42}\n{"id": "b", "content": ["x"]}\n{"id": "c", "content": "fine"}\n'
        '{"id": "d", "content": {"k": 1}}\n{"id": "e", "content": true}\n'
    )
    assert shard_error(make_config("input.jsonl")) == (
        f"{path}: 4 problems: row 1 (id 'a'): content 42 is int, not text; row 2 (id 'b'): content ['x'] is list, "
        "not text; row 4 (id 'd'): content {'k': 1} is dict, not text; 1 more row whose content is not text"
    )


def test_write_shards_bad_image_errors():
    Path("notes.txt").write_text("not an image")
    path = write_csv(
        ["a,t,ftp://example.com/a.png", "b,t,https://bad host.example.com/a.png", 'c,t,"data:image/png;base64,@@@"', "d,t,notes.txt"],
    )
    assert shard_error(make_config(image_url_column="image")) == (
        f"{path}: 4 problems: row 1 (id 'a'): image 'ftp://example.com/a.png' is not an http(s) URL, data URL or "
        "existing file; row 2 (id 'b'): image 'https://bad host.example.com/a.png' is not a well-formed URL; row 3 (id 'c'): "
        "image 'data:image/png;base64,@@@' is not a base64 data URL of a png, jpeg, gif or webp image; "
        "1 more row with an image that cannot be sent"
    )


def test_write_shards_image_media_type_from_its_bytes():
    """A JPEG named .png is sent as the JPEG it is; GIF and WEBP are known by their first bytes too."""
    gif, webp = b"GIF89a fake gif", b"RIFF\x10\x00\x00\x00WEBPVP8 fake"
    for name, data in (("a.png", JPEG), ("b.gif", gif), ("c.webp", webp)):
        Path(name).write_bytes(data)
    write_csv(["a,t,a.png", "b,t,b.gif", "c,t,c.webp"])
    plan = write_shards(make_config(image_url_column="image"), out_dir=out_dir())
    urls = [line["body"]["messages"][1]["content"][-1]["image_url"]["url"] for line in read_lines(plan)]
    assert urls == [
        f"data:{media};base64,{base64.b64encode(data).decode()}"
        for media, data in (("image/jpeg", JPEG), ("image/gif", gif), ("image/webp", webp))
    ]


def test_write_shards_file_that_is_not_an_image_error():
    Path("secret.env").write_text("OPENAI_API_KEY=sk-not-an-image\n")
    Path("secret.png").write_text("OPENAI_API_KEY=sk-not-an-image\n")
    Path("empty.jpg").write_bytes(b"")
    Path("ok.png").write_bytes(PNG)
    path = write_csv(["a,t,secret.png", "b,t,ok.png", "c,t,empty.jpg"])
    assert shard_error(make_config(image_url_column="image")) == (
        f"{path}: 2 problems: row 1 (id 'a'): image 'secret.png' does not hold a png, jpeg, gif or webp image "
        "(its first bytes are not one's); point the cell at the image file; row 3 (id 'c'): image 'empty.jpg' does "
        "not hold a png, jpeg, gif or webp image (its first bytes are not one's); point the cell at the image file"
    )
    assert not out_dir().exists() or not any(out_dir().iterdir())


def test_write_shards_symlinked_image_outside_the_table_folder_error(tmp_path):
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    (elsewhere / "photo.png").write_bytes(PNG)
    Path("inside.png").write_bytes(PNG)
    Path("outside.png").symlink_to(elsewhere / "photo.png")
    Path("linked.png").symlink_to("inside.png")  # a link within the folder is the user's own layout
    path = write_csv(["a,t,outside.png", "b,t,linked.png"])
    assert shard_error(make_config(image_url_column="image")) == (
        f"{path}: row 1 (id 'a'): image 'outside.png' is a symbolic link to a file outside the table's folder "
        f"({path.parent}); copy the image into that folder"
    )


def test_write_shards_image_of_unsupported_type_error():
    Path("notes.txt").write_text("not an image")
    path = write_csv(["d,t,notes.txt"])
    assert shard_error(make_config(image_url_column="image")) == (
        f"{path}: row 1 (id 'd'): image 'notes.txt' is not a png, jpeg, gif or webp file"
    )


def test_write_shards_request_larger_than_a_file_error():
    path = write_csv(["a,short,", f"b,{'x' * 500},"])
    assert shard_error(make_config(), max_file_bytes=400) == (
        f"{path}: row 2 (id 'b'): its request is 739 bytes, more than a batch file may hold (400); "
        "use a smaller image or shorter content"
    )


def test_write_shards_missing_column_error_names_the_config_key():
    path = write_csv(["a,text,"], header="id,text,image")
    assert shard_error(make_config()) == (
        f"{path}: no column 'content' (content_column in the config); the file has columns 'id', 'text', 'image': "
        "fix the config or rename the column"
    )


def test_write_shards_content_not_unicode_error():
    pd.DataFrame({"id": ["a", "b"], "content": ["fine", "broken \ud800 text"]}, dtype=object).to_pickle("input.pkl")
    path = Path("input.pkl").resolve()
    assert (
        shard_error(make_config("input.pkl")) == f"{path}: row 2 (id 'b'): its id or content is not valid Unicode text"
    )


def test_write_shards_unreadable_row_after_written_shards_leaves_nothing(monkeypatch):
    from openai_batch_api.utils.files import table

    monkeypatch.setattr(table, "CSV_BLOCK_BYTES", 4096)
    path = write_csv([f"r{i},{'text ' * 10}," for i in range(300)] + ["bad,row,with,too many"])
    message = shard_error(make_config(batch_size=50))
    assert message.startswith(f"{path}: cannot read it as CSV (CSV parse error: Expected 3 columns, got 4")
    assert os.listdir(out_dir().parent) == []


def test_write_shards_only_ids_checks_every_row():
    path = write_csv(["r1,text,", "r2,,", "r3,text,"])
    assert shard_error(make_config(), only_ids=["r2", "r3"]) == f"{path}: row 2 (id 'r2') has neither content nor image"
    assert shard_error(make_config(), only_ids=["r3"]) == f"{path}: row 2 (id 'r2') has neither content nor image"


def test_write_shards_image_through_a_symlinked_folder_outside_the_table_folder_error(tmp_path):
    elsewhere = tmp_path.parent / f"{tmp_path.name}-outside"
    elsewhere.mkdir()
    (elsewhere / "secret.png").write_bytes(PNG)
    Path("imgs").symlink_to(elsewhere)
    Path("own").mkdir()
    (Path("own") / "photo.png").write_bytes(PNG)
    Path("pics").symlink_to("own")  # a linked folder within the table's folder is the user's own layout
    path = write_csv(["a,t,imgs/secret.png", "b,t,pics/photo.png", f"c,t,{elsewhere / 'secret.png'}"])
    assert shard_error(make_config(image_url_column="image")) == (
        f"{path}: 2 problems: row 1 (id 'a'): image 'imgs/secret.png' leads through a symbolically linked folder "
        f"to a file outside the table's folder ({path.parent}); copy the image into that folder; row 3 (id 'c'): "
        f"image {short(str(elsewhere / 'secret.png'))} is outside the table's folder ({path.parent}); copy the image "
        "into that folder"
    )
    assert not out_dir().exists() or not any(out_dir().iterdir())
