"""Token counts from a process of its own, so loading an encoding costs a command no time.

Loading a tiktoken encoding takes a few tenths of a second of CPU with Python's lock held, which a
thread cannot overlap with the command's own start-up (importing the SDK is CPU-bound too). A child
process loads it on the other core meanwhile; the command sends it the texts to count when it has
them. The child counts with the same `_load_encoding` as the parent would, so the counts and the
method label are the same; when it cannot start or dies, the parent loads the encoding itself.

The protocol, one JSON line each way: the child first writes `{"method": ..., "exact": ...}`, then
answers each line holding a list of texts with the list of their counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO

import orjson

from .tokens import TokenEstimator, _estimate, _load_encoding


class TokenWorker:
    """A child process counting tokens with one encoding; lives until closed or the parent exits."""

    def __init__(self, encoding_name: str):
        self.encoding_name = encoding_name
        self._lock = threading.Lock()  # one request and its answer on the pipes at a time
        self._header: dict | None = None
        self._local: tuple[Callable[[str], int] | None, str] | None = None  # the parent's own, after a failure
        self._pid = os.getpid()  # a forked copy of the parent must not share the pipes
        self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", __name__, encoding_name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def _fail(self) -> None:
        """Count in this process from now on (same counts, same label)."""
        self.close()
        if self._local is None:
            self._local = _load_encoding(self.encoding_name)

    def _read(self) -> object:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise EOFError("the token counter exited")
        return orjson.loads(line)

    def header(self) -> dict:
        """The child's method label and whether its counts are exact (waits for its encoding to load)."""
        self._forked()
        with self._lock:
            if self._header is None and self._local is None:
                try:
                    header = self._read()
                    if not isinstance(header, dict):
                        raise ValueError("not a header")
                    self._header = header
                except (OSError, EOFError, ValueError):
                    self._fail()
            if self._local is not None:
                counter, method = self._local
                return {"method": method, "exact": counter is not None}
            assert self._header is not None
            return self._header

    def _forked(self) -> None:
        """In a forked copy of the parent, count here alone: the pipes are the parent's, and so is the lock,
        which a thread of the parent may have held at the fork (no thread here would ever release it)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._process = None
            self._local = _load_encoding(self.encoding_name)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        header = self.header()
        with self._lock:
            if self._local is None and self._process is not None:
                try:
                    stdin: IO[bytes] = self._process.stdin  # type: ignore[assignment]
                    stdin.write(orjson.dumps(list(texts)) + b"\n")
                    stdin.flush()
                    counts = self._read()
                    if isinstance(counts, list) and len(counts) == len(texts):
                        return counts
                    raise ValueError("a wrong answer")
                except (OSError, EOFError, ValueError):
                    self._fail()
            counter, _ = self._local or (None, header["method"])
            count = counter or _estimate
            return [count(text) if text else 0 for text in texts]

    def close(self) -> None:
        """End the child: closing its input ends its loop (it is not waited for)."""
        process, self._process = self._process, None
        if process is not None and process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass


class WorkerEstimator(TokenEstimator):
    """A TokenEstimator whose counts come from a TokenWorker."""

    def __init__(self, worker: TokenWorker):
        self.encoding_name = worker.encoding_name
        self._worker = worker

    @property
    def method(self) -> str:  # type: ignore[override]
        return self._worker.header()["method"]

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return bool(self._worker.header()["exact"])

    def count(self, text: str) -> int:
        return self._worker.count_many([text])[0] if text else 0

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return self._worker.count_many(texts)

    def close(self) -> None:
        self._worker.close()


def main() -> None:
    """The child: load the encoding, say how it counts, then answer each line of texts."""
    counter, method = _load_encoding(sys.argv[1])
    count = counter or _estimate
    out = sys.stdout.buffer
    out.write(orjson.dumps({"method": method, "exact": counter is not None}) + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        out.write(orjson.dumps([count(text) if text else 0 for text in orjson.loads(line)]) + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
