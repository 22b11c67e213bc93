"""The Prometheus metrics provider against a real Prometheus (``demo.servers.Prometheus``)
scraping three instances of a demo service exported with ``prometheus_client``: two of the
stable version 1.0 (the baseline) and one of 2.0 (the canary). Known requests, errors,
latencies and checkouts are driven into them; the windows must find them.

One Prometheus serves the whole module: it spends about 5 s before its first scrape (its
discovery manager hands targets over every 5 s), so a fresh one per test would not fit.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_wsgi_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from pydantic import ValidationError

from bot.adapters.prometheus.metrics import (
    PrometheusMetrics,
    PrometheusSettings,
    le_label,
    placeholders,
    promql_duration,
)
from bot.domain.config import DependencyConfig, ServiceConfig, SmokeCheck
from bot.domain.observations import CohortSample, Target, TrafficState
from bot.domain.verdict_time import MeasuredTraffic, NotMeasured, RecentTraffic
from bot.parsing import parse_guardrail
from bot.ports.metrics import MetricsUnavailable
from bot.ports.traffic import RouterUnavailable
from demo.servers import Prometheus, ScrapeTarget, free_port, installed, scrape_config
from tests.loopback import LoopbackServer

SERVICE = "payments-api"
TARGET = Target(service=SERVICE, env="prod", region="eu-west")
CANARY_STATE = TrafficState(stable_version="1.0", new_version="2.0", new_weight=10)
STABLE_ONLY = TrafficState(stable_version="1.0")
# The default buckets of prometheus_client's Histogram, as the adapter names them.
BUCKETS: tuple[str, ...] = ("0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25")
BUCKETS += ("0.5", "0.75", "1", "2.5", "5", "7.5", "10", "+Inf")
CONVERSION = (
    "sum(increase(checkout_orders_total{$selector}[$window]))"
    " / sum(increase(checkout_sessions_total{$selector}[$window]))"
)
# A KPI whose counters exist but never move: 0/0 in every window.
IDLE = (
    "sum(increase(idle_total{$selector}[$window])) / sum(increase(idle_total{$selector}[$window]))"
)
LOG_ERRORS = "sum by (error_type) (increase(app_errors_total{$selector}[$window]))"
MIN_SAMPLES = 8  # per series in the window: bounds increase()'s extrapolation (see _bound)


# -- the demo service's instances ------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """What one instance serves during the test."""

    ok: int
    failed: int
    latencies: list[float]  # one per request, seconds
    sessions: int
    orders: int
    error_type: str


class Exposed:
    """A ``/metrics`` endpoint with its own registry, on its own port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._server, self._thread = start_wsgi_server(0, "127.0.0.1", registry=self.registry)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Instance(Exposed):
    """One instance of the demo service."""

    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.requests = Counter("http_requests_total", "Requests by code.", ["code"], registry=r)
        self.latency = Histogram("http_request_duration_seconds", "Latency.", registry=r)
        self.sessions = Counter("checkout_sessions_total", "Checkouts begun.", registry=r)
        self.orders = Counter("checkout_orders_total", "Checkouts paid.", registry=r)
        self.idle = Counter("idle_total", "Never moves.", registry=r)
        self.errors = Counter("app_errors_total", "Errors by type.", ["error_type"], registry=r)
        # Labelled children exist only once touched. Created at 0 here, Prometheus scrapes a
        # 0 before the first failure: otherwise the 500 series would be born at its first
        # value, increase() (which only sees differences between samples) would miss it, and
        # before any failure the errors query would find no series at all, which is "no
        # data", not zero.
        for code in ("200", "500"):
            self.requests.labels(code=code)
        for kind in ("db_timeout", "null_pointer"):
            self.errors.labels(error_type=kind)

    def serve(self, t: Traffic) -> None:
        assert len(t.latencies) == t.ok + t.failed
        self.requests.labels(code="200").inc(t.ok)
        self.requests.labels(code="500").inc(t.failed)
        self.errors.labels(error_type=t.error_type).inc(t.failed)
        for seconds in t.latencies:
            self.latency.observe(seconds)
        self.sessions.inc(t.sessions)
        self.orders.inc(t.orders)


STEADY = "steady-api"
STEADY_RPS = 300.0


