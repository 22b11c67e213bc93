"""The live demo, shortened: a real canary through HAProxy, judged on what Prometheus measured,
rolled back by the bot when the new version fails one request in five.

The figures in the report are checked against Prometheus itself: every window the bot judged
is asked again, with the same query at the same time, and the report's totals are their sums.
"""

from __future__ import annotations

import io
import json
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from demo import live
from demo.servers import binary

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@dataclass(frozen=True)
class Run:
    outcome: live.Outcome
    thread: str
    # Every judged window's canary (requests, errors), asked of Prometheus again afterwards.
    asked_again: list[tuple[int, int]]


def _window(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _count(url: str, promql: str, at: datetime) -> int:
    rows = live.query(url, promql, at)
    assert len(rows) == 1, (promql, rows)
    value = rows[0]["value"]
    assert isinstance(value, list)
    return round(float(value[1]))


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Run:
    binary("prometheus")  # a clear message when `make deps` has not run
    binary("haproxy", "/usr/sbin")
    out = io.StringIO()
    workdir = tmp_path_factory.mktemp("live")
    canary = f'service="{live.SERVICE}",version="{live.FAULTY.version}"'
    with live.running(live.FAULTY, out, rate=100.0, bake_minutes=0.25, workdir=workdir) as result:
        asked = []
        for point in result.series:
            window = _window((point.end - point.start).total_seconds())
            requests = f"sum(increase(http_requests_total{{{canary}}}[{window}]))"
            errors = f'sum(increase(http_requests_total{{{canary},code=~"5.."}}[{window}]))'
            asked.append(
                (
                    _count(result.prometheus_url, requests, point.end),
                    _count(result.prometheus_url, errors, point.end),
                )
            )
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
    # Caught on the first step, at 10 % of the users' traffic.
    assert result.canary_percentage == 10.0


def test_the_report_figures_are_what_prometheus_measured(faulty: Run) -> None:
    result = faulty.outcome
    assert result.series, "the bot judged no window"
    read = [(p.canary_requests, p.canary_errors) for p in result.series]
    assert read == faulty.asked_again
    step = result.series[-1].step
    judged = [p for p in result.series if p.step == step]
    served = sum(p.canary_requests for p in judged)
    failed = sum(p.canary_errors for p in judged)
    report = result.report
    metrics = report["canary_analysis"]["metrics"]
    assert metrics["error_rate"]["canary"] == pytest.approx(failed / served * 100, abs=1e-3)
    assert report["progressive_rollout"]["users_affected"] == sum(
        p.canary_requests for p in result.series
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
    result = faulty.outcome
    port = int(result.prometheus_url.rsplit(":", 1)[1])
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def test_the_live_config_is_a_valid_services_toml(tmp_path: Path) -> None:
    """What the demo writes is what a team would: bootstrap accepts it as it is."""
    from bot.bootstrap import read_targets
    from bot.config import load_config

    config = tmp_path / "services.toml"
    config.write_text(live.config_text(tmp_path, live.Ports(1, 2, 3, 4), 0.5))
    targets = read_targets(load_config(config), config)
    chosen = targets[live.SERVICE]
    assert json.loads(chosen.metrics.model_dump_json())["provider"] == "prometheus"  # type: ignore[union-attr]
    assert json.loads(chosen.traffic.model_dump_json())["router"] == "haproxy"  # type: ignore[union-attr]
