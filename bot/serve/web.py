"""``release-bot serve``: the Slack app behind waitress, the reconcile tick, /healthz, /metrics
and ``POST /evidence`` for CI jobs.

One process: waitress (a production WSGI server, threads, no forking: the scheduler and the
SQLite connection live in this process) serves ``/slack/events`` for commands, buttons,
modals and events, ``/healthz`` and ``/metrics``; the ticker (``bot/scheduler.py``) runs the
reconcile tick. With ``SLACK_APP_TOKEN`` set, Slack's requests arrive over Socket Mode
instead, and the HTTP server keeps only /healthz and /metrics.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.scheduler import Ticker
from bot.serve.evidence import EvidenceUploads
from bot.service import Services

StartResponse = Callable[..., Any]


class ReleasesCollector(Collector):
    """Active releases by status, read from the store at scrape time."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "release_bot_active_releases", "Releases in progress, by status", labels=["status"]
        )
        for status, n in sorted(self.services.store.active_by_status().items()):
            family.add_metric([status], n)
        yield family


class WebApp:
    """The WSGI application: Slack's endpoint (HTTP mode), /healthz, /metrics, and evidence
    uploads signed with ``evidence_secret`` (none: uploads are off)."""

    def __init__(self, app: App | None, ticker: Ticker, evidence_secret: str | None = None) -> None:
        self.slack = SlackRequestHandler(app, path="/slack/events") if app is not None else None
        self.evidence = EvidenceUploads(ticker.services, evidence_secret)
        self.ticker = ticker
        self.telemetry = ticker.telemetry
        self.telemetry.registry.register(ReleasesCollector(ticker.services))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/slack/events" and self.slack is not None:

            def counted(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
                self.telemetry.http.labels(path=path, status=status.split()[0]).inc()
                return start_response(status, headers, *exc_info)

            refused = _bad_timestamp(environ)
            if refused is not None:
                counted("401 Unauthorized", [("Content-Type", "text/plain")])
                return [refused]
            return self.slack(environ, counted)
        if path == "/evidence":
            status, content_type, body = self.evidence.handle(environ)
        else:
            status, content_type, body = self._own(path)
        self.telemetry.http.labels(path=_label(path), status=status.split()[0]).inc()
        start_response(status, [("Content-Type", content_type)])
        return [body]

    def _own(self, path: str) -> tuple[str, str, bytes]:
        if path == "/healthz":
            ok, facts = self.ticker.healthy()
            status = "200 OK" if ok else "503 Service Unavailable"
            return status, "application/json", json.dumps(facts).encode()
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.telemetry.registry)
        return "404 Not Found", "text/plain", b"Not Found\n"


def _bad_timestamp(environ: dict[str, Any]) -> bytes | None:
    """One line for a timestamp that is not a number, which Bolt's check would raise on
    (a 500); a missing one Bolt refuses itself."""
    stamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
    if stamp is None:
        return None
    try:
        int(stamp)
    except ValueError:
        return (
            f"X-Slack-Request-Timestamp {stamp[:40]!r} is not a number: send the Unix time "
            "in seconds the request was signed at, as Slack does\n"
        ).encode()
    return None


def _label(path: str) -> str:
    return path if path in ("/healthz", "/metrics", "/slack/events", "/evidence") else "other"


POLL_SECONDS = 0.5


class Server:
    """waitress in a thread, the ticker, and Socket Mode when asked; ``stop`` ends all."""

    def __init__(
        self,
        web: WebApp,
        host: str,
        port: int,
        socket_mode: Any | None = None,
        threads: int = 16,
    ) -> None:
        from waitress.server import create_server

        self.web = web
        self._map: dict[int, Any] = {}
        self.wsgi = create_server(
            web, map=self._map, host=host, port=port, threads=threads, ident="release-bot"
        )
        self.socket_mode = socket_mode
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._closing = threading.Lock()
        self._closed = False

    @property
    def port(self) -> int:
        return int(self.wsgi.effective_port)

    def start(self) -> None:
        """Socket Mode connects first, so a refused app token raises before anything runs."""
        if self.socket_mode is not None:
            self.socket_mode.connect()
        self.web.ticker.start()
        self.start_http()

    def start_http(self) -> None:
        """Serve HTTP on a thread of its own (the ticker is the caller's)."""
        self._thread = threading.Thread(target=self._serve, name="waitress", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # waitress's loop, one poll at a time, so that it ends on a flag and closes its
        # sockets in this thread: closed from another thread, under its poll(), they race
        # (EBADF), and a trigger pulled after the loop closed it fails the same way.
        from waitress import wasyncore

        while not self._stopping.is_set() and self._map:
            wasyncore.loop(timeout=POLL_SECONDS, map=self._map, use_poll=True, count=1)
        with self._closing:
            self._closed = True
            self.wsgi.close()

    def _wake(self) -> None:
        """Ends the loop's current poll early; without it, the loop ends within a poll."""
        with self._closing:
            # A trigger whose pipe is gone raises: the poll's timeout ends the loop then.
            if not self._closed:
                with contextlib.suppress(OSError):
                    self.wsgi.trigger.pull_trigger()

    def stop(self) -> None:
        """Safe after a ``start`` that raised, without ``start`` at all, and twice.

        waitress first, so its loop winds down while slack_sdk's ``close`` waits (up to 1 s)
        on its own queue.
        """
        self._stopping.set()
        if self._thread is None:
            self.wsgi.close()
        else:
            self._wake()
        if self.socket_mode is not None:
            self.socket_mode.close()
        self.web.ticker.stop()
        if self._thread is not None:
            self._thread.join(timeout=5 + POLL_SECONDS)
        # close() leaves waitress's worker threads running: end them (running requests finish).
        self.wsgi.task_dispatcher.shutdown(timeout=5)