class Steady(Exposed):
    """A service that has served ``STEADY_RPS`` for long, newly exposed to Prometheus (as the
    live demo's was to a Prometheus started a minute before): its counters are read off the
    clock at each scrape, so the rate between any two scrapes is known exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.since = time.time()
        self.registry.register(self)  # type: ignore[arg-type]

    def collect(self) -> Iterator[Metric]:
        served = 1e6 + STEADY_RPS * (time.time() - self.since)  # far from a counter's zero
        requests = CounterMetricFamily("http_requests_total", "Requests.", labels=["code"])
        requests.add_metric(["200"], 0.99 * served)
        requests.add_metric(["500"], 0.01 * served)
        yield requests
        buckets = [("0.1", served), ("+Inf", served)]
        yield HistogramMetricFamily(
            "http_request_duration_seconds", "Latency.", buckets=buckets, sum_value=0.02 * served
        )


BASE_A = Traffic(60, 4, [0.02] * 50 + [0.2] * 14, sessions=20, orders=5, error_type="db_timeout")
BASE_B = Traffic(40, 6, [0.02] * 30 + [0.7] * 16, sessions=40, orders=10, error_type="db_timeout")
CANARY = Traffic(30, 9, [1.5] * 39, sessions=10, orders=1, error_type="null_pointer")


def cumulative(latencies: list[float]) -> dict[str, int]:
    return {le: sum(1 for x in latencies if x <= float(le)) for le in BUCKETS}


# -- the fleet: instances, a real Prometheus scraping them, and a window that saw it all ----


@dataclass
class Fleet:
    prometheus: Prometheus
    start: datetime  # before the first scrape
    end: datetime  # after every increment was scraped; every sample up to it is stored
    samples: int  # the fewest samples any app series has in (start, end]
    instances: list[Instance] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.prometheus.url

    def first_scrape(self, service: str) -> float:
        """When Prometheus first stored the service's requests (the Unix time)."""
        promql = (
            f'min(min_over_time(timestamp(http_requests_total{{service="{service}"}})[10m:100ms]))'
        )
        return self.direct(promql)

    def direct(self, promql: str) -> float:
        """The one value ``promql`` has at the window's end, asked without the adapter."""
        answer = self.prometheus.query(promql, self.end.timestamp())
        assert len(answer) == 1, answer
        return next(iter(answer.values()))


def _totals(want: Mapping[str, float]) -> Callable[[dict[str, float]], bool]:
    def done(answer: dict[str, float]) -> bool:
        return {k.split("version=")[-1]: v for k, v in answer.items()} == want

    return done


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if installed("prometheus") is None:
        pytest.skip("prometheus not installed: run make deps")
    a, b, c, steady = Instance(), Instance(), Instance(), Steady()
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    labels = {"service": SERVICE}
    targets = [
        ScrapeTarget(a.address, labels | {"version": "1.0"}),
        ScrapeTarget(b.address, labels | {"version": "1.0"}),
        ScrapeTarget(c.address, labels | {"version": "2.0"}),
        ScrapeTarget(a.address, job="payments-db"),  # any live target will do for `up`
        ScrapeTarget(down, job="ledger-db", expect_up=False),
        ScrapeTarget(steady.address, {"service": STEADY, "version": "1.0"}, job="steady"),
    ]
    launched = time.time()
    prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), targets)
    try:
        prometheus.start()
        # Two zero samples of every series before anything moves: a window's first sample
        # is then 0, so increase() does not extrapolate backwards (a counter is never < 0).
        prometheus.wait_until(
            'count_over_time(http_requests_total{job="app"}[1m])',
            lambda got: len(got) == 6 and min(got.values()) >= 2,
        )
        for instance, traffic in ((a, BASE_A), (b, BASE_B), (c, CANARY)):
            instance.serve(traffic)
        # Each total reached means the scrape after the increments is stored (a scrape may
        # have caught an instance half-way, so wait on every metric).
        for promql, want in [
            ('sum by (version) (http_requests_total{job="app"})', {"1.0": 110, "2.0": 39}),
            (
                'sum by (version) (http_request_duration_seconds_count{job="app"})',
                {"1.0": 110, "2.0": 39},
            ),
            ('sum by (version) (checkout_sessions_total{job="app"})', {"1.0": 60, "2.0": 10}),
            ('sum by (version) (checkout_orders_total{job="app"})', {"1.0": 15, "2.0": 1}),
            ('sum by (version) (app_errors_total{job="app"})', {"1.0": 10, "2.0": 9}),
        ]:
            prometheus.wait_until(promql, _totals(want))
        prometheus.wait_until(
            'min(count_over_time(http_requests_total{job="app"}[1m]))',
            lambda got: bool(got) and min(got.values()) >= MIN_SAMPLES,
        )
        end = datetime.fromtimestamp(round(time.time(), 3), UTC)
        # Every target has a sample after ``end``, so nothing up to ``end`` is still being
        # written (each target's scrapes are stored in order): the adapter's queries and
        # the direct ones see the same data.
        prometheus.wait_until(
            'min(timestamp(http_requests_total{job="app"}))',
            lambda got: bool(got) and min(got.values()) > end.timestamp(),
        )
        start = end - timedelta(seconds=math.ceil(end.timestamp() - launched))
        window = promql_duration(end - start)
        fewest = prometheus.query(
            f'min(count_over_time(http_requests_total{{job="app"}}[{window}]))', end.timestamp()
        )
        yield Fleet(prometheus, start, end, int(min(fewest.values())), [a, b, c])
    finally:
        prometheus.stop()
        for exposed in (a, b, c, steady):
            exposed.stop()


