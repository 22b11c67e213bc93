"""``make demo-live``: release-bot canaries a real service on this machine.

Two versions of ``demo.service`` run side by side (1.0.0 on ``blue``, the new one on
``green``), HAProxy balances users between them, a load generator plays the users and
Prometheus scrapes both versions every second. The bot reads Prometheus, moves HAProxy's
weights through its runtime API, and judges the canary on what Prometheus measured, on a real
clock. Run 1: the new version fails a share of requests and the bot rolls it back by itself.
Run 2: the new version is healthy and the release completes. Every process is stopped at the
end, whatever happened. Before each release the demo's CI step (``demo/ci.py``) uploads real
evidence: a pytest report, a ruff scan, a CycloneDX SBOM and a signature over the artifact.

    python -m demo.live                  # both runs; reports in demo-live-*.json
    python -m demo.live --only faulty    # the run tests/test_live_demo.py makes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

import jsonschema

from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.domain.contract import contract_json_schema
from bot.domain.release import Release
from bot.domain.verdict_time import MIN_COVERED_SECONDS
from bot.ports.series import SeriesPoint
from bot.service import approve, report, start_release
from demo import ci, servers
from demo.loadgen import LoadGenerator

SERVICE = "shop"
STABLE = "1.0.0"
APPROVER = "alice"
WAITING = ("awaiting_approval", "paused")
# Enough users, and long enough bakes, for the judge to tell a healthy canary from a slow
# one at 10 % of traffic: 30 canary requests a second for 30 s and its extensions.
RATE = 300.0
BAKE_MINUTES = 0.5
# Prometheus starts with the demo: the planner needs a minute of its data to measure the
# users' rate (MIN_COVERED_SECONDS), and loses up to a few seconds to its first scrapes.
HISTORY_SECONDS = MIN_COVERED_SECONDS + 6


@dataclass(frozen=True)
class Scenario:
    name: str
    version: str
    error_rate: float  # of the new version's requests
    latency_ms: float
    changes: str


LATENCY_MS = 40.0  # 1.0.0's median per request; a healthy new version's is the same
FAULTY = Scenario(
    "faulty", "2.0.0", 0.20, LATENCY_MS, "new checkout path (fails one request in five)"
)
HEALTHY = Scenario("healthy", "2.0.1", 0.0, LATENCY_MS, "new checkout path, fixed")


@dataclass(frozen=True)
class Ports:
    blue: int
    green: int
    frontend: int
    prometheus: int

    @classmethod
    def free(cls) -> Ports:
        return cls(*(servers.free_port() for _ in range(4)))


@dataclass
class Outcome:
    """One run: the release, its report, what users saw, and when the fault was caught."""

    release: Release
    report: dict[str, object]
    ports: Ports
    prometheus_url: str
    users: dict[tuple[str, int], int]
    caught_after_seconds: float | None  # from the canary's first step to the rollback
    canary_percentage: float | None  # the traffic the canary had when it was caught
    canary_rps: float | None
    series: list[SeriesPoint]  # the windows the bot judged, as it read them


def config_text(workdir: Path, ports: Ports, bake_minutes: float, signing_key: Path) -> str:
    """The services.toml a team would write for this service (TOML, so it reads as docs)."""
    return f"""\
lock_admins = ["{APPROVER}"]

[services.{SERVICE}]
owner = "@shop-team"
approvers = ["{APPROVER}"]
environments = ["prod"]
regions = ["local"]
strategy = "canary"
artifact = "registry.local/{SERVICE}:{{version}}"
guardrails = ["error_rate<2%", "p95<300ms", "p99<800ms", "availability>=98%"]
bake_minutes = {bake_minutes}
capacity_rps = 500
instances = 2
key_transactions = ["checkout"]
signing_key = "{signing_key}"
smoke = [{{ name = "checkout", url = "http://127.0.0.1:{ports.green}/checkout" }}]

[services.{SERVICE}.metrics]
provider = "prometheus"
url = "http://127.0.0.1:{ports.prometheus}"
scrape_interval = 1
baseline = 'service="$service",version="$stable_version"'
canary = 'service="$service",version="$new_version"'

