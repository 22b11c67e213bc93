"""Real servers for the live demo and the tests, each a child process in a temporary directory
on 127.0.0.1: the demo service's versions, HAProxy and Prometheus. ``start`` returns once the
server answers; ``stop`` (or the end of a ``with`` block) terminates it, then kills it.

    with HAProxy(workdir, free_port(), "shop", {"blue": (8001, 256), "green": (8002, 0)}):
        ...  # runtime API on .socket_path, users through .frontend_url
    with Prometheus(workdir, [ScrapeTarget("127.0.0.1:8001", {"version": "1.0"})]) as p:
        p.query("up")
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

READY_SECONDS = 30.0  # a generous bound on a loaded 2-core machine; readiness is polled


class ServerError(Exception):
    """A server did not start; the message says which and what it printed."""


class ServerExited(ServerError):
    """The server exited before it answered (most likely its port was taken)."""


def free_port() -> int:
    """A port free now on 127.0.0.1 (Prometheus and HAProxy do not take port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def installed(name: str, *extra_dirs: str) -> str | None:
    """Where ``name`` is, on the PATH or in one of ``extra_dirs``; None when it is not."""
    return shutil.which(name) or next(
        (str(Path(d) / name) for d in extra_dirs if (Path(d) / name).exists()), None
    )


def binary(name: str, *extra_dirs: str) -> str:
    found = installed(name, *extra_dirs)
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
        ready: Callable[[], bool] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self._ready = name, argv, ready
        self.workdir = workdir
        self.cwd = cwd or workdir
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """True once the server answers; subclasses say what answering is."""
        return self._ready() if self._ready is not None else True

    def start(self) -> Self:
        if self.running:
            raise ServerError(f"{self.name} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + READY_SECONDS
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServerExited(f"{self.name} exited at start: {self.tail()}")
                if self.ready():
                    return self
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise ServerError(f"{self.name} did not answer in {READY_SECONDS:g} s: {self.tail()}")

    def tail(self, lines: int = 3) -> str:
        """The last lines the server wrote (for an error's message)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "no output"

    def stop(self, grace: float = 10.0) -> None:
        """Terminate, then kill after ``grace`` seconds; safe to call twice."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> Self:
        """A fresh process on the same files: whatever was changed at run time is lost."""
        self.stop()
        return self.start()

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


# -- HAProxy ------------------------------------------------------------------------------


class HAProxy(Process):
    """``haproxy -f CFG -db``: a frontend on ``frontend_port`` and one backend whose servers
    are ``name -> (port, weight)`` on 127.0.0.1, those in ``disabled`` in maintenance; its
    runtime API on ``workdir/admin.sock``. The config file is what a restart comes back to."""

    def __init__(
        self,
        workdir: Path,
        frontend_port: int,
        backend: str,
        servers: Mapping[str, tuple[int, int]],
        disabled: Iterable[str] = (),
        more_backends: Mapping[str, Mapping[str, tuple[int, int]]] | None = None,
    ) -> None:
        self.frontend_port, self.backend = frontend_port, backend
        self.servers, self.disabled = dict(servers), frozenset(disabled)
        # Backends beside the frontend's, e.g. one per region: name -> servers.
        self.more_backends = {name: dict(more) for name, more in (more_backends or {}).items()}
        self.socket_path = workdir / "admin.sock"
        self.config_path = workdir / "haproxy.cfg"
        exe = binary("haproxy", "/usr/sbin")
        super().__init__("haproxy", [exe, "-f", str(self.config_path), "-db"], workdir)

    @property
    def frontend_url(self) -> str:
        return f"http://127.0.0.1:{self.frontend_port}"

    def config_text(self) -> str:
        lines = [
            "global",
            f"    stats socket {self.socket_path} mode 600 level admin",
            # One thread, one round-robin: the requests split exactly as the weights say.
            "    nbthread 1",
            "defaults",
            "    mode http",
            "    timeout connect 2s",
            "    timeout client 10s",
            "    timeout server 10s",
            "frontend web",
            f"    bind 127.0.0.1:{self.frontend_port}",
            f"    default_backend {self.backend}",
            f"backend {self.backend}",
            "    balance roundrobin",
            *(
                f"    server {name} 127.0.0.1:{port} weight {weight}"
                + (" disabled" if name in self.disabled else "")
                for name, (port, weight) in self.servers.items()
            ),
        ]
        for backend, servers in self.more_backends.items():
            lines += [f"backend {backend}", "    balance roundrobin"]
            lines += [f"    server {n} 127.0.0.1:{p} weight {w}" for n, (p, w) in servers.items()]
        return "\n".join(lines) + "\n"

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        check = subprocess.run(
            [self.argv[0], "-c", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=READY_SECONDS,
        )
        if check.returncode != 0:
            raise ServerError(f"haproxy refused its config: {check.stderr.strip() or check.stdout}")
        self.socket_path.unlink(missing_ok=True)  # a stale socket would look ready
        return super().start()

    def ready(self) -> bool:
        """The runtime API answers and the frontend accepts connections."""
        try:
            if "Name: HAProxy" not in self.command("show info", timeout=1):
                return False
            with socket.create_connection(("127.0.0.1", self.frontend_port), timeout=1):
                return True
        except OSError:
            return False

    def command(self, line: str, timeout: float = 5.0) -> str:
        """One runtime API command, its answer in full (as an operator would type it)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.socket_path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()


def haproxy(
    workdir: Path,
    frontend_port: int,
    backend: str,
    servers: dict[str, tuple[int, int]],
    disabled: Iterable[str] = (),
) -> HAProxy:
    return HAProxy(workdir, frontend_port, backend, servers, disabled)


# -- Prometheus ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScrapeTarget:
    """One ``host:port`` serving ``/metrics``, with the labels its series get."""

    address: str
    labels: dict[str, str] = field(default_factory=dict)
    job: str = "app"
    expect_up: bool = True  # False: a target known to be down (nothing listens there)


def scrape_config(targets: Sequence[ScrapeTarget], interval: str) -> dict[str, Any]:
    """The scrape config: one job per ``job`` name, one static group per target so each gets
    its own labels. (JSON is YAML, so this is written as it is.)"""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for t in targets:
        jobs.setdefault(t.job, []).append({"targets": [t.address], "labels": dict(t.labels)})
    return {
        # The timeout may not exceed the interval (the default 10 s would).
        "global": {"scrape_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [
            {"job_name": job, "static_configs": groups} for job, groups in sorted(jobs.items())
        ],
    }


class Prometheus(Process):
    """Prometheus scraping ``targets`` every ``interval``. ``start`` returns once ``/-/ready``
    answers and every target has been scraped (``up``, or ``down`` for one marked
    ``expect_up=False``). Without a ``port`` it picks a free one, and another if that one
    was taken before Prometheus bound it (three tries)."""

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[ScrapeTarget],
        *,
        port: int | None = None,
        interval: str = "1s",
    ) -> None:
        self.targets, self.interval = list(targets), interval
        self.chosen_port, self.port = port, port or 0
        self.config_path = workdir / "prometheus.yml"
        super().__init__("prometheus", [binary("prometheus")], workdir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = scrape_config(self.targets, self.interval)
        self.config_path.write_text(json.dumps(config, indent=2))
        tries = 1 if self.chosen_port else 3
        while True:
            tries -= 1
            self.port = self.chosen_port or free_port()
            self.argv = [self.argv[0], f"--config.file={self.config_path}",
                         f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                         f"--web.listen-address=127.0.0.1:{self.port}",
                         "--log.level=warn"]  # fmt: skip
            try:
                return super().start()
            except ServerExited:
                if tries == 0:
                    raise

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                if response.status != 200:
                    return False
            active = self.api("targets", state="active")["activeTargets"]
        except (OSError, ValueError, ServerError):
            return False
        seen = {(t["labels"]["instance"], t["labels"]["job"]): t["health"] for t in active}
        return all(
            seen.get((t.address, t.job)) == ("up" if t.expect_up else "down") for t in self.targets
        )

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/PATH``'s data (raises on anything but success)."""
        address = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(address, timeout=5) as response:
            answer = json.loads(response.read())
        if answer.get("status") != "success":
            raise ServerError(f"prometheus said {answer}")
        return answer["data"]

    def query(self, promql: str, at: float | None = None) -> dict[str, float]:
        """An instant query, as {label set written out: value}; ``at`` formatted as the
        adapter does, so the same query at the same time gives the same numbers."""
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        return {
            ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items())): float(item["value"][1])
            for item in self.api("query", **params)["result"]
        }

    def wait_until(
        self,
        promql: str,
        done: Callable[[dict[str, float]], bool],
        *,
        deadline: float = READY_SECONDS,
    ) -> dict[str, float]:
        """Poll ``promql`` until ``done`` says yes to its answer; its last answer."""
        until = time.monotonic() + deadline
        while True:
            answer = self.query(promql)
            if done(answer):
                return answer
            if time.monotonic() > until:
                raise TimeoutError(f"{promql!r} still says {answer}")
            time.sleep(0.2)


def prometheus(workdir: Path, port: int, targets: list[tuple[int, dict[str, str]]]) -> Prometheus:
    """Prometheus on ``port`` scraping each ``(port, labels)`` target every second."""
    scraped = [ScrapeTarget(f"127.0.0.1:{p}", labels, job="demo") for p, labels in targets]
    return Prometheus(workdir, scraped, port=port)
