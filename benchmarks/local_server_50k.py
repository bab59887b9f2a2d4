"""How long the local backend takes over a 50,000-line chat batch with the built-in responder.

Measures upload to completed (upload, validation with token counts, answering every line, writing
the output file) through the official SDK over loopback, and prints the time and lines per second.

    python benchmarks/local_server_50k.py [--lines 50000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import openai

from openai_batch_api.local_server import LocalServer

ENDPOINT = "/v1/chat/completions"


def input_file(lines: int) -> bytes:
    rows = []
    for i in range(lines):
        body = {
            "model": "gpt-4o-mini",
            "temperature": 0,
            "max_tokens": 50,
            "messages": [
                {"role": "system", "content": "Classify the sentiment of the review as positive, negative or neutral."},
                {
                    "role": "user",
                    "content": f"Review {i}: the product arrived on time and works as described, "
                    f"though the box was slightly damaged in transit.",
                },
            ],
        }
        rows.append(json.dumps({"custom_id": f"row-{i}", "method": "POST", "url": ENDPOINT, "body": body}))
    return ("\n".join(rows) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000, help="request lines in the batch (default 50000)")
    args = parser.parse_args()
    data = input_file(args.lines)
    with tempfile.TemporaryDirectory() as state, LocalServer(state_dir=Path(state)) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as client:
            started = time.perf_counter()
            cpu_started = time.process_time()
            file = client.files.create(file=("bench.jsonl", data), purpose="batch")
            uploaded = time.perf_counter()
            batch = client.batches.create(input_file_id=file.id, endpoint=ENDPOINT, completion_window="24h")
            while batch.status not in ("completed", "failed", "expired", "cancelled"):
                time.sleep(0.05)
                batch = client.batches.retrieve(batch.id)
            done = time.perf_counter()
            cpu = time.process_time() - cpu_started
            output = client.files.content(batch.output_file_id).content
            downloaded = time.perf_counter()
    assert batch.status == "completed", batch.errors
    assert batch.request_counts.completed == args.lines
    elapsed = done - started
    print(f"{args.lines} lines ({len(data) / 1e6:.1f} MB in, {len(output) / 1e6:.1f} MB out)")
    # CPU time of the whole process (client and server): the figure to trust on a busy machine.
    print(f"CPU time, upload to completed: {cpu:.2f} s")
    print(
        f"upload {uploaded - started:.2f} s; upload to completed {elapsed:.2f} s; "
        f"{args.lines / elapsed:,.0f} lines/s; output download {downloaded - done:.2f} s"
    )


if __name__ == "__main__":
    main()