[services.{SERVICE}.traffic]
router = "haproxy"
socket = "{workdir / "admin.sock"}"
backend = "$service"
servers = ["blue", "green"]
initial_stable = "blue"
stable_version = "{STABLE}"
frontend_url = "http://127.0.0.1:{ports.frontend}/healthz"
"""


@contextlib.contextmanager
def fleet(workdir: Path, ports: Ports, scenario: Scenario) -> Iterator[None]:
    """The two versions, HAProxy in front and Prometheus scraping; all stopped on exit."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            servers.demo_service(workdir, STABLE, ports.blue, latency_ms=LATENCY_MS)
        )
        stack.enter_context(
            servers.demo_service(
                workdir, scenario.version, ports.green, scenario.error_rate, scenario.latency_ms
            )
        )
        stack.enter_context(
            servers.haproxy(
                workdir,
                ports.frontend,
                SERVICE,
                {"blue": (ports.blue, 256), "green": (ports.green, 0)},
            )
        )
        stack.enter_context(
            servers.prometheus(
                workdir,
                ports.prometheus,
                [
                    (ports.blue, {"service": SERVICE, "version": STABLE}),
                    (ports.green, {"service": SERVICE, "version": scenario.version}),
                ],
            )
        )
        yield


def query(prometheus_url: str, promql: str, at: datetime | None = None) -> list[dict[str, object]]:
    params = {"query": promql} | ({"time": f"{at.timestamp():.3f}"} if at else {})
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def wait_for_history(prometheus_url: str, seconds: float) -> None:
    """Until Prometheus holds ``seconds`` of the stable version's requests (scraped every
    second): the planner measures the traffic over what the data covers, and under a minute
    of it has no figure to plan on."""
    series = f'http_requests_total{{service="{SERVICE}",version="{STABLE}"}}'
    promql = f"min(count_over_time({series}[10m]))"
    deadline = time.monotonic() + seconds + 30
    while time.monotonic() < deadline:
        held = query(prometheus_url, promql)
        value = held[0]["value"] if held else None
        if isinstance(value, list) and float(value[1]) >= seconds:
            return
        time.sleep(1.0)
    raise servers.ServerError(f"Prometheus did not hold {seconds:g} s of {SERVICE} {STABLE}")


def wait_for_scrapes(prometheus_url: str, seconds: float = 30.0) -> None:
    """Until Prometheus has seen the stable version serve requests (the gates ask it)."""
    promql = f'sum(increase(http_requests_total{{service="{SERVICE}",version="{STABLE}"}}[5s]))'
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if query(prometheus_url, promql):
            return
        time.sleep(0.5)
    raise servers.ServerError(
        f"Prometheus saw no requests from {SERVICE} {STABLE} in {seconds:g} s"
    )


