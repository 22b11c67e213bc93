"""A real Prometheus server for tests and demos: the Debian binary in a child process,
scraping the given ``host:port`` targets every second, in a temporary directory.

    with RealPrometheus(tmp_path, [ScrapeTarget("127.0.0.1:8001", {"version": "1.0"})]) as p:
        p.query('up')

``start`` returns once ``/-/ready`` answers and every target has been scraped (``up``, or
``down`` for a target marked ``expect_up=False``); ``stop`` terminates, then kills.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

PROMETHEUS = Path("/usr/bin/prometheus")
READY_DEADLINE = 30.0  # seconds: a generous bound on a loaded 2-core machine


def available() -> bool:
    return PROMETHEUS.exists()


def free_port() -> int:
    """A port nothing listens on right now (bound to 0, then closed: Prometheus will not
    take port 0 itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ScrapeTarget:
    """One ``host:port`` serving ``/metrics``, with the labels its series get."""

    address: str
    labels: dict[str, str] = field(default_factory=dict)
    job: str = "app"
    expect_up: bool = True  # False: a target known to be down (nothing listens there)


def config(targets: Sequence[ScrapeTarget], interval: str) -> dict[str, Any]:
    """The scrape config: one job per ``job`` name, one static group per target so each
    gets its own labels. (JSON is YAML, so this is written as it is.)"""
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


class RealPrometheus:
    """Start, query and stop one Prometheus server on 127.0.0.1."""

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[ScrapeTarget],
        *,
        interval: str = "1s",
        binary: Path = PROMETHEUS,
    ) -> None:
        self.workdir = workdir
        self.targets = list(targets)
        self.interval = interval
        self.binary = binary
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        if self._process is None:
            raise RuntimeError("RealPrometheus is not running: call start()")
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What the server wrote (for a failing test's message)."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, deadline: float = READY_DEADLINE) -> Self:
        """Launch and wait until ready and every target is scraped. A port taken between
        picking and binding makes Prometheus exit: then try another, three times."""
        if self._process is not None:
            raise RuntimeError("RealPrometheus is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(json.dumps(config(self.targets, self.interval), indent=2))
        for _ in range(3):
            self.port = free_port()
            with self._log.open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        str(self.binary),
                        f"--config.file={config_file}",
                        f"--storage.tsdb.path={self.workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                self._wait_ready(time.monotonic() + deadline)
            except _Exited:
                self._process = None
                continue
            except BaseException:
                self.stop()
                raise
            try:
                self._wait_targets(time.monotonic() + deadline)
            except BaseException:
                self.stop()
                raise
            return self
        raise RuntimeError(f"prometheus would not start:\n{self.log()[-2000:]}")

    def _alive(self) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            raise _Exited(self._process.returncode)

    def _wait_ready(self, until: float) -> None:
        while True:
            self._alive()
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > until:
                raise TimeoutError(f"prometheus not ready:\n{self.log()[-2000:]}")
            time.sleep(0.05)

    def _wait_targets(self, until: float) -> None:
        want = {t.address + "/" + t.job: "up" if t.expect_up else "down" for t in self.targets}
        seen: dict[str, str] = {}
        while True:
            self._alive()
            active = self.api("targets", state="active")["activeTargets"]
            seen = {f"{t['labels']['instance']}/{t['labels']['job']}": t["health"] for t in active}
            if all(seen.get(key) == health for key, health in want.items()):
                return
            if time.monotonic() > until:
                raise TimeoutError(f"targets not scraped: want {want}, have {seen}")
            time.sleep(0.1)

    def stop(self, grace: float = 10.0) -> None:
        """Terminate (Prometheus shuts down cleanly on SIGTERM), kill after ``grace``;
        safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- asking it directly ---------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/PATH``'s data (raises on anything but success)."""
        address = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(address, timeout=5) as r:
            answer = json.loads(r.read())
        if answer.get("status") != "success":
            raise RuntimeError(f"prometheus said {answer}")
        return answer["data"]

    def query(self, promql: str, at: float | None = None) -> dict[str, float]:
        """An instant query, as {label set written out: value}; ``at`` formatted as the
        adapter does, so the same query at the same time gives the same numbers."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        return {
            ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items())): float(item["value"][1])
            for item in data["result"]
        }

    def wait_until(
        self,
        promql: str,
        done: Callable[[dict[str, float]], bool],
        *,
        deadline: float = READY_DEADLINE,
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


class _Exited(Exception):
    """The child exited before it was ready (most likely its port was taken)."""
