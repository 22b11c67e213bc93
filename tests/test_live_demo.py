"""The live demo, shortened: a real canary through HAProxy, judged on what Prometheus measured,
rolled back by the bot when the new version fails one request in five.

The figures in the report are checked against Prometheus itself: every window the bot judged
is asked again, with the same query at the same time, and the report's totals are their sums.
"""

from __future__ import annotations

import io
import json
import math
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.bootstrap import read_targets
from bot.config import load_config
from bot.domain.histogram import aggregate, quantile_ms
from bot.domain.observations import CohortSample
from bot.domain.report import REQUESTS_PER_USER
from demo import live
from demo.servers import binary

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@dataclass(frozen=True)
class Asked:
    """One cohort's window as Prometheus answers it when asked again."""

    requests: int
    errors: int
    buckets: dict[str, int]


@dataclass(frozen=True)
class Run:
    outcome: live.Outcome
    thread: str
    # Every judged window, per cohort, asked of Prometheus again after the run.
    asked_again: list[dict[str, Asked]]


def _rows(url: str, promql: str, at: datetime) -> list[tuple[dict[str, str], float]]:
    out = []
    for row in live.query(url, promql, at):
        metric, value = row["metric"], row["value"]
        assert isinstance(metric, dict) and isinstance(value, list)
        out.append((metric, float(value[1])))
    return out


def _ask(url: str, version: str, start: datetime, end: datetime) -> Asked:
    """The provider's default queries, written out by hand, at the window's end."""
    selector = f'service="{live.SERVICE}",version="{version}"'
    window = f"{round((end - start).total_seconds() * 1000)}ms"
    [(_, requests)] = _rows(url, f"sum(increase(http_requests_total{{{selector}}}[{window}]))", end)
    [(_, errors)] = _rows(
        url, f'sum(increase(http_requests_total{{{selector},code=~"5.."}}[{window}]))', end
    )
    buckets = _rows(
        url,
        f"sum by (le) (increase(http_request_duration_seconds_bucket{{{selector}}}[{window}]))",
        end,
    )
    return Asked(
        round(requests),
        round(errors),
        {("+Inf" if m["le"] == "+Inf" else f"{float(m['le']):g}"): round(v) for m, v in buckets},
    )


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Run:
    binary("prometheus")  # a clear message when `make deps` has not run
    binary("haproxy", "/usr/sbin")
    out = io.StringIO()
    workdir = tmp_path_factory.mktemp("live")
    # No history: the plan has no traffic figure, and the fault is caught within seconds.
    with live.running(
        live.FAULTY, out, rate=100.0, bake_minutes=0.25, workdir=workdir, history_seconds=0
    ) as result:
        asked = [
            {
                cohort: _ask(result.prometheus_url, version, point.start, point.end)
                for cohort, version in (("baseline", live.STABLE), ("canary", live.FAULTY.version))
            }
            for point in result.series
        ]
    return Run(result, out.getvalue(), asked)


def test_the_bot_rolls_back_the_faulty_version_by_itself(
    faulty: Run, contract_schema: dict[str, Any]
) -> None:
    result, thread = faulty.outcome, faulty.thread
    release = result.release
    assert release.status == "rolled_back"
    assert release.rollback is not None and release.rollback.triggered_by == "automated"
    assert release.rollback.guardrail == "error_rate"
    assert "rollback completed: 1.0.0 serves all traffic again" in thread
    jsonschema.validate(result.report, contract_schema)
    assert result.report["rollback_status"]["success"] is True
    # Judged on the evidence the demo's CI uploaded, not on a simulated CI.
    checks = {c["check"]: c for c in result.report["pre_deployment"]["checks"]}
    assert checks["staging_tests"]["status"] == "pass"
    assert "3 passed, 0 failed" in checks["staging_tests"]["details"]
    assert "report.xml sha256:" in checks["staging_tests"]["details"]
    assert checks["build_artifacts"]["status"] == "pass", checks["build_artifacts"]["details"]
    assert "signed, SBOM attached" in checks["build_artifacts"]["details"]
    assert checks["performance_benchmark"]["status"] == "warning"  # no k6 here
    assert not [c for c in checks.values() if "simulated" in c["details"]]
    # Caught on the first step, at 10 % of the users' traffic.
    assert result.canary_percentage == 10.0


