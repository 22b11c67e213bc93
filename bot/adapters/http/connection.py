"""An http.client connection for a URL: the one way adapters open one (no proxy from the
environment, no redirects followed, the timeout on connect and on each read)."""

from __future__ import annotations

import http.client
import ssl
from urllib.parse import urlsplit


def connect(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection to ``url``'s host (HTTPS with the system's trust store for ``https``) and
    the path to request, its query kept. Nothing is sent until the caller's request."""
    split = urlsplit(url)
    host, port = split.hostname or "", split.port
    path = (split.path or "/") + (f"?{split.query}" if split.query else "")
    if split.scheme == "https":
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context), path
    return http.client.HTTPConnection(host, port, timeout=timeout), path
