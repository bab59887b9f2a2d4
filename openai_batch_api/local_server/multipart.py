"""A small streaming multipart/form-data parser (the stdlib's `cgi` is gone from newer Pythons).

The uploaded file's bytes go straight from the request to a file on disk, a slice at a time, so an
upload of hundreds of megabytes takes a few hundred kilobytes of memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .api_error import ApiError

_PARAM = re.compile(r';\s*([\w*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
READ_BYTES = 256 * 1024
MAX_HEADER_BYTES = 16 * 1024
# Fields other than the file (purpose, ...) are short texts.
MAX_FIELD_BYTES = 64 * 1024
FILE_FIELD = "file"


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class FormPart:
    """A form field: its bytes in `data`, or for the file field, its size and where it was written."""

    data: bytes = b""
    filename: str | None = None
    size: int = 0
    path: Path | None = None


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """("form-data", {"name": ..., "filename": ...}) from a header value like Content-Disposition."""
    main, _, rest = value.partition(";")
    params = {}
    for name, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name.lower()] = raw
    return main.strip().lower(), params


def _malformed(why: str) -> ApiError:
    return ApiError(400, f"Could not parse multipart form: {why}.")


class _Buffer:
    """Bytes read ahead from the body, consumed from the front."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.data = b""
        self.ended = False

    def fill(self) -> bool:
        """Read more; False at the end of the body."""
        if self.ended:
            return False
        chunk = self.stream.read(READ_BYTES)
        if not chunk:
            self.ended = True
            return False
        self.data += chunk
        return True

    def take(self, size: int) -> bytes:
        taken, self.data = self.data[:size], self.data[size:]
        return taken


def parse_multipart(content_type: str, stream: Readable, *, file_path: Path) -> dict[str, FormPart]:
    """The fields of a multipart/form-data body by name; a malformed body raises the API's 400.

    The `file` field's bytes are written to `file_path` (left for the caller to keep or remove);
    every other field is kept in memory, up to MAX_FIELD_BYTES.
    """
    kind, params = header_params(content_type)
    if kind != "multipart/form-data":
        raise ApiError(400, "Invalid Content-Type header: expected multipart/form-data for a file upload.")
    boundary = params.get("boundary")
    if not boundary:
        raise _malformed("the Content-Type header has no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    buffer = _Buffer(stream)
    # The preamble, up to the first delimiter, is ignored.
    while (start := buffer.data.find(delimiter)) < 0:
        buffer.take(max(0, len(buffer.data) - len(delimiter)))
        if not buffer.fill():
            raise _malformed("the closing boundary is missing")
    buffer.take(start + len(delimiter))
    fields: dict[str, FormPart] = {}
    separator = b"\r\n" + delimiter
    while True:
        while len(buffer.data) < 2 and buffer.fill():
            pass
        if buffer.data.startswith(b"--"):
            return fields
        if not buffer.data.startswith(b"\r\n"):
            raise _malformed("the closing boundary is missing" if buffer.ended else "a part is not delimited by CRLF")
        buffer.take(2)
        name, filename = _part_headers(buffer)
        if name == FILE_FIELD:
            with open(file_path, "wb") as sink:
                size = _copy_part(buffer, separator, sink.write)
            fields[name] = FormPart(filename=filename, size=size, path=file_path)
        else:
            pieces: list[bytes] = []
            _copy_part(buffer, separator, pieces.append, limit=MAX_FIELD_BYTES)
            data = b"".join(pieces)
            fields[name] = FormPart(data=data, filename=filename, size=len(data))


def _part_headers(buffer: _Buffer) -> tuple[str, str | None]:
    """(field name, file name) from a part's headers, which are consumed with the blank line after them."""
    while (end := buffer.data.find(b"\r\n\r\n")) < 0:
        if len(buffer.data) > MAX_HEADER_BYTES:
            raise _malformed("a part has no blank line after its headers")
        if not buffer.fill():
            raise _malformed("the closing boundary is missing")
    head = buffer.take(end + 4)[:end]
    headers = {}
    for raw in head.split(b"\r\n") if head else []:
        name, colon, value = raw.decode("utf-8", "replace").partition(":")
        if not colon:
            raise _malformed("a part has a header line without a colon")
        headers[name.strip().lower()] = value.strip()
    disposition, disposition_params = header_params(headers.get("content-disposition", ""))
    if disposition != "form-data" or "name" not in disposition_params:
        raise _malformed("a part has no Content-Disposition: form-data with a name")
    return disposition_params["name"], disposition_params.get("filename")


def _copy_part(buffer: _Buffer, separator: bytes, write: Callable[[bytes], object], *, limit: int | None = None) -> int:
    """Pass a part's bytes to `write` up to the separator (consumed too); returns how many there were."""
    size = 0
    while True:
        end = buffer.data.find(separator)
        if end >= 0:
            piece = buffer.take(end)
            buffer.take(len(separator))
        else:
            # Keep a tail that may be the start of the separator.
            piece = buffer.take(max(0, len(buffer.data) - len(separator) + 1))
        size += len(piece)
        if limit is not None and size > limit:
            raise _malformed(f"a form field other than '{FILE_FIELD}' is longer than {limit} bytes")
        if piece:
            write(piece)
        if end >= 0:
            return size
        if not buffer.fill():
            raise _malformed("the closing boundary is missing")