def settings(url: str, **overrides: Any) -> PrometheusSettings:
    return PrometheusSettings.model_validate({"url": url, **overrides})


def metrics(
    url: str,
    state: TrafficState = CANARY_STATE,
    service_config: ServiceConfig | None = None,
    **overrides: Any,
) -> PrometheusMetrics:
    return PrometheusMetrics(
        SERVICE,
        settings(url, **overrides),
        service_config or ServiceConfig(regions=["eu-west"]),
        lambda target: state,
    )


def _bound(fleet: Fleet) -> float:
    """How far above the true count increase() may read here.

    Every series starts the window at 0, so nothing is added before its first sample; after
    its last one, Prometheus extrapolates at most 1.1 average scrape intervals, and n
    samples span n-1 intervals. So a count c reads between c and c·(1 + 1.1/(n-1))."""
    return 1 + 1.1 / (fleet.samples - 1)


def assert_count(got: int, known: int, fleet: Fleet) -> None:
    assert known <= got <= known * _bound(fleet) + 0.5, (got, known, fleet.samples)


# -- windows ---------------------------------------------------------------------------------


def test_window_finds_the_known_counts_of_each_cohort(fleet: Fleet) -> None:
    sample = metrics(fleet.url, kpis={"conversion": CONVERSION}).window(
        TARGET, fleet.start, fleet.end
    )
    assert (sample.start, sample.end) == (fleet.start, fleet.end)
    base, canary = sample.baseline, sample.canary
    assert_count(base.requests, 110, fleet)
    assert_count(base.errors, 10, fleet)
    assert_count(canary.requests, 39, fleet)
    assert_count(canary.errors, 9, fleet)
    # Both baseline instances convert a quarter: the ratio is exact whatever each series'
    # extrapolation (it scales an instance's numerator and denominator alike).
    assert base.kpis == {"conversion": pytest.approx(0.25, rel=1e-9)}
    assert canary.kpis == {"conversion": pytest.approx(0.1, rel=1e-9)}


def test_recent_traffic_reads_both_cohorts_with_the_window_queries(fleet: Fleet) -> None:
    minutes = (fleet.end - fleet.start).total_seconds() / 60
    provider = metrics(fleet.url)
    recent = provider.recent_traffic(SERVICE, ["eu-west"], fleet.end, minutes)
    assert recent is not None
    sample = recent.sample
    assert_count(sample.requests, 110 + 39, fleet)
    assert_count(sample.errors, 10 + 9, fleet)
    assert sample.latency_buckets["+Inf"] == sample.requests
    # Regions the selectors do not tell apart read the same series: counted once.
    assert provider.recent_traffic(SERVICE, ["eu-west", "us-east"], fleet.end, minutes) == recent
    # Before a release only the stable version serves.
    stable = metrics(fleet.url, STABLE_ONLY).recent_traffic(
        SERVICE, ["eu-west"], fleet.end, minutes
    )
    assert stable is not None
    assert_count(stable.sample.requests, 110, fleet)
    # The plan's figure: an upper estimate of the share of errors.
    measured = MeasuredTraffic.of(
        RecentTraffic.over(sample, sample.requests, 60, 1), [parse_guardrail("error_rate<1%")]
    )
    assert isinstance(measured, MeasuredTraffic)
    assert measured.shares["error_rate"] > sample.errors / sample.requests


