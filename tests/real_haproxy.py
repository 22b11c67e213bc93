"""Test doubles around the real HAProxy (``demo.servers.HAProxy``): local HTTP servers
answering their version, and a client counting what the frontend answered.

    with VersionServer("1.0.0") as blue, VersionServer("1.1.0") as green:
        with HAProxy(tmp_path, free_port(), "payments-prod",
                     {"blue": (blue.port, 256), "green": (green.port, 0)}) as haproxy:
            answers(haproxy.frontend_url, 100)  # Counter({"1.0.0": 100})
"""

from __future__ import annotations

import http.client
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.loopback import LoopbackServer


class VersionServer(LoopbackServer):
    """An HTTP server answering its ``version`` (changeable: a "deploy") to every GET, except
    ``/broken`` which answers 500."""

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        self.name = f"version-{version}"

    def _make_server(self) -> ThreadingHTTPServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = 500 if self.path == "/broken" else 200
                body = owner.version.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def port(self) -> int:
        return int(self.root.rsplit(":", 1)[1])


def answers(url: str, requests: int, path: str = "/") -> Counter[str]:
    """GET ``url`` ``requests`` times, a new connection each; the bodies counted (``HTTP nnn``
    for a non-200 answer)."""
    host, port = url.removeprefix("http://").split(":")
    seen: Counter[str] = Counter()
    for _ in range(requests):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("GET", path)
            answer = conn.getresponse()
            body = answer.read().decode()
            seen[body if answer.status == 200 else f"HTTP {answer.status}"] += 1
        finally:
            conn.close()
    return seen
