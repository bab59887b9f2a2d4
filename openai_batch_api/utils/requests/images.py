"""Image cells: what they point at, checked before anything is sent, and local files as data URLs."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

from ..files.table import is_missing
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


# The first bytes of each image type the API takes: a file is sent by what it holds, not by its name.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image_type(data: bytes) -> str | None:
    """The media type the bytes of an image file show (png, jpeg, gif, webp), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((media for signature, media in _SIGNATURES if data.startswith(signature)), None)


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
    # The whole path resolved, every link along it followed: a link planted among the images (an unpacked
    # archive, a shared folder), to a file or to a folder (imgs -> ../elsewhere), must not send a file
    # from elsewhere on this machine; links within the table's folder are the user's own layout.
    folder = base_dir.resolve()
    if not path.resolve().is_relative_to(folder):
        if path.is_symlink():
            how = "is a symbolic link to a file outside the table's folder"
        elif Path(os.path.abspath(path)).is_relative_to(os.path.abspath(base_dir)):
            how = "leads through a symbolically linked folder to a file outside the table's folder"
        else:
            how = "is outside the table's folder"
        raise BadImage(f"image {short(value)} {how} ({base_dir}); copy the image into that folder")
    return path


def data_url(path: Path, value: Any) -> str:
    """A local image as the base64 data URL the API accepts in place of a link.

    The media type is the one the file's bytes show; a file that holds no image is refused.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadImage(f"image {short(value)} cannot be read ({exc.strerror})") from None
    media_type = sniff_image_type(data)
    if media_type is None:
        raise BadImage(
            f"image {short(value)} does not hold a png, jpeg, gif or webp image (its first bytes are not "
            "one's); point the cell at the image file"
        )
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
