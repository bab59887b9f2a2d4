"""Image cells: what they point at, checked before anything is sent, and local files as data URLs."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from ..table import is_missing
from .problems import short

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
_DATA_URL = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")
# scheme, optional user@, a host name or [IPv6], optional port, then a path/query/fragment without spaces
_HTTP_URL = re.compile(r"https?://(?:[^\s/?#@]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]]+)(?::\d*)?(?:[/?#]\S*)?", re.I)


class BadImage(ValueError):
    """Why an image cell cannot be sent."""


def image_source(value: Any, *, base_dir: Path) -> str | Path | None:
    """What an image cell points at: None when empty, a URL sent as it is, or a local image file."""
    if value is None or is_missing(value):
        return None
    not_an_image = f"image {short(value)} is not an http(s) URL, data URL or existing file"
    if not isinstance(value, str):
        raise BadImage(not_an_image)
    text = value.strip()
    if not text:
        return None
    scheme = text[:8].lower()
    if scheme.startswith(("http://", "https://")):
        if not _HTTP_URL.fullmatch(text):
            raise BadImage(f"image {short(value)} is not a well-formed URL")
        return text
    if scheme.startswith("data:"):
        if not _DATA_URL.fullmatch(text):
            raise BadImage(f"image {short(value)} is not a base64 data URL of a png, jpeg, gif or webp image")
        return text
    path = base_dir / Path(text).expanduser()  # an absolute path replaces base_dir
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        raise BadImage(not_an_image)
    if path.suffix.lower() not in IMAGE_TYPES:
        raise BadImage(f"image {short(value)} is not a png, jpeg, gif or webp file")
    return path


def data_url(path: Path, value: Any) -> str:
    """A local image as the base64 data URL the API accepts in place of a link."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadImage(f"image {short(value)} cannot be read ({exc.strerror})") from None
    return f"data:{IMAGE_TYPES[path.suffix.lower()]};base64,{base64.b64encode(data).decode('ascii')}"
