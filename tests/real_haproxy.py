"""A real HAProxy for tests (and demos): a frontend on 127.0.0.1, one backend whose servers
are local HTTP servers answering their version, and the runtime API on a unix socket.

    with VersionServer("1.0.0") as blue, VersionServer("1.1.0") as green:
        with RealHAProxy(tmp_path, "payments-prod", {"blue": blue.port, "green": green.port}):
            ...  # socket at .socket_path, traffic through .frontend_url

The config is checked with ``haproxy -c`` first; ``start`` waits until the socket answers
and the frontend accepts; ``stop`` terminates HAProxy, then kills it after a timeout.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.loopback import LoopbackServer

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
READY_DEADLINE = 30.0  # seconds: generous, polled


def free_port() -> int:
    """A port free on 127.0.0.1 now (HAProxy cannot be told to bind port 0 and report it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class RealHAProxy:
    """``haproxy -f CFG -db`` in a subprocess, its files in ``directory``.

    ``servers`` maps each server name to its port on 127.0.0.1; ``weights`` their weights in
    the config file (what a restart comes back to); default: the first 256, others 0;
    ``disabled`` those the config file puts in maintenance."""

    def __init__(
        self,
        directory: Path,
        backend: str,
        servers: Mapping[str, int],
        weights: Mapping[str, int] | None = None,
        disabled: Iterable[str] = (),
        binary: str = HAPROXY,
    ) -> None:
        self.directory = directory
        self.backend = backend
        self.servers = dict(servers)
        first = next(iter(self.servers))
        self.weights = dict(weights or {n: 256 if n == first else 0 for n in self.servers})
        self.disabled = set(disabled)
        self.binary = binary
        self.socket_path = directory / "admin.sock"
        self.config_path = directory / "haproxy.cfg"
        self.log_path = directory / "haproxy.log"
        self.frontend_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def frontend_url(self) -> str:
        return f"http://127.0.0.1:{self.frontend_port}"

    def config_text(self) -> str:
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port} weight {self.weights[name]}"
            + (" disabled" if name in self.disabled else "")
            for name, port in self.servers.items()
        )
        return f"""\
global
    stats socket {self.socket_path} mode 600 level admin
    nbthread 1

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{self.frontend_port}
    default_backend {self.backend}

backend {self.backend}
    balance roundrobin
{servers}
"""

    def start(self) -> Self:
        if self._process is not None:
            raise RuntimeError("HAProxy is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        check = subprocess.run(
            [self.binary, "-c", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=READY_DEADLINE,
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c refused the config: {check.stdout}{check.stderr}")
        self.socket_path.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-f", str(self.config_path), "-db"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"haproxy exited early: {self.log_path.read_text()}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"haproxy not ready after {READY_DEADLINE:g} s")

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(str(self.socket_path))
                s.sendall(b"show info\n")
                if b"Name: HAProxy" not in s.recv(65536):
                    return False
            with socket.create_connection(("127.0.0.1", self.frontend_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Terminate, then kill after 5 s; safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def restart(self) -> None:
        """A fresh process on the same config: every runtime change is lost."""
        self.stop()
        self.start()

    def command(self, line: str) -> str:
        """One runtime API command, answered in full (for tests that act as an operator)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.socket_path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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
