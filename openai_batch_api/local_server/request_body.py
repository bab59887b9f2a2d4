"""A request's body as a stream: read only after the request was let in, and never past its end.

A file upload (up to 512 MB) is read through this stream straight to disk; other bodies are JSON
and read whole, up to a size that keeps a few concurrent requests well within memory.
"""

from __future__ import annotations

from email.message import Message
from typing import BinaryIO

from .validation import MAX_UPLOAD_BYTES

# Room for the multipart envelope around the largest upload.
MAX_UPLOAD_BODY_BYTES = MAX_UPLOAD_BYTES + 1024 * 1024
MAX_JSON_BODY_BYTES = 64 * 1024 * 1024


class BodyError(Exception):
    """The request body cannot be read; the connection must be closed after the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RequestBody:
    """The body of one request, by Content-Length or chunked; `read` returns b"" at its end."""

    def __init__(self, rfile: BinaryIO, headers: Message, *, limit: int) -> None:
        self._rfile = rfile
        self._limit = limit
        self._chunked = headers.get("Transfer-Encoding", "").lower() == "chunked"
        self._total = 0
        # Bytes left: of the whole body, or of the current chunk when chunked.
        self._left = 0
        self.finished = False
        if self._chunked:
            return
        raw = headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else 0
        except ValueError:
            raise BodyError(400, "Invalid Content-Length header.") from None
        if length < 0:
            raise BodyError(400, "Invalid Content-Length header.")
        if length > limit:
            raise BodyError(413, f"Request body too large: {length} bytes; the maximum is {limit}.")
        self._left = length
        self.finished = length == 0

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of the body (all that is left when negative); b"" once it is all read."""
        if self.finished:
            return b""
        if self._chunked and self._left == 0 and not self._next_chunk():
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._rfile.read(want)
        if len(data) < want:
            raise BodyError(400, "The request body ended before its Content-Length.")
        self._left -= len(data)
        if self._left == 0:
            if self._chunked:
                self._rfile.readline(8)  # the CRLF after a chunk
            else:
                self.finished = True
        return data

    def read_all(self) -> bytes:
        parts = []
        while chunk := self.read():
            parts.append(chunk)
        return b"".join(parts)

    def _next_chunk(self) -> bool:
        line = self._rfile.readline(1024)
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise BodyError(400, "Malformed chunked request body.") from None
        if size < 0:
            raise BodyError(400, "Malformed chunked request body.")
        if size == 0:
            while self._rfile.readline(1024).strip():  # trailers
                pass
            self.finished = True
            return False
        self._total += size
        if self._total > self._limit:
            raise BodyError(413, f"Request body too large; the maximum is {self._limit} bytes.")
        self._left = size
        return True
