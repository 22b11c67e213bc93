"""The plain HTTP probes against a local server: health endpoints and synthetic transactions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.adapters.http.probes import health, transactions
from bot.domain.config import SmokeCheck
from bot.domain.observations import Target
from demo.servers import free_port
from tests.loopback import LoopbackServer


class Endpoints(LoopbackServer):
    """``/ok`` 200, ``/fail`` 500, ``/flaky`` 200 then 503 in turn, ``/moved`` a redirect to
    ``/ok``, ``/slow`` 200 after 5 s (cut short at stop); anything else 404."""

    name = "fake-endpoints"

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def _before_stop(self) -> None:
        self._stopping.set()

    def _make_server(self) -> ThreadingHTTPServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    n = owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                headers = {"Content-Length": "2"}
                match self.path:
                    case "/ok":
                        status = 200
                    case "/fail":
                        status = 500
                    case "/flaky":
                        status = 200 if n % 2 else 503
                    case "/moved":
                        status, headers["Location"] = 302, "/ok"
                    case "/slow":
                        owner._stopping.wait(5.0)
                        status = 200
                    case "/prod-us-east-1/ok":
                        status = 200
                    case _:
                        status = 404
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the probe gave up waiting

            def do_POST(self) -> None:
                with owner._lock:
                    owner.hits["POST " + self.path] = owner.hits.get("POST " + self.path, 0) + 1
                self.send_response(201 if self.path == "/orders" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def endpoints() -> Iterator[Endpoints]:
    with Endpoints() as server:
        yield server


def test_health_is_healthy_only_on_2xx(endpoints: Endpoints) -> None:
    root = endpoints.root
    assert health(f"{root}/ok", 2.0) == "healthy"
    assert health(f"{root}/moved", 2.0) == "healthy"  # redirects are followed
    assert health(f"{root}/fail", 2.0) == "unhealthy"
    assert health(f"{root}/missing", 2.0) == "unhealthy"
    assert health(f"http://127.0.0.1:{free_port()}/healthz", 2.0) == "unhealthy"
    assert health(f"{root}/slow", 0.2) == "unhealthy"
    assert health("not a url", 2.0) == "unhealthy"


TARGET = Target(service="shop", env="prod", region="us-east-1")


def test_transactions_measure_success_and_mean_latency(endpoints: Endpoints) -> None:
    root = endpoints.root
    checks = [
        SmokeCheck(name="checkout", url=f"{root}/ok"),
        SmokeCheck(name="refund", url=f"{root}/flaky"),
        SmokeCheck(name="login", url=f"{root}/fail"),
        SmokeCheck(name="search", url=f"http://127.0.0.1:{free_port()}/search"),
        SmokeCheck(name="report", url=f"{root}/slow", latency_ms=150),
    ]
    names = ["checkout", "refund", "login", "search", "cart", "report"]
    results = transactions(checks, names, TARGET, runs=4, timeout=0.2)
    assert [(r.name, r.success_rate) for r in results] == [
        ("checkout", 1.0),
        ("refund", 0.5),
        ("login", 0.0),
        ("search", 0.0),  # unreachable: a failure
        ("report", 0.0),  # timed out: a failure
    ]  # "cart" has no check: left out
    assert endpoints.hits["/ok"] == 4 and endpoints.hits["/flaky"] == 4
    assert all(r.latency_ms >= 0 for r in results)
    # Each timed-out run waited at least its timeout, so their mean is at least that.
    assert results[-1].latency_ms >= 200
    assert results[-1].budget_ms == 150 and results[0].budget_ms is None


def test_a_check_has_its_method_expected_status_and_target(endpoints: Endpoints) -> None:
    root = endpoints.root
    checks = [
        SmokeCheck(name="order", url=f"{root}/orders", method="POST", expect_status=201),
        SmokeCheck(name="gone", url=f"{root}/fail", expect_status=500),  # what it should say
        SmokeCheck(name="regional", url=f"{root}/$env-$region/ok"),
    ]
    results = transactions(checks, ["order", "gone", "regional"], TARGET, runs=2, timeout=2.0)
    assert [(r.name, r.success_rate) for r in results] == [
        ("order", 1.0),
        ("gone", 1.0),
        ("regional", 1.0),
    ]
    assert endpoints.hits["POST /orders"] == 2


def test_transactions_need_a_run() -> None:
    with pytest.raises(ValueError, match="runs must be at least 1"):
        transactions([], [], TARGET, runs=0, timeout=1.0)
