"""Real servers for the live demo, each a child process in a temporary directory on
127.0.0.1: the demo service's versions, HAProxy and Prometheus. Each waits until it answers
and stops (terminate, then kill) with ``stop()`` or at the end of a ``with`` block."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

READY_SECONDS = 30.0


class ServerError(Exception):
    """A server did not start; the message says which and what it printed."""


def free_port() -> int:
    """A port free now on 127.0.0.1 (Prometheus and HAProxy do not take port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(name: str, *extra_dirs: str) -> str:
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in extra_dirs if (Path(d) / name).exists()), None
    )
    if found is None:
        raise ServerError(f"{name} is not installed: run `make deps` (Debian package {name})")
    return found


class Process:
    """A child process with its log in ``workdir``; ``ready`` says when it answers."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        ready: Callable[[], bool],
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self._ready = name, argv, ready
        self.cwd = cwd or workdir
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
            )
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited at start: {self._tail()}")
            if self._ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"{self.name} did not answer in {READY_SECONDS:g} s: {self._tail()}")

    def _tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "no output"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def http_ok(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return 200 <= int(response.status) < 300
        except (OSError, urllib.error.URLError):
            return False

    return ready


def demo_service(
    workdir: Path, version: str, port: int, error_rate: float = 0.0, latency_ms: float = 0.0
) -> Process:
    argv = [sys.executable, "-m", "demo.service", "--version", version, "--port", str(port),
            "--error-rate", str(error_rate), "--latency-ms", str(latency_ms)]  # fmt: skip
    ready = http_ok(f"http://127.0.0.1:{port}/healthz")
    repository = Path(__file__).resolve().parent.parent  # where `-m demo.service` imports
    return Process(f"service-{version}", argv, workdir, ready, cwd=repository)


def haproxy(
    workdir: Path,
    frontend_port: int,
    backend: str,
    servers: dict[str, tuple[int, int]],
) -> Process:
    """HAProxy with a frontend on ``frontend_port`` and one backend whose servers are
    ``name -> (port, weight)``; its runtime API on ``workdir/admin.sock``."""
    lines = [
        "global",
        f"    stats socket {workdir / 'admin.sock'} mode 600 level admin",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 10s",
        "    timeout server 10s",
        "frontend web",
        f"    bind 127.0.0.1:{frontend_port}",
        f"    default_backend {backend}",
        f"backend {backend}",
        "    balance roundrobin",
        *(
            f"    server {name} 127.0.0.1:{port} weight {weight}"
            for name, (port, weight) in servers.items()
        ),
    ]
    config = workdir / "haproxy.cfg"
    config.write_text("\n".join(lines) + "\n")
    exe = binary("haproxy", "/usr/sbin")
    check = subprocess.run([exe, "-c", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise ServerError(f"haproxy refused its config: {check.stderr.strip() or check.stdout}")
    return Process(
        "haproxy",
        [exe, "-f", str(config), "-db"],
        workdir,
        http_ok(f"http://127.0.0.1:{frontend_port}/healthz"),
    )


def prometheus(workdir: Path, port: int, targets: list[tuple[int, dict[str, str]]]) -> Process:
    """Prometheus scraping each ``(port, labels)`` target every second."""
    scrape = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "demo",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{p}"], "labels": labels} for p, labels in targets
                ],
            }
        ],
    }
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps(scrape, indent=2))  # JSON is YAML
    (workdir / "tsdb").mkdir(exist_ok=True)
    argv = [binary("prometheus"), f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    return Process("prometheus", argv, workdir, http_ok(f"http://127.0.0.1:{port}/-/ready"))
