"""The references the tool is measured against, each run as its own process by million_rows.py.

- the floor: the least work that gives the same result: read the table with pyarrow, serialize the same
  request lines with orjson and write them; upload the files one after another; download the result
  files, parse them with orjson and join them onto the table by id with pandas.
- the naive approach: what users write by hand: pandas iterrows, json.dumps each line, upload one file
  after another, poll every batch, load every result into memory as a list, then join.

    python benchmarks/_references.py STEP SPEC.json

SPEC.json holds the paths, the server and the request shape; a step that makes files or batches writes
their ids to spec["record"].
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

# pandas and the openai SDK take seconds to import: only the steps that use them import them, so the
# floor's build pays for no more than pyarrow and orjson.

ENDPOINT = "/v1/chat/completions"


def client(spec: dict[str, Any]):
    import openai

    return openai.OpenAI(base_url=spec["base_url"], api_key="local")


def user_content(content: str, image: str | None, detail: str) -> Any:
    if not image:
        return content
    part = {"type": "image_url", "image_url": {"url": image, "detail": detail}}
    return [{"type": "text", "text": content}, part] if content.strip() else [part]


def request(spec: dict[str, Any], row_id: str, content: str, image: str | None) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": spec["prompt"]},
        {"role": "user", "content": user_content(content, image, spec["image_detail"])},
    ]
    body = {**spec["model_params"], "messages": messages}
    return {"custom_id": row_id, "method": "POST", "url": ENDPOINT, "body": body}


def shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:04d}.jsonl"


# -- the floor ---------------------------------------------------------------------------------


def read_arrow(path: Path):
    if path.suffix == ".csv":
        return pacsv.read_csv(path)
    if path.suffix == ".parquet":
        return pq.read_table(path)
    return pajson.read_json(path)


def floor_build(spec: dict[str, Any]) -> None:
    table = read_arrow(Path(spec["input_file"]))
    ids = table.column("id").to_pylist()
    contents = table.column("content").to_pylist()
    images = table.column("image").to_pylist()
    del table
    out = Path(spec["out_dir"])
    out.mkdir(parents=True)
    dumps, size = orjson.dumps, spec["batch_size"]
    for index, start in enumerate(range(0, len(ids), size), 1):
        part = slice(start, start + size)
        rows = zip(ids[part], contents[part], images[part], strict=True)
        lines = [dumps(request(spec, row_id, content, image)) for row_id, content, image in rows]
        shard_path(out, index).write_bytes(b"\n".join(lines) + b"\n")


def floor_create(spec: dict[str, Any]) -> None:
    """The floor's build, then its uploads and creations one after another, in one process."""
    floor_build(spec)
    upload_one_by_one(spec)


def upload_one_by_one(spec: dict[str, Any]) -> None:
    """Upload each shard, then create its batch, one after another."""
    files, batches = [], []
    with client(spec) as api:
        for path in sorted(Path(spec["out_dir"]).glob("shard-*.jsonl")):
            with open(path, "rb") as fh:
                file = api.files.create(file=(path.name, fh, "application/jsonl"), purpose="batch")
            batch = api.batches.create(input_file_id=file.id, endpoint=ENDPOINT, completion_window="24h")
            files.append(file.id)
            batches.append(batch.id)
    Path(spec["record"]).write_text(json.dumps({"files": files, "batches": batches}))


