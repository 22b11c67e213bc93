"""A wave's regions side by side: the router applies them at once, the provider reads them at
once, and what comes back is what each would have been alone.

The Prometheus test proves the queries overlap with a stand-in server that answers only once
both regions' queries are in (a barrier): a provider that asked one region after the other
would wait on it and fail. The HAProxy test runs the real HAProxy with one backend per region.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.adapters.haproxy.router import HAProxyRouter, HAProxySettings
from bot.adapters.prometheus.metrics import PrometheusMetrics, PrometheusSettings
from bot.domain.config import ServiceConfig
from bot.domain.observations import Target, TrafficState
from demo.servers import HAProxy, free_port
from tests.conftest import migrated_db
from tests.loopback import LoopbackServer
from tests.real_haproxy import VersionServer, answers

REGIONS = ("us-east-1", "eu-west-1")
END = datetime(2026, 12, 3, 12, 0, 30, tzinfo=UTC)
START = END - timedelta(seconds=30)
STATE = TrafficState(stable_version="1.0.0", new_version="1.1.0", new_weight=10)


class PairedPrometheus(LoopbackServer):
    """Answers each query only once the other region's matching query has arrived too."""

    name = "paired-prometheus"

    def __init__(self) -> None:
        super().__init__()
        self.barrier = threading.Barrier(len(REGIONS), timeout=30)  # a hang guard only
        self.regions_asked: set[str] = set()

    def _before_stop(self) -> None:
        self.barrier.abort()

    def _make_server(self) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)["query"][0]
                fake.regions_asked |= {r for r in REGIONS if r in query}
                try:
                    fake.barrier.wait()
                except threading.BrokenBarrierError:
                    self.send_error(503, "asked one region at a time")
                    return
                self._answer(query)

            def _answer(self, query: str) -> None:
                at = datetime.now(UTC).timestamp()
                result: list[dict[str, Any]]
                if "by (le)" in query:
                    result = [
                        {"metric": {"le": le}, "value": [at, n]}
                        for le, n in (("0.1", "90"), ("0.25", "99"), ("+Inf", "100"))
                    ]
                else:
                    count = "3" if "5.." in query else "100"
                    result = [{"metric": {}, "value": [at, count]}]
                body = json.dumps(
                    {"status": "success", "data": {"resultType": "vector", "result": result}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server


def test_the_provider_reads_a_waves_regions_side_by_side() -> None:
    targets = [Target(service="shop", env="prod", region=r) for r in REGIONS]
    with PairedPrometheus() as fake:
        settings = PrometheusSettings(
            url=fake.root,
            scrape_interval=1,
            baseline='service="$service",region="$region",version="$stable_version"',
            canary='service="$service",region="$region",version="$new_version"',
        )
        provider = PrometheusMetrics(
            "shop", settings, ServiceConfig(regions=list(REGIONS)), lambda _: STATE
        )
        samples = provider.windows(targets, START, END)
    assert fake.regions_asked == set(REGIONS)
    assert [s.canary.requests for s in samples] == [100, 100]
    assert [s.baseline.errors for s in samples] == [3, 3]
    assert samples[0].canary.latency_buckets == {"0.1": 90, "0.25": 99, "+Inf": 100}


@pytest.fixture
def two_regions(tmp_path: Path) -> Iterator[tuple[HAProxyRouter, HAProxy]]:
    """One HAProxy, a backend per region (shop-us-east-1, shop-eu-west-1), blue and green
    in each; the router over both."""
    database = migrated_db()
    with (
        VersionServer("1.0.0") as blue,
        VersionServer("1.1.0") as green,
        HAProxy(
            tmp_path,
            free_port(),
            f"shop-{REGIONS[0]}",
            {"blue": (blue.port, 256), "green": (green.port, 0)},
            more_backends={
                f"shop-{REGIONS[1]}": {"blue": (blue.port, 256), "green": (green.port, 0)}
            },
        ) as haproxy,
    ):
        settings = HAProxySettings(
            router="haproxy", socket=str(haproxy.socket_path), backend="$service-$region"
        )
        yield HAProxyRouter("shop", settings, database), haproxy
    database.close()


def test_the_router_applies_a_waves_regions_together(
    two_regions: tuple[HAProxyRouter, HAProxy],
) -> None:
    router, haproxy = two_regions
    targets = [Target(service="shop", env="prod", region=r) for r in REGIONS]
    router.apply_all({t: STATE for t in targets})
    assert [router.state(t) for t in targets] == [STATE, STATE]
    for region in REGIONS:
        state = haproxy.command(f"show servers state shop-{region}")
        weights = {line.split()[3]: int(line.split()[7]) for line in state.splitlines()[2:] if line}
        assert weights == {"blue": 230, "green": 26}
    # Only the frontend's backend takes users; its split is the weights'.
    seen = answers(haproxy.frontend_url, 256)
    assert seen["1.1.0"] == 26