def test_a_series_younger_than_the_look_back_is_measured_at_its_rate(fleet: Fleet) -> None:
    # The steady service was exposed when this Prometheus started, seconds before the
    # window's end: a 10-minute look-back holds only those seconds of its 300 rps. Divided
    # by the whole look-back, they read as about 4 rps.
    provider = metrics(fleet.url, STABLE_ONLY, scrape_interval=1)
    recent = provider.recent_traffic(STEADY, ["eu-west"], fleet.end, 10)
    assert recent is not None
    assert recent.rps == pytest.approx(STEADY_RPS, rel=0.02)
    scraped = fleet.end.timestamp() - fleet.first_scrape(STEADY)
    # From the end of the first 2 s tile that held two scrapes: at most two tiles lost.
    assert scraped - 4.5 <= recent.seconds <= scraped
    assert recent.sample.requests == pytest.approx(STEADY_RPS * scraped, rel=0.1)
    # A few seconds of data are no figure to plan on: the plan says why.
    figure = MeasuredTraffic.of(recent, [parse_guardrail("error_rate<2%")])
    assert isinstance(figure, NotMeasured)
    assert figure.reason.startswith(f"the metrics cover only {recent.seconds:.0f} s of the last")
    # A series older than the look-back (here the last 2 s) is read over all of it.
    whole = provider.recent_traffic(STEADY, ["eu-west"], fleet.end, 2 / 60)
    assert whole is not None and whole.seconds == pytest.approx(2)
    assert whole.rps == pytest.approx(STEADY_RPS, rel=0.05)


def test_buckets_are_summed_across_instances_and_named_as_the_domain_does(fleet: Fleet) -> None:
    sample = metrics(fleet.url).window(TARGET, fleet.start, fleet.end)
    base, canary = sample.baseline.latency_buckets, sample.canary.latency_buckets
    assert list(base) == list(BUCKETS)  # "1" not "1.0", "+Inf" last, in order
    known = cumulative(BASE_A.latencies + BASE_B.latencies)
    assert known["0.025"] == 80 and known["0.25"] == 94 and known["+Inf"] == 110
    for le in BUCKETS:
        assert_count(base[le], known[le], fleet)
        assert_count(canary[le], cumulative(CANARY.latencies)[le], fleet)
    assert list(base.values()) == sorted(base.values())  # cumulative


def test_window_equals_the_same_queries_run_directly(fleet: Fleet) -> None:
    m = metrics(fleet.url, kpis={"conversion": CONVERSION})
    sample = m.window(TARGET, fleet.start, fleet.end)
    w = promql_duration(fleet.end - fleet.start)
    for cohort, version in ((sample.baseline, "1.0"), (sample.canary, "2.0")):
        sel = f'service="{SERVICE}",version="{version}"'
        assert cohort.requests == round(
            fleet.direct(f"sum(increase(http_requests_total{{{sel}}}[{w}]))")
        )
        assert cohort.errors == round(
            fleet.direct(f'sum(increase(http_requests_total{{{sel},code=~"5.."}}[{w}]))')
        )
        by_le = fleet.prometheus.query(
            f"sum by (le) (increase(http_request_duration_seconds_bucket{{{sel}}}[{w}]))",
            fleet.end.timestamp(),
        )
        assert cohort.latency_buckets == {
            le_label(k.removeprefix("le=")): round(v) for k, v in by_le.items()
        }
        assert cohort.kpis["conversion"] == fleet.direct(
            CONVERSION.replace("$selector", sel).replace("$window", w)
        )


def test_a_kpi_of_no_sessions_is_left_out_not_zero(fleet: Fleet) -> None:
    sample = metrics(fleet.url, kpis={"idle": IDLE, "conversion": CONVERSION}).window(
        TARGET, fleet.start, fleet.end
    )
    assert set(sample.baseline.kpis) == {"conversion"}
    assert set(sample.canary.kpis) == {"conversion"}


def test_without_a_new_version_the_canary_is_zero_without_asking(fleet: Fleet) -> None:
    # A canary selector that would find nothing: asked, it would raise.
    m = metrics(fleet.url, STABLE_ONLY, canary='service="nowhere",version="$new_version"')
    sample = m.window(TARGET, fleet.start, fleet.end)
    assert sample.canary == CohortSample(requests=0, errors=0)
    assert_count(sample.baseline.requests, 110, fleet)