def floor_collate(spec: dict[str, Any]) -> None:
    import pandas as pd

    folder = Path(spec["out_dir"])
    folder.mkdir(parents=True)
    paths = []
    with client(spec) as api:
        for number, file_id in enumerate(spec["file_ids"]):
            path = folder / f"{number}.jsonl"
            with api.files.with_streaming_response.content(file_id) as response, open(path, "wb") as fh:
                for chunk in response.iter_bytes(1 << 20):
                    fh.write(chunk)
            paths.append(path)
    ids, outputs, finishes, prompt, completion, total, statuses = [], [], [], [], [], [], []
    loads = orjson.loads
    for path in paths:
        with open(path, "rb") as fh:
            for line in fh:
                record = loads(line)
                response = record["response"] or {}
                body = response.get("body") or {}
                ok = response.get("status_code") == 200
                choice = body["choices"][0] if ok else {}
                usage = body.get("usage") or {}
                ids.append(record["custom_id"])
                outputs.append((choice.get("message") or {}).get("content"))
                finishes.append(choice.get("finish_reason"))
                prompt.append(usage.get("prompt_tokens"))
                completion.append(usage.get("completion_tokens"))
                total.append(usage.get("total_tokens"))
                statuses.append("ok" if ok else "error")
    results = pd.DataFrame(
        {
            "custom_id": ids,
            "api_output": outputs,
            "api_status": statuses,
            "api_finish_reason": finishes,
            "api_prompt_tokens": pd.array(prompt, dtype="Int64"),
            "api_completion_tokens": pd.array(completion, dtype="Int64"),
            "api_total_tokens": pd.array(total, dtype="Int64"),
        }
    )
    table = read_arrow(Path(spec["input_file"])).to_pandas()
    joined = table.merge(results, left_on="id", right_on="custom_id", how="left").drop(columns="custom_id")
    joined.to_parquet(spec["output_file"], index=False)


# -- the naive approach ------------------------------------------------------------------------


def read_pandas(path: Path):
    import pandas as pd

    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True, dtype=False)


def naive_build(spec: dict[str, Any]) -> None:
    table = read_pandas(Path(spec["input_file"]))
    out = Path(spec["out_dir"])
    out.mkdir(parents=True)
    size, fh = spec["batch_size"], None
    for number, (_, row) in enumerate(table.iterrows()):
        if number % size == 0:
            if fh:
                fh.close()
            fh = open(shard_path(out, number // size + 1), "w", encoding="utf-8")
        image = row["image"] if isinstance(row["image"], str) else None
        fh.write(json.dumps(request(spec, str(row["id"]), row["content"], image)) + "\n")
    fh.close()


def naive_poll(spec: dict[str, Any]) -> None:
    with client(spec) as api:
        for batch_id in spec["batch_ids"]:
            api.batches.retrieve(batch_id)


def naive_collate(spec: dict[str, Any]) -> None:
    import pandas as pd

    results = []
    with client(spec) as api:
        for file_id in spec["file_ids"]:
            for line in api.files.content(file_id).text.splitlines():
                record = json.loads(line)
                body = (record["response"] or {}).get("body") or {}
                choice = (body.get("choices") or [{}])[0]
                results.append(
                    {
                        "custom_id": record["custom_id"],
                        "api_output": (choice.get("message") or {}).get("content"),
                        "api_finish_reason": choice.get("finish_reason"),
                        "api_prompt_tokens": (body.get("usage") or {}).get("prompt_tokens"),
                        "api_completion_tokens": (body.get("usage") or {}).get("completion_tokens"),
                    }
                )
    table = read_pandas(Path(spec["input_file"]))
    joined = table.merge(pd.DataFrame(results), left_on="id", right_on="custom_id", how="left")
    joined.to_parquet(spec["output_file"], index=False)


def delete_one_by_one(spec: dict[str, Any]) -> None:
    with client(spec) as api:
        for file_id in spec["file_ids"]:
            api.files.delete(file_id)


STEPS = {
    "floor_build": floor_build,
    "floor_create": floor_create,
    "upload_one_by_one": upload_one_by_one,
    "floor_collate": floor_collate,
    "naive_build": naive_build,
    "naive_poll": naive_poll,
    "naive_collate": naive_collate,
    "delete_one_by_one": delete_one_by_one,
}


if __name__ == "__main__":
    step, spec_path = sys.argv[1:3]
    STEPS[step](json.loads(Path(spec_path).read_text()))
