"""Losing the metrics never leaves a fault serving: the thread is alerted at the first failure;
after the consecutive-failure limit a canary that serves production users is rolled back by
default (no data is no proof of safety), anything else pauses; ``on_metrics_loss = "pause"``
in data/services.toml always pauses.

The aggregate on its own, then the real bootstrap on the simulator with a faulty canary whose
metrics go down as it reaches 25 % of prod."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.config import DEFAULT_CONFIG
from bot.domain.config import MetricsLossPolicy
from bot.domain.planner import CONSECUTIVE_ERROR_LIMIT
from bot.domain.release import Release
from bot.service import approve, reconcile, report, start_release
from tests.domain_helpers import (
    MINUTE,
    T0,
    make_request,
    on_metrics_loss,
    run,
    started_release,
)

# -- the aggregate ------------------------------------------------------------------------------


def at_step(index: int, policy: MetricsLossPolicy = "rollback") -> tuple[Release, datetime]:
    # The plan says what losing the metrics does (planned from the service's on_metrics_loss).
    release = on_metrics_loss(started_release(make_request(risk="medium")), policy)
    now = run(
        release, T0, stop=lambda r: r.step_index == index and r.steps[index].status == "active"
    )
    return release, now


def lose_metrics(release: Release, now: datetime, times: int) -> datetime:
    for _ in range(times):
        now += MINUTE
        release.record_metrics_error("prometheus timed out", now)
    return now


def test_the_thread_is_alerted_at_the_first_failure() -> None:
    release, now = at_step(2)
    lose_metrics(release, now, 1)
    assert release.status == "rolling_out"
    assert [(a.guardrail, a.severity) for a in release.alerts] == [("metrics_provider", "warning")]
    alert = [e for e in release.collect_events() if e.action == "alert"][-1]
    assert "metrics unavailable: prometheus timed out" in alert.details
    assert "rolls back" in alert.details


def test_a_canary_serving_production_is_rolled_back_by_default() -> None:
    release, now = at_step(2)  # 25 % of prod
    assert release.current_percentage() == 25
    lose_metrics(release, now, CONSECUTIVE_ERROR_LIMIT - 1)
    assert release.status == "rolling_out"
    lose_metrics(release, now, 1)
    assert release.status == "rolling_back"
    assert release.rollback is not None
    assert release.rollback.triggered_by == "automated"
    assert release.rollback.guardrail == "metrics_provider"
    assert "metrics unavailable for 3 checks" in release.rollback.reason
    assert release.alerts[-1].action_taken == "automatic rollback"


def test_without_production_users_on_the_canary_it_pauses() -> None:
    release, now = at_step(0)  # staging: no production user on the new version
    assert release.current_percentage() == 0
    lose_metrics(release, now, CONSECUTIVE_ERROR_LIMIT)
    assert release.status == "paused"
    assert release.alerts[-1].action_taken == "rollout paused"


def test_set_to_pause_it_pauses_with_production_users_too() -> None:
    release, now = at_step(2, "pause")
    lose_metrics(release, now, CONSECUTIVE_ERROR_LIMIT)
    assert release.status == "paused"
    assert "metrics unavailable for 3 checks" in (release.pause_reason or "")


# -- on the simulator ---------------------------------------------------------------------------

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # outside payments-api's peak hours
LINE = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout"'
# A faulty canary whose metrics go down just as it reaches 25 % of prod: nothing shows it.
FAULTS = ["errors:3x@25", "metrics:down@25"]


def wired(tmp_path: Path, edit: Callable[[str], str] = lambda text: text) -> Wiring:
    config = tmp_path / "services.toml"
    config.write_text(edit(DEFAULT_CONFIG.read_text()))
    return bootstrap(
        ":memory:", clock_start=START, chat=TerminalChat(io.StringIO()), config_path=config
    )


def faulty_release(wiring: Wiring) -> Release:
    release = start_release(wiring.services, LINE, "dave")
    assert isinstance(release, Release), release
    wiring.fleet.inject("payments-api", release.version, FAULTS)
    return release


def settle(wiring: Wiring, release_id: str) -> Release:
    """Tick (approving gates as alice) until the release ends or waits for a human."""
    services, clock = wiring.services, wiring.virtual_clock
    assert clock is not None
    for _ in range(3000):
        release = services.store.get(release_id)
        if release.status == "awaiting_approval":
            release = approve(services, release_id, "alice")
        if not release.is_active or release.status == "paused":
            return release
        clock.advance(services.tick_seconds)
        reconcile(services)
    raise AssertionError(f"{release_id} never settled: {services.store.get(release_id).status}")


def loss_action(wiring: Wiring, release_id: str) -> tuple[str, str]:
    """What the plan's and the report's metrics-provider trigger say happens."""
    plan = wiring.services.store.get(release_id).plan
    planned = next(t.action for t in plan.triggers if t.guardrail == "metrics_provider")
    reported = report(wiring.services, release_id).deployment_plan.rollback_triggers
    return planned, next(t.action for t in reported if t.metric == "metrics_provider")


def test_metrics_down_at_25_percent_rolls_the_faulty_canary_back(tmp_path: Path) -> None:
    wiring = wired(tmp_path)
    release = settle(wiring, faulty_release(wiring).id)
    assert release.status == "rolled_back", release.pause_reason
    assert release.rollback is not None and release.rollback.guardrail == "metrics_provider"
    actions = [e.action for e in wiring.services.store.events(release.id)]
    first_failure = actions.index("metrics_unavailable")
    assert actions[first_failure + 1] == "alert"  # the thread hears at once
    assert release.current_percentage() == 0
    assert loss_action(wiring, release.id) == ("auto_rollback", "auto_rollback")


def test_a_service_set_to_pause_waits_for_a_human(tmp_path: Path) -> None:
    wiring = wired(
        tmp_path,
        lambda text: text.replace(
            "[services.payments-api]\n", '[services.payments-api]\non_metrics_loss = "pause"\n'
        ),
    )
    assert wiring.services.config.for_service("payments-api").on_metrics_loss == "pause"
    release = settle(wiring, faulty_release(wiring).id)
    assert release.status == "paused"
    assert "metrics unavailable" in (release.pause_reason or "")
    assert loss_action(wiring, release.id) == ("pause", "pause")