def test_a_selector_that_matches_nothing_is_unavailable_not_zero(fleet: Fleet) -> None:
    m = metrics(fleet.url, TrafficState(stable_version="9.9", new_version="2.0"))
    with pytest.raises(MetricsUnavailable) as caught:
        m.window(TARGET, fleet.start, fleet.end)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{TARGET.describe()} baseline: prometheus {fleet.url}: query ")
    assert 'version="9.9"' in message and "no series" in message


def test_a_bad_query_is_unavailable_and_named(fleet: Fleet) -> None:
    broken = "sum(rate(http_requests_total{$selector}[$window])"  # a parenthesis short
    m = metrics(fleet.url, kpis={"broken": broken})
    with pytest.raises(MetricsUnavailable) as caught:
        m.window(TARGET, fleet.start, fleet.end)
    message = str(caught.value)
    assert "sum(rate(http_requests_total{" in message
    assert "HTTP 400" in message and "bad_data" in message and "\n" not in message


def test_nan_where_a_count_is_expected_is_unavailable(fleet: Fleet) -> None:
    m = metrics(fleet.url, requests="sum(increase(http_requests_total{$selector}[$window])) * NaN")
    with pytest.raises(MetricsUnavailable, match="is not a count"):
        m.window(TARGET, fleet.start, fleet.end)


def test_a_router_that_cannot_say_the_versions_makes_the_window_unavailable(
    fleet: Fleet,
) -> None:
    def down(target: Target) -> TrafficState:
        raise RouterUnavailable("haproxy: socket refused")

    m = PrometheusMetrics(SERVICE, settings(fleet.url), ServiceConfig(), down)
    with pytest.raises(MetricsUnavailable, match="socket refused"):
        m.window(TARGET, fleet.start, fleet.end)
    assert m.probe(SERVICE) == []


def test_logs_count_error_types_per_cohort(fleet: Fleet) -> None:
    assert metrics(fleet.url).logs(TARGET, fleet.start, fleet.end) is None  # not measured
    logs = metrics(fleet.url, log_errors=LOG_ERRORS).logs(TARGET, fleet.start, fleet.end)
    assert logs is not None
    # null_pointer is 0 in the baseline: a type that did not happen is not listed.
    assert set(logs.baseline_errors_by_type) == {"db_timeout"}
    assert set(logs.canary_errors_by_type) == {"null_pointer"}
    assert_count(logs.baseline_errors_by_type["db_timeout"], 10, fleet)
    assert_count(logs.canary_errors_by_type["null_pointer"], 9, fleet)
    assert_count(logs.baseline_lines, 110, fleet)  # log_lines unset: the requests
    assert_count(logs.canary_lines, 39, fleet)
    assert metrics(fleet.url).traces(TARGET, fleet.start, fleet.end) is None


# -- the pre-flight probe ----------------------------------------------------------------------


def test_probe_names_the_metrics_that_answer(fleet: Fleet) -> None:
    kpis = {"conversion": CONVERSION, "refunds": "sum(refunds_total{$selector})"}
    assert metrics(fleet.url, kpis=kpis).probe(SERVICE) == [
        "requests",
        "errors",
        "latency",
        "kpi:conversion",
    ]
    assert metrics(fleet.url, TrafficState(stable_version="9.9")).probe(SERVICE) == []
    assert metrics(fleet.url, TrafficState()).probe(SERVICE) == []  # nothing deployed


def test_probe_asks_about_prod_in_the_first_region(fleet: Fleet) -> None:
    asked: list[Target] = []

    def versions(target: Target) -> TrafficState:
        asked.append(target)
        return STABLE_ONLY

    config = ServiceConfig(regions=["us-east", "eu-west"])
    PrometheusMetrics(SERVICE, settings(fleet.url), config, versions).probe(SERVICE)
    assert asked == [Target(service=SERVICE, env="prod", region="us-east")]


# -- dependencies ------------------------------------------------------------------------------


