"""A small multipart/form-data parser (the stdlib's `cgi` is gone from newer Pythons)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .api_error import ApiError

_PARAM = re.compile(r';\s*([\w*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@dataclass
class FormPart:
    data: bytes
    filename: str | None = None


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


def parse_multipart(content_type: str, body: bytes) -> dict[str, FormPart]:
    """The fields of a multipart/form-data body by name; a malformed body raises the API's 400."""
    kind, params = header_params(content_type)
    if kind != "multipart/form-data":
        raise ApiError(400, "Invalid Content-Type header: expected multipart/form-data for a file upload.")
    boundary = params.get("boundary")
    if not boundary:
        raise _malformed("the Content-Type header has no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise _malformed("the closing boundary is missing")
    fields: dict[str, FormPart] = {}
    for piece in pieces[1:-1]:
        if not piece.startswith(b"\r\n") or not piece.endswith(b"\r\n"):
            raise _malformed("a part is not delimited by CRLF")
        head, separator, data = piece[2:-2].partition(b"\r\n\r\n")
        if not separator:
            raise _malformed("a part has no blank line after its headers")
        headers = {}
        for raw in head.split(b"\r\n"):
            name, colon, value = raw.decode("utf-8", "replace").partition(":")
            if not colon:
                raise _malformed("a part has a header line without a colon")
            headers[name.strip().lower()] = value.strip()
        disposition, disposition_params = header_params(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in disposition_params:
            raise _malformed("a part has no Content-Disposition: form-data with a name")
        fields[disposition_params["name"]] = FormPart(data, disposition_params.get("filename"))
    return fields