def test_the_report_figures_are_what_prometheus_measured(faulty: Run) -> None:
    """Requests, errors and latency: each window as the bot read it is what Prometheus
    answers; the report's figures for the judged step are their sums."""
    result = faulty.outcome
    assert result.series, "the bot judged no window"
    read = [
        (p.baseline_requests, p.baseline_errors, p.canary_requests, p.canary_errors)
        for p in result.series
    ]
    assert read == [
        (a["baseline"].requests, a["baseline"].errors, a["canary"].requests, a["canary"].errors)
        for a in faulty.asked_again
    ]
    step = result.series[-1].step
    judged = [a for p, a in zip(result.series, faulty.asked_again, strict=True) if p.step == step]
    metrics = result.report["canary_analysis"]["metrics"]
    for cohort in ("baseline", "canary"):
        summed = aggregate(
            [
                CohortSample(
                    requests=a[cohort].requests,
                    errors=a[cohort].errors,
                    latency_buckets=a[cohort].buckets,
                )
                for a in judged
            ]
        )
        rate = summed.errors / summed.requests * 100
        assert metrics["error_rate"][cohort] == pytest.approx(rate, abs=1e-3)
        p95 = quantile_ms(summed.latency_buckets, 0.95)
        assert p95 is not None
        assert metrics["latency_p95"][cohort] == pytest.approx(p95, abs=1e-3)
    # an estimate from the requests (docs/report.md): REQUESTS_PER_USER requests per user
    assert result.report["progressive_rollout"]["users_affected"] == math.ceil(
        sum(a["canary"].requests for a in faulty.asked_again) / REQUESTS_PER_USER
    )


def test_prometheus_saw_what_the_users_saw(faulty: Run) -> None:
    """The knob fails exactly one request in five: the users saw it through HAProxy, and
    Prometheus's count of the new version's errors agrees."""
    result = faulty.outcome
    answered = {key: n for key, n in result.users.items() if key[0] == live.FAULTY.version}
    users_failed = sum(n for (_, status), n in answered.items() if status == 500)
    assert sum(answered.values()) > 0
    assert users_failed / sum(answered.values()) == pytest.approx(0.2, abs=0.05)
    served = sum(p.canary_requests for p in result.series)
    failed = sum(p.canary_errors for p in result.series)
    assert failed / served == pytest.approx(0.2, abs=0.07)  # increase() extrapolates a little
    # Nobody failed on the stable version.
    assert not [k for k in result.users if k[0] == live.STABLE and k[1] != 200]


def test_every_process_is_stopped(faulty: Run) -> None:
    """Both versions, HAProxy and Prometheus: nothing answers on their ports any more."""
    ports = faulty.outcome.ports
    for port in (ports.blue, ports.green, ports.frontend, ports.prometheus):
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))


def test_the_live_config_is_a_valid_services_toml(tmp_path: Path) -> None:
    """What the demo writes is what a team would: bootstrap accepts it as it is."""
    config = tmp_path / "services.toml"
    key = tmp_path / "shop-cosign.pub"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")  # read at upload, not at start-up
    config.write_text(live.config_text(tmp_path, live.Ports(1, 2, 3, 4), 0.5, key))
    targets = read_targets(load_config(config), config)
    chosen = targets[live.SERVICE]
    assert json.loads(chosen.metrics.model_dump_json())["provider"] == "prometheus"  # type: ignore[union-attr]
    assert json.loads(chosen.traffic.model_dump_json())["router"] == "haproxy"  # type: ignore[union-attr]