class Health(LoopbackServer):
    """A dependency's health endpoint: 200 on /healthz, 503 elsewhere."""

    name = "fake-health"

    def _make_server(self) -> ThreadingHTTPServer:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/healthz" else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def test_dependencies_by_query_and_by_url(fleet: Fleet) -> None:
    with Health() as health:
        config = ServiceConfig(
            dependencies=[
                DependencyConfig(name="payments-db", health_query='up{job="payments-db"}'),
                DependencyConfig(name="ledger-db", health_query='up{job="ledger-db"}'),
                DependencyConfig(name="ghost-db", health_query='up{job="ghost-db"}'),
                DependencyConfig(
                    name="cache", health_query="vector(0.5)", healthy=">= 1", degraded="> 0.2"
                ),
                DependencyConfig(
                    name="error-budget", health_query="vector(0.01)", healthy="< 0.05"
                ),
                DependencyConfig(name="fraud-api", health_url=f"{health.root}/healthz"),
                DependencyConfig(name="kyc-api", health_url=f"{health.root}/sick"),
                DependencyConfig(name="gone-api", health_url=f"http://127.0.0.1:{free_port()}/"),
                DependencyConfig(name="notes"),  # no probe
            ]
        )
        m = metrics(fleet.url, service_config=config)
        names = [d.name for d in config.dependencies] + ["unknown"]
        found = {p.name: p.health for p in m.dependencies(SERVICE, names)}
    assert found == {
        "payments-db": "healthy",
        "ledger-db": "unhealthy",  # its target is down: up == 0
        "ghost-db": "unhealthy",  # no series: never assumed healthy
        "cache": "degraded",
        "error-budget": "healthy",
        "fraud-api": "healthy",
        "kyc-api": "unhealthy",
        "gone-api": "unhealthy",
    }


def test_a_dependency_bound_that_is_no_comparison_stops_construction() -> None:
    config = ServiceConfig(
        dependencies=[DependencyConfig(name="db", health_query="up", healthy="at least 1")]
    )
    with pytest.raises(ValueError, match=r"payments-api: dependency db: 'at least 1' is not"):
        metrics("http://127.0.0.1:9", service_config=config)


# -- Prometheus down, slow or odd ---------------------------------------------------------------


class FakePrometheus(LoopbackServer):
    """Answers every query after ``delay`` seconds (cut short at stop) with ``body``."""

    name = "fake-prometheus"

    def __init__(self, body: bytes, delay: float = 0.0) -> None:
        super().__init__()
        self.body, self.delay = body, delay
        self._stopping = threading.Event()

    def _before_stop(self) -> None:
        self._stopping.set()

    def _make_server(self) -> ThreadingHTTPServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._stopping.wait(owner.delay)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(owner.body)))
                    self.end_headers()
                    self.wfile.write(owner.body)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, format: str, *args: object) -> None:
                return None

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


ONE = (
    b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}'
)
NOW = datetime.now(UTC)
AGO = NOW - timedelta(minutes=1)


def test_prometheus_down_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    config = ServiceConfig(dependencies=[DependencyConfig(name="db", health_query="up")])
    m = metrics(url, service_config=config)
    with pytest.raises(MetricsUnavailable) as caught:
        m.window(TARGET, AGO, NOW)
    assert f"prometheus {url}: query 'sum(increase(http_requests_total{{" in str(caught.value)
    assert "unreachable" in str(caught.value)
    assert m.probe(SERVICE) == []
    assert [p.health for p in m.dependencies(SERVICE, ["db"])] == ["unhealthy"]


def test_slow_prometheus_is_unavailable_after_the_timeout() -> None:
    config = ServiceConfig(dependencies=[DependencyConfig(name="db", health_query="up")])
    with FakePrometheus(ONE, delay=5.0) as slow:
        m = metrics(slow.root, service_config=config, timeout_seconds=0.2)
        with pytest.raises(MetricsUnavailable, match=r"no answer within 0\.2s"):
            m.window(TARGET, AGO, NOW)
        assert m.probe(SERVICE) == []  # gives up at the first timeout
        assert [p.health for p in m.dependencies(SERVICE, ["db"])] == ["unhealthy"]


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (b'{"status":"error","errorType":"execution","error":"boom"}', "execution: boom"),
        (b"<html>proxy login</html>", "answer is not JSON"),
        (b'{"status":"success","data":{"resultType":"matrix","result":[]}}', "got matrix"),
        (b'{"status":"success","data":{"resultType":"vector","result":[]}}', "no series"),
        (
            b'{"status":"success","data":{"resultType":"vector",'
            b'"result":[{"metric":{},"value":[1,"+Inf"]}]}}',
            "is not a count",
        ),
    ],
)
def test_odd_answers_are_unavailable(body: bytes, cause: str) -> None:
    with FakePrometheus(body) as odd, pytest.raises(MetricsUnavailable, match=cause):
        metrics(odd.root).window(TARGET, AGO, NOW)