@contextlib.contextmanager
def running(
    scenario: Scenario,
    out: TextIO,
    rate: float = RATE,
    bake_minutes: float = BAKE_MINUTES,
    workdir: Path | None = None,
    history_seconds: float = HISTORY_SECONDS,
) -> Iterator[Outcome]:
    """Run ``scenario`` to its end; the servers are still up inside the ``with`` block (to
    ask Prometheus again) and stopped when it ends, whatever happened. ``history_seconds``:
    how long the users are served before the release (0: no figure to plan on)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="live-")))
        ports = Ports.free()
        stack.enter_context(fleet(workdir, ports, scenario))
        # Each thread waits for its answer (LATENCY_MS): enough threads to keep the pace.
        threads = max(4, round(rate * LATENCY_MS / 1000 * 2))
        load = LoadGenerator("127.0.0.1", ports.frontend, rate, threads=threads).start()
        stack.callback(load.stop)
        prometheus_url = f"http://127.0.0.1:{ports.prometheus}"
        wait_for_scrapes(prometheus_url)
        private, public = ci.signing_key(workdir)
        config = workdir / "services.toml"
        config.write_text(config_text(workdir, ports, bake_minutes, public))
        wiring = bootstrap(
            workdir / "release-bot.db",
            virtual_clock=False,
            config_path=config,
            tick_seconds=1.0,
            chat=TerminalChat(out),
        )
        stack.callback(wiring.close)
        digest = ci.build_and_upload(wiring.services, SERVICE, scenario.version, workdir, private)
        print(f"$ # CI uploaded tests, a scan, an SBOM and a signature for {digest}", file=out)
        if history_seconds > 0:
            print(f"$ # users served for {history_seconds:g} s, as Prometheus saw", file=out)
            wait_for_history(prometheus_url, history_seconds)
        # No traffic= on the line: the planner measures the users' rate on Prometheus.
        line = (
            f"{SERVICE} {scenario.version} risk=low ticket=CHG-{scenario.name.upper()} "
            f'changes="{scenario.changes}"'
        )
        print(f"$ /release {line}", file=out, flush=True)
        started = start_release(wiring.services, line, APPROVER)
        if not isinstance(started, Release):
            raise SystemExit(f"the bot could not read the line: {started.model_dump_json()}")
        release = drive(wiring, started.id)
        load.stop()
        yield outcome(wiring, release, ports, load.tally.snapshot())


def run(
    scenario: Scenario,
    out: TextIO,
    rate: float = RATE,
    bake_minutes: float = BAKE_MINUTES,
    workdir: Path | None = None,
) -> Outcome:
    with running(scenario, out, rate, bake_minutes, workdir) as result:
        return result


def drive(wiring: Wiring, release_id: str) -> Release:
    """Tick in real time until the release ends; approve as the service's approver."""
    services = wiring.services
    while True:
        release = services.store.get(release_id)
        if release.status == "awaiting_approval":
            release = approve(services, release_id, APPROVER)
        if not release.is_active or release.status == "paused":
            return release

        def settled() -> bool:
            current = services.store.get(release_id)
            return not current.is_active or current.status in WAITING

        wiring.ticker.run_until(settled, speed=1.0)


def outcome(
    wiring: Wiring, release: Release, ports: Ports, users: dict[tuple[str, int], int]
) -> Outcome:
    services = wiring.services
    contract = json.loads(report(services, release.id).model_dump_json())
    points = services.series.points(release.id)
    caught = pct = rps = None
    started = [(i, s.started_at) for i, s in enumerate(release.steps) if s.started_at]
    if release.rollback is not None and started:
        (_, first_at), (last, _) = started[0], started[-1]
        caught = (release.rollback.started_at - first_at).total_seconds()
        pct = release.plan.steps[last].percentage
        judged = [p for p in points if p.step == last]
        seconds = sum((p.end - p.start).total_seconds() for p in judged)
        rps = sum(p.canary_requests for p in judged) / seconds if seconds else None
    prometheus_url = f"http://127.0.0.1:{ports.prometheus}"
    return Outcome(release, contract, ports, prometheus_url, users, caught, pct, rps, points)


def main() -> None:
    parser = argparse.ArgumentParser(description="release-bot's live canary demo")
    parser.add_argument("--only", choices=["faulty", "healthy"])
    parser.add_argument("--rate", type=float, default=RATE, help="user requests per second")
    parser.add_argument("--bake-minutes", type=float, default=BAKE_MINUTES)
    parser.add_argument("--out", default="demo-live-report.json")
    args = parser.parse_args()
    scenarios = [s for s in (FAULTY, HEALTHY) if args.only in (None, s.name)]
    for scenario in scenarios:
        print(f"== live canary of {SERVICE} {scenario.version}: {scenario.changes} ==")
        result = run(scenario, sys.stdout, args.rate, args.bake_minutes)
        path = Path(
            args.out if scenario is FAULTY or args.only else "demo-live-healthy-report.json"
        )
        path.write_text(json.dumps(result.report, indent=2) + "\n")
        jsonschema.validate(result.report, contract_json_schema())  # release-bot schema
        print(summary(result, path))


def summary(result: Outcome, path: Path) -> str:
    served = sum(result.users.values())
    failed = sum(n for (_, status), n in result.users.items() if status >= 500 or status == 0)
    lines = [
        f"-- {result.release.id}: {result.release.status}; report in {path} "
        "(valid against `release-bot schema`)",
        f"   users: {served} requests, {failed} failed",
    ]
    if result.caught_after_seconds is not None:
        lines.append(
            f"   caught {result.caught_after_seconds:.0f} s after the canary started, at "
            f"{result.canary_percentage:g}% of traffic ({result.canary_rps or 0:.1f} canary rps)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
