"""Whether an address is reachable only from this machine: one answer for the commands and the local backend."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    """Whether a host (an IP address, or `localhost`) is reachable only from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def is_loopback_url(url: str | None) -> bool:
    """Whether a URL's host is on this machine."""
    return bool(url) and is_loopback(urlsplit(url).hostname or "")