def test_synthetic_checks_run_the_smoke_checks() -> None:
    with Health() as health:
        config = ServiceConfig(smoke=[SmokeCheck(name="checkout", url=f"{health.root}/healthz")])
        m = metrics("http://127.0.0.1:9", service_config=config, synthetic_runs=3)
        results = m.synthetic(TARGET, ["checkout", "refund"], NOW)
    assert [(r.name, r.success_rate) for r in results] == [("checkout", 1.0)]


# -- settings ----------------------------------------------------------------------------------


def one_error(raw: dict[str, Any]) -> str:
    """The single validation error as bootstrap would print it: ``key: message``."""
    with pytest.raises(ValidationError) as caught:
        PrometheusSettings.model_validate(raw)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    line = f"{'.'.join(str(p) for p in errors[0]['loc'])}: {errors[0]['msg']}"
    assert "\n" not in line
    return line


def test_settings_defaults() -> None:
    s = settings("http://prometheus:9090/")
    assert s.url == "http://prometheus:9090"
    assert (s.provider, s.timeout_seconds, s.probe_window, s.synthetic_runs) == (
        "prometheus",
        5.0,
        "5m",
        20,
    )
    assert s.kpis == {} and s.log_errors is None and s.log_error_label == "error_type"


def test_settings_missing_url_is_one_line() -> None:
    assert one_error({"provider": "prometheus"}) == "url: Field required"


def test_settings_unknown_key_is_one_line() -> None:
    assert one_error({"url": "http://p:9090", "timeout": 3}).startswith("timeout: Extra inputs")


def test_settings_bad_url_is_one_line() -> None:
    assert "url must be the http(s) URL" in one_error({"url": "prometheus:9090"})


def test_settings_unknown_placeholder_is_one_line() -> None:
    line = one_error({"url": "http://p:9090", "canary": 'version="$canary_version"'})
    assert line.startswith("canary: Value error, canary uses unknown placeholder $canary_version")
    assert "allowed: $service, $env, $region, $version, $stable_version, $new_version" in line
    line = one_error({"url": "http://p:9090", "kpis": {"conv": "sum(x{$selector}) / $sessions"}})
    assert "kpis.conv uses unknown placeholder $sessions" in line and "$window" in line


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"errors": 'sum(increase(x{$selector,code=~"5..$"}[$window]))'}, "write '$$'"),
        ({"requests": "sum(increase(http_requests_total[$window]))"}, "neither $selector"),
        ({"requests": "sum(http_requests_total{$selector})"}, "does not use $window"),
        ({"baseline": '{version="$version"}'}, "without braces"),
        ({"probe_window": "5 minutes"}, "PromQL duration"),
        ({"log_error_label": "error-type"}, "label name"),
        ({"timeout_seconds": 0}, "greater than 0"),
    ],
)
def test_settings_mistakes_are_one_line(raw: dict[str, Any], says: str) -> None:
    assert says in one_error({"url": "http://p:9090", **raw})


def test_placeholders_and_durations() -> None:
    assert placeholders('x{a="$service",b=~"v$$"}[${window}]') == {"service", "window"}
    assert promql_duration(timedelta(seconds=30)) == "30s"
    assert promql_duration(timedelta(minutes=5)) == "300s"
    assert promql_duration(timedelta(milliseconds=1500)) == "1500ms"
    with pytest.raises(ValueError):
        promql_duration(timedelta(0))
    assert [le_label(x) for x in ("0.05", "1.0", "10", "+Inf", "1e-3")] == [
        "0.05",
        "1",
        "10",
        "+Inf",
        "0.001",
    ]


def test_harness_config_gives_each_target_its_labels() -> None:
    got = scrape_config([ScrapeTarget("h:1", {"v": "1"}), ScrapeTarget("h:2", job="db")], "1s")
    assert got["global"] == {"scrape_interval": "1s", "scrape_timeout": "1s"}
    assert got["scrape_configs"] == [
        {"job_name": "app", "static_configs": [{"targets": ["h:1"], "labels": {"v": "1"}}]},
        {"job_name": "db", "static_configs": [{"targets": ["h:2"], "labels": {}}]},
    ]


def test_a_window_too_short_to_read_is_unavailable() -> None:
    with pytest.raises(MetricsUnavailable, match="longer than 0 ms"):
        metrics("http://127.0.0.1:9").window(TARGET, NOW, NOW)
