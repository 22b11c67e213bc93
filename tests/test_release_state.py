"""The release aggregate driven directly: gates, approvals, steps, guardrails, rollback. Who
may act is the access policy's (tests/test_access.py): here every actor is allowed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.contract import Check
from bot.domain.flags import FlagState
from bot.domain.observations import Target, WindowSample
from bot.domain.release import CommandRejected, PauseRecord, Release
from bot.domain.rollout import desired_flags, desired_traffic
from tests.domain_helpers import (
    FAILED_VERIFICATION,
    MINUTE,
    OK_VERIFICATION,
    STABLE,
    T0,
    VERSION,
    bad_window,
    buckets,
    cohort,
    gated_release,
    gates_for,
    healthy_window,
    make_request,
    new_release,
    on_metrics_loss,
    run,
    started_release,
    tick,
    tr,
)

US = Target(service="shop", env="prod", region="us-east-1")
EU = Target(service="shop", env="prod", region="eu-west-1")
STAGING = Target(service="shop", env="staging", region="us-east-1")


def actions(release: Release) -> list[str]:
    return [e.action for e in release.collect_events()]


def statuses(release: Release) -> list[str]:
    return [r.status for r in release.steps]


def until_step(release: Release, now: datetime, index: int, **kw: object) -> datetime:
    """Run healthy until step ``index`` is the current, started step."""
    return run(
        release,
        now,
        stop=lambda r: r.step_index == index and r.steps[index].status == "active",
        **kw,  # type: ignore[arg-type]
    )


# -- gates and approval -------------------------------------------------------------------------


def test_a_failing_check_fails_the_release_with_nothing_deployed() -> None:
    release = gated_release(make_request(), artifact=None)
    assert release.status == "failed"
    assert release.blockers and release.blockers[0].startswith("build_artifacts:")
    assert "not in the registry" in release.blockers[0]
    assert release.step_index == -1
    assert statuses(release) == ["pending"] * len(release.plan.steps)
    assert desired_traffic(release) == {}
    assert desired_flags(release, {}) == []
    assert release.current_percentage() == 0
    assert not release.is_active
    release.begin_if_due(T0 + MINUTE)
    assert release.status == "failed"
    events = actions(release)
    assert events[-1] == "release_failed"
    assert "step_started" not in events


def test_every_failing_check_is_a_blocker() -> None:
    release = new_release(make_request())
    checks = [
        Check(check="staging_tests", status="fail", details="3 tests fail"),
        Check(check="security_scan", status="warning", details="1 medium CVE"),
        Check(check="change_approval", status="fail", details="no approvers"),
    ]
    _, artifacts = gates_for(release.request, release.plan)
    release.record_gates(checks, artifacts, STABLE, auto_approve=True, now=T0)
    assert release.status == "failed"
    assert release.blockers == ["staging_tests: 3 tests fail", "change_approval: no approvers"]
    assert release.approvals == []


def test_record_gates_twice_is_rejected() -> None:
    release = gated_release(make_request(risk="low"))
    with pytest.raises(CommandRejected, match="expected pending_gates"):
        release.record_gates([], release.observed.artifacts, STABLE, True, T0)  # type: ignore[arg-type]


def test_low_risk_with_all_checks_passing_is_auto_approved_and_scheduled() -> None:
    release = gated_release(make_request(risk="low"))
    assert release.status == "scheduled"
    assert [(a.gate, a.type, a.approver) for a in release.approvals] == [
        ("release", "automated", "release-bot policy")
    ]
    release.begin_if_due(T0)
    assert release.status == "rolling_out"
    assert release.step_index == 0
    assert release.steps[0].status == "active"


def test_medium_risk_waits_for_a_human() -> None:
    release = gated_release(make_request(risk="medium"))
    assert release.status == "awaiting_approval"
    assert release.pending_approval == "release"
    release.begin_if_due(T0 + MINUTE)
    assert release.status == "awaiting_approval"
    release.approve("bob", T0 + MINUTE)
    assert release.status == "scheduled"
    assert release.approvals[-1].approver == "bob"
    assert release.approvals[-1].type == "manual"


def test_the_requester_may_approve_a_medium_risk_release() -> None:
    request = make_request(risk="medium")
    release = Release.create("rel-1", request, new_release(request).plan, ["alice"], "alice", T0)
    checks, artifacts = gates_for(request, release.plan)
    release.record_gates(checks, artifacts, STABLE, False, T0)
    release.approve("alice", T0)
    assert release.status == "scheduled"


def test_approving_twice_says_who_approved() -> None:
    release = gated_release(make_request(risk="medium"))
    release.approve("alice", T0)
    with pytest.raises(CommandRejected, match="alice approved it at 14:00:00 UTC"):
        release.approve("bob", T0 + MINUTE)
    assert len(release.approvals) == 1


def test_rejecting_the_release_fails_it() -> None:
    release = gated_release(make_request(risk="medium"))
    release.reject("bob", "not this week", T0)
    assert release.status == "failed"
    assert [e.action for e in release.collect_events()][-2:] == ["rejected", "release_failed"]
    assert "not this week" in release.blockers[0]
    assert desired_traffic(release) == {}


def test_begin_if_due_waits_for_the_maintenance_window() -> None:
    request = make_request(risk="low", maintenance_windows=[tr("16:00", "18:00")])
    release = gated_release(request)
    assert release.status == "scheduled"
    assert release.plan.start == T0.replace(hour=16)
    release.begin_if_due(T0 + timedelta(minutes=90))
    assert release.status == "scheduled"
    assert release.step_index == -1
    release.begin_if_due(release.plan.start)
    assert release.status == "rolling_out"
    assert release.steps[0].started_at == release.plan.start
    assert "scheduled" in actions(release)


# -- verification steps -------------------------------------------------------------------------


def test_verification_steps_wait_for_their_bake_and_a_result() -> None:
    release = started_release(make_request(risk="medium"))
    step = release.plan.steps[0]
    assert step.kind == "env_deploy"
    early = T0 + timedelta(minutes=step.bake_minutes - 1)
    assert not release.needs_verification(early)
    release.record_verification(OK_VERIFICATION, early)  # too early: ignored
    release.observe(healthy_window(T0, early), early)  # not a traffic step: ignored
    assert release.step_index == 0 and release.steps[0].status == "active"
    due = T0 + timedelta(minutes=step.bake_minutes)
    assert release.needs_verification(due)
    release.record_verification(OK_VERIFICATION, due)
    assert release.steps[0].status == "completed"
    assert release.steps[0].health == "healthy"
    assert release.step_index == 1 and release.steps[1].status == "active"
    assert release.observed.verifications == [OK_VERIFICATION]


def test_a_failed_verification_rolls_back_automatically() -> None:
    release = started_release(make_request(risk="medium"))
    due = T0 + timedelta(minutes=release.plan.steps[0].bake_minutes)
    release.record_verification(FAILED_VERIFICATION, due)
    assert release.status == "rolling_back"
    assert release.rollback is not None
    assert release.rollback.triggered_by == "automated"
    assert release.rollback.guardrail == "smoke_tests"
    assert "checkout 40%" in release.rollback.reason
    assert release.steps[0].status == "rolled_back"
    assert release.steps[0].health == "unhealthy"
    assert desired_traffic(release)[STAGING].new_weight == 0


# -- traffic steps: promote, extend, roll back ---------------------------------------------------


def test_healthy_windows_promote_after_the_bake() -> None:
    release = started_release(make_request(risk="medium"))
    now = until_step(release, T0, 1)
    step = release.plan.steps[1]
    started = release.steps[1].started_at
    assert started == now
    while now < started + timedelta(minutes=step.bake_minutes - 1):
        now += MINUTE
        tick(release, now)
        assert release.step_index == 1, "promoted before the bake ended"
    now += MINUTE
    tick(release, now)
    assert release.steps[1].status == "completed"
    assert release.steps[1].health == "healthy"
    assert release.steps[1].requests > 0
    assert release.step_index == 2
    assert release.judgement is not None and release.judgement.recommendation == "promote"
    assert "analysis_passed" in actions(release)


def test_the_full_judgement_is_rebuilt_each_minute_and_whenever_the_judge_speaks() -> None:
    release = started_release(make_request(risk="medium"))
    now = until_step(release, T0, 1)
    ten_seconds = timedelta(seconds=10)
    first = now + ten_seconds  # the step's first judgement
    judged = set()
    for _ in range(12):  # two minutes of quiet 10-second ticks
        now += ten_seconds
        tick(release, now)
        judged.add(release.judged_at)
    assert judged == {first, first.replace(second=0) + MINUTE, first.replace(second=0) + 2 * MINUTE}
    now += ten_seconds
    tick(release, now, bad_window)
    assert release.judged_at == now, "a breach was acted on with a stale judgement"
    assert release.status == "rolling_back"


def test_a_healthy_release_completes() -> None:
    release = started_release(make_request(risk="medium"))
    run(release, T0)
    assert release.status == "completed"
    assert statuses(release) == ["completed"] * len(release.plan.steps)
    assert release.current_percentage() == 100
    assert release.finished_at is not None
    assert release.rollback is None


def test_bad_windows_roll_back_automatically_naming_the_guardrail() -> None:
    release = started_release(make_request(risk="medium"))
    now = until_step(release, T0, 2)  # staging and the 5 % step done, 25 % active
    assert statuses(release)[:3] == ["completed", "completed", "active"]
    now += MINUTE
    tick(release, now, bad_window)
    assert release.status == "rolling_back"
    rb = release.rollback
    assert rb is not None
    assert rb.triggered_by == "automated"
    assert rb.guardrail in ("error_rate", "availability")
    assert rb.guardrail in rb.reason and "broke" in rb.reason
    assert statuses(release)[:3] == ["rolled_back"] * 3
    assert set(statuses(release)[3:]) == {"pending"}
    assert release.steps[2].health == "unhealthy"
    assert any(a.severity == "critical" and a.action_taken == "automatic rollback"
               for a in release.alerts)  # fmt: skip
    assert release.current_percentage() == 0
    release.confirm_rollback(False, now + MINUTE)
    assert release.status == "rolling_back"
    release.confirm_rollback(True, now + 2 * MINUTE)
    assert release.status == "rolled_back"
    assert rb.success is True and rb.completed_at == now + 2 * MINUTE
    assert release.current_percentage() == 0
    events = actions(release)
    assert events[-4:] == ["alert", "rollback_started", "rollback_waiting", "rollback_completed"]


def test_low_traffic_extends_then_pauses_without_promoting() -> None:
    release = started_release(make_request(risk="medium"))
    now = until_step(release, T0, 1)

    def trickle(start: datetime, end: datetime) -> WindowSample:
        return WindowSample(start=start, end=end, baseline=cohort(20_000), canary=cohort(3, 0))

    bake = release.plan.steps[1].bake_minutes
    for _ in range(int(bake * 3) - 1):
        now += MINUTE
        tick(release, now, trickle)
        assert release.status == "rolling_out" and release.step_index == 1
    now += MINUTE
    tick(release, now, trickle)
    assert release.status == "paused"
    assert release.pause_reason is not None
    assert "not enough evidence" in release.pause_reason
    assert release.steps[1].status == "active"


# -- manual gates, peak hours -------------------------------------------------------------------


def test_high_risk_asks_again_before_the_first_prod_step() -> None:
    release = started_release(make_request(risk="high"))
    now = run(release, T0, approver="")
    assert release.status == "awaiting_approval"
    assert release.pending_approval == "step:1"
    assert release.step_index == 1
    assert release.steps[1].status == "pending"
    assert US not in desired_traffic(release)
    release.approve("bob", now)
    assert release.status == "rolling_out"
    assert release.steps[1].status == "active"
    assert [a.gate for a in release.approvals] == ["release", "step:1"]
    assert desired_traffic(release)[US].new_weight == 1


def test_rejecting_a_step_gate_rolls_back_manually() -> None:
    release = started_release(make_request(risk="high"))
    now = run(release, T0, approver="")
    release.reject("bob", "wait for the freeze to end", now)
    assert release.status == "rolling_back"
    assert release.rollback is not None and release.rollback.triggered_by == "manual"
    assert release.rollback.actor == "bob"


def test_high_risk_holds_during_peak_hours_then_continues() -> None:
    request = make_request(risk="high", peak_hours=[tr("14:10", "15:00")])
    release = started_release(request)
    now = T0 + timedelta(minutes=release.plan.steps[0].bake_minutes)  # 14:10, peak starts
    tick(release, now)  # staging verified; prod would start in peak hours
    assert release.steps[0].status == "completed"
    assert release.holding_until == T0.replace(hour=15)
    assert release.step_index == 1 and release.steps[1].status == "pending"
    assert release.status == "rolling_out"
    assert US not in desired_traffic(release)
    release.release_hold(now + timedelta(minutes=20))
    assert release.holding_until is not None
    release.release_hold(T0.replace(hour=15))
    assert release.holding_until is None
    assert release.status == "awaiting_approval"  # the first prod step's manual gate
    assert release.pending_approval == "step:1"
    assert "holding" in actions(release)


def test_medium_risk_does_not_hold_in_peak_hours() -> None:
    request = make_request(risk="medium", peak_hours=[tr("14:00", "15:00")])
    release = started_release(request)
    tick(release, T0 + timedelta(minutes=release.plan.steps[0].bake_minutes))
    assert release.holding_until is None
    assert release.steps[1].status == "active"


# -- metrics errors, pause, resume, manual rollback ----------------------------------------------


def test_three_metrics_errors_in_a_row_pause_the_rollout_set_to_pause() -> None:
    release = on_metrics_loss(started_release(make_request(risk="medium")), "pause")
    now = until_step(release, T0, 1)
    for i in range(2):
        release.record_metrics_error("prometheus timed out", now + (i + 1) * MINUTE)
        assert release.status == "rolling_out"
    now += 3 * MINUTE
    release.record_metrics_error("prometheus timed out", now)
    assert release.status == "paused"
    assert "metrics unavailable for 3 checks" in (release.pause_reason or "")
    assert [(a.guardrail, a.severity) for a in release.alerts] == [
        ("metrics_provider", "warning"),  # at the first failure
        ("metrics_provider", "critical"),
    ]
    with pytest.raises(CommandRejected, match="not paused"):
        started_release(make_request(risk="medium")).resume("alice", now)
    release.resume("alice", now + MINUTE)
    assert release.status == "rolling_out"
    assert release.pause_reason is None
    assert release.steps[1].started_at == now + MINUTE  # the step starts again
    assert release.consecutive_metric_errors == 0
    events = actions(release)
    assert events.count("metrics_unavailable") == 3
    assert events[-2:] == ["resumed", "step_started"]


def test_a_good_window_resets_the_metrics_error_count() -> None:
    release = started_release(make_request(risk="medium"))
    now = until_step(release, T0, 1)
    release.record_metrics_error("timeout", now + MINUTE)
    release.record_metrics_error("timeout", now + 2 * MINUTE)
    tick(release, now + 3 * MINUTE)
    release.record_metrics_error("timeout", now + 4 * MINUTE)
    assert release.status == "rolling_out"
    assert release.consecutive_metric_errors == 1


def test_manual_rollback_during_the_rollout() -> None:
    release = started_release(make_request(risk="medium"))
    now = until_step(release, T0, 2)
    release.request_rollback("carol", "customer reports", now)
    assert release.status == "rolling_back"
    rb = release.rollback
    assert rb is not None
    assert (rb.triggered_by, rb.actor, rb.reason, rb.guardrail) == (
        "manual",
        "carol",
        "customer reports",
        None,
    )
    with pytest.raises(CommandRejected, match="already rolling back"):
        release.request_rollback("carol", "again", now)
    release.confirm_rollback(True, now + MINUTE)
    with pytest.raises(CommandRejected, match="already rolled back"):
        release.request_rollback("carol", "again", now)


def test_rollback_before_anything_started_cancels() -> None:
    release = gated_release(make_request(risk="medium"))
    release.request_rollback("alice", "wrong version", T0)
    assert release.status == "failed"
    assert release.rollback is None
    assert release.blockers == ["cancelled by alice: wrong version"]


def test_a_finished_release_cannot_be_rolled_back() -> None:
    release = started_release(make_request(risk="low"))
    run(release, T0)
    with pytest.raises(CommandRejected, match="has finished"):
        release.request_rollback("alice", "late", T0 + timedelta(hours=5))


# -- desired state per strategy -----------------------------------------------------------------


def test_canary_weight_is_the_step_percentage_in_the_first_region_only() -> None:
    release = started_release(make_request(risk="medium"))
    until_step(release, T0, 1)
    desired = desired_traffic(release)
    assert desired[STAGING].new_weight == 100
    assert desired[US].new_weight == 5
    assert desired[US].new_version == VERSION and desired[US].stable_version == STABLE
    assert desired[US].instances_updated == 1
    assert EU not in desired  # 5 % is a first-region wave
    assert release.current_percentage() == 5


def test_canary_reaches_every_region_at_25_percent() -> None:
    release = started_release(make_request(risk="medium"))
    until_step(release, T0, 2)
    desired = desired_traffic(release)
    assert desired[US].new_weight == desired[EU].new_weight == 25


def test_shadow_mirrors_without_user_traffic() -> None:
    release = started_release(make_request(risk="medium", strategy="shadow"))
    until_step(release, T0, 1)
    desired = desired_traffic(release)[US]
    assert release.current_step is not None and release.current_step.kind == "shadow"
    assert desired.mirror == 100
    assert desired.new_weight == 0
    assert release.current_percentage() == 0


def test_rolling_replaces_instances() -> None:
    release = started_release(make_request(risk="low", strategy="rolling"))
    until_step(release, T0, 2)  # 50 % of instances
    desired = desired_traffic(release)[US]
    assert desired.instances_total == 10
    assert desired.instances_updated == 5
    assert desired.new_weight == 50


def test_blue_green_verifies_green_at_zero_then_switches_everything() -> None:
    release = started_release(make_request(risk="medium", strategy="blue_green"))
    now = until_step(release, T0, 1)
    green = desired_traffic(release)[US]
    assert (green.new_weight, green.instances_updated) == (0, 10)
    now = until_step(release, now, 2)
    assert release.current_step is not None and release.current_step.kind == "switch"
    release.record_verification(OK_VERIFICATION, now + timedelta(hours=1))  # not verified
    assert release.step_index == 2 and release.steps[2].status == "active"
    desired = desired_traffic(release)
    assert desired[US].new_weight == 100
    assert desired[EU].new_weight == 0  # the first switch is the first region only
    run(release, now, stop=lambda r: r.step_index == 3)
    desired = desired_traffic(release)
    assert desired[US].new_weight == desired[EU].new_weight == 100


def test_feature_flag_keeps_the_code_and_the_flag_carries_the_share() -> None:
    request = make_request(risk="medium", strategy="feature_flag", flags=[("new_checkout", 50)])
    release = started_release(request)
    now = until_step(release, T0, 1)  # dark launch
    dark = desired_traffic(release)[US]
    assert (dark.new_weight, dark.flag) == (100, "new_checkout")
    flags = desired_flags(release, {"new_checkout": None})
    assert [(f.name, f.percentage, f.killed) for f in flags] == [("new_checkout", 0, False)]
    now = until_step(release, now, 3)  # flag at 25 %
    assert desired_traffic(release)[US].new_weight == 100
    existing = FlagState(name="new_checkout", service="shop", percentage=5)
    flags = desired_flags(release, {"new_checkout": existing})
    assert [(f.percentage, f.killed) for f in flags] == [(25, False)]
    assert release.current_percentage() == 25
    # rollback: the code stays, the kill switch turns the flag off
    release.request_rollback("alice", "conversion dropped", now)
    desired = desired_traffic(release)
    assert desired[US].new_weight == 100 and desired[US].flag == "new_checkout"
    assert desired[STAGING].new_weight == 0
    flags = desired_flags(release, {"new_checkout": existing.model_copy(update={"percentage": 25})})
    assert [(f.percentage, f.killed) for f in flags] == [(0, True)]


def test_after_a_rollback_only_the_stable_version_serves() -> None:
    release = started_release(make_request(risk="medium"))
    now = until_step(release, T0, 2)
    release.request_rollback("alice", "no", now)
    desired = desired_traffic(release)
    assert set(desired) == {STAGING, US, EU}
    for state in desired.values():
        assert state.stable_version == STABLE
        assert state.new_version is None
        assert state.new_weight == 0 and state.mirror == 0 and state.instances_updated == 0
    assert desired_flags(release, {}) == []


def test_a_completed_release_makes_the_new_version_stable() -> None:
    release = started_release(make_request(risk="low"))
    run(release, T0)
    for state in desired_traffic(release).values():
        assert state.stable_version == VERSION
        assert state.new_weight == 0


def test_current_percentage_while_critical_waits_for_approval_before_100() -> None:
    release = started_release(make_request(risk="critical", regions=("us-east-1",)))
    now = run(release, T0, approver="")
    release.approve("bob", now)  # the first prod step
    run(release, now, approver="", max_minutes=2000)
    assert release.pending_approval == f"step:{len(release.plan.steps) - 1}"
    assert desired_traffic(release)[US].new_weight == 75
    assert release.current_percentage() == 75


def tail_window(start: datetime, end: datetime) -> WindowSample:
    """3 % of requests beyond 10 s in both cohorts: p99<800ms breaks, p95 holds, and the
    canary is no slower than the baseline (the tail is not the new version's doing)."""
    canary = cohort(5_000, 0.1).model_copy(
        update={"latency_buckets": buckets(5_000, 0.03, slow_s=20)}
    )
    baseline = cohort(20_000, 0.1).model_copy(
        update={"latency_buckets": buckets(20_000, 0.03, slow_s=20)}
    )
    return WindowSample(start=start, end=end, baseline=baseline, canary=canary)


def test_a_p99_alert_for_low_risk_is_raised_once_per_step_without_rollback() -> None:
    release = started_release(make_request(risk="low"))
    now = until_step(release, T0, 1)
    for _ in range(3):
        now += MINUTE
        tick(release, now, tail_window)
    assert release.rollback is None
    assert [(a.guardrail, a.severity, a.action_taken) for a in release.alerts] == [
        ("latency_p99", "warning", "alerted; rollout continues")
    ]


def test_a_p99_alert_for_low_risk_lets_the_rollout_continue() -> None:
    release = started_release(make_request(risk="low"))
    run(release, T0, window_fn=tail_window)
    assert release.status == "completed", release.pause_reason
    assert release.steps[1].health == "degraded"


def test_current_percentage_during_a_peak_hours_hold_is_the_live_step() -> None:
    request = make_request(risk="high", peak_hours=[tr("14:20", "16:00")])
    release = started_release(request)
    run(release, T0, stop=lambda r: r.holding_until is not None)
    assert release.steps[1].status == "completed"
    assert release.steps[2].status == "pending"
    assert desired_traffic(release)[US].new_weight == 1
    assert release.current_percentage() == 1


# -- events -------------------------------------------------------------------------------------


def test_events_are_recorded_in_order_and_collected_once() -> None:
    release = started_release(make_request(risk="low", regions=("us-east-1",)))
    run(release, T0)
    events = release.collect_events()
    got = [e.action for e in events]
    assert got == [
        "release_requested",
        "plan_created",
        *["gate_checked"] * 12,
        "approved",
        "rollout_started",
        "step_started",
        "verified",
        "step_completed",
        *["step_started", "analysis_passed", "step_completed"] * 3,
        "release_completed",
    ]
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[0].actor == "dave"
    assert events[-1].details == f"{VERSION} serves all traffic"
    assert release.collect_events() == []


# -- property -----------------------------------------------------------------------------------


def very_bad_window(start: datetime, end: datetime) -> WindowSample:
    """20 % errors: one such window breaks error_rate over any 5-minute span."""
    return WindowSample(
        start=start, end=end, baseline=cohort(20_000, 0.1), canary=cohort(5_000, 20.0)
    )


def assert_no_skipped_step(release: Release) -> None:
    seen = statuses(release)
    assert seen.count("active") <= 1
    done = [s in ("completed", "rolled_back", "active") for s in seen]
    assert done == sorted(done, reverse=True), seen  # reached steps are a prefix
    if release.rollback is not None:
        assert "active" not in seen and "completed" not in seen
    else:
        assert "rolled_back" not in seen
        if "active" in seen:
            assert seen.index("active") == release.step_index


@settings(max_examples=40, deadline=None)
@given(
    pattern=st.lists(st.booleans(), max_size=60),
    risk=st.sampled_from(["low", "medium"]),
    strategy=st.sampled_from(["canary", "rolling", "shadow"]),
)
def test_a_release_never_skips_a_step(pattern: list[bool], risk: str, strategy: str) -> None:
    release = started_release(make_request(risk=risk, strategy=strategy))
    now = T0
    for i in range(300):
        if not release.is_active:
            break
        healthy = pattern[i] if i < len(pattern) else True
        now += MINUTE
        tick(release, now, healthy_window if healthy else very_bad_window)
        assert_no_skipped_step(release)
    assert release.status in ("completed", "rolled_back")
    if release.status == "completed":
        assert set(statuses(release)) == {"completed"}
    else:
        assert release.rollback is not None and release.rollback.success
    events = release.collect_events()
    assert [e.at for e in events] == sorted(e.at for e in events)


# -- pause and promote_now (human commands) -----------------------------------------------------


def judged_at_step(risk: str = "medium", index: int = 1) -> tuple[Release, datetime]:
    """Rolling out at traffic step ``index``, with one healthy window judged."""
    release = started_release(make_request(risk=risk))
    now = until_step(release, T0, index) + MINUTE
    tick(release, now)
    assert release.judged_step == index and release.status == "rolling_out"
    release.collect_events()
    return release, now


def test_a_human_pause_holds_traffic_and_stops_judging() -> None:
    release, now = judged_at_step()
    traffic = desired_traffic(release)
    release.pause("dave", "checking a customer report", now)
    assert release.status == "paused"
    assert release.paused == PauseRecord(reason="checking a customer report", by="dave", at=now)
    assert desired_traffic(release) == traffic  # nothing moves back or forward
    assert release.next_work(now + 20 * MINUTE) is None  # nothing observed or promoted
    [event] = release.collect_events()
    assert (event.action, event.actor, event.details) == (
        "paused",
        "dave",
        "checking a customer report",
    )
    release.resume("alice", now + 5 * MINUTE)
    assert release.status == "rolling_out" and release.paused is None
    assert release.steps[1].started_at == now + 5 * MINUTE  # fresh evidence


def test_pausing_twice_says_it_is_already_paused() -> None:
    release, now = judged_at_step()
    release.pause("alice", "", now)
    assert release.pause_reason == "paused by alice"
    with pytest.raises(CommandRejected, match=r"already paused \(by alice at 14:\d\d:00 UTC\)"):
        release.pause("bob", "me too", now + MINUTE)
    assert release.paused is not None and release.paused.by == "alice"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("scheduled", "nothing is deployed yet"),
        ("awaiting_release", "nothing is deployed yet"),
        ("rolling_back", "it is rolling back"),
        ("completed", "it is completed"),
    ],
)
def test_pause_applies_only_to_a_rollout(setup: str, message: str) -> None:
    request = make_request(risk="low" if setup == "completed" else "medium")
    release = gated_release(request)
    now = T0
    if setup == "scheduled":
        release.approve("alice", now)
    elif setup == "rolling_back":
        release = started_release(request)
        now = until_step(release, T0, 1)
        release.request_rollback("alice", "no", now)
    elif setup == "completed":
        release = started_release(request)
        now = run(release, T0)
    with pytest.raises(CommandRejected, match=message):
        release.pause("alice", "why", now)


def test_a_pause_at_a_step_gate_withdraws_the_question_and_resume_asks_again() -> None:
    release = started_release(make_request(risk="high"))
    now = run(release, T0, approver="")
    assert release.pending_approval == "step:1"
    release.pause("dave", "hold on", now)
    assert release.status == "paused" and release.pending_approval is None
    with pytest.raises(CommandRejected, match="is paused"):
        release.approve("bob", now)
    release.resume("alice", now + MINUTE)
    assert release.status == "awaiting_approval" and release.pending_approval == "step:1"
    release.approve("bob", now + MINUTE)
    assert release.steps[1].status == "active"


def test_resuming_a_pause_during_a_peak_hours_hold_keeps_the_hold() -> None:
    request = make_request(risk="high", peak_hours=[tr("14:10", "15:00")])
    release = started_release(request)
    now = T0 + timedelta(minutes=release.plan.steps[0].bake_minutes)
    tick(release, now)
    assert release.holding_until == T0.replace(hour=15)
    release.pause("alice", "wait", now)
    release.resume("alice", now + MINUTE)
    assert release.status == "rolling_out" and release.steps[1].status == "pending"
    release.release_hold(T0.replace(hour=15))
    assert release.pending_approval == "step:1"  # the hold ended; its gate still applies


def test_an_approver_promotes_the_current_step_early() -> None:
    release, now = judged_at_step()
    assert not release.step_due(now)
    release.promote_now("bob", now)
    assert release.steps[1].status == "completed" and release.steps[1].health == "healthy"
    assert release.step_index == 2 and release.steps[2].status == "active"
    events = release.collect_events()
    assert [e.action for e in events] == ["promoted_manually", "step_completed", "step_started"]
    promoted = events[0]
    assert promoted.actor == "bob"
    assert promoted.data["step"] == 1
    assert "bake ended early by bob after 1.0 of" in promoted.details


def test_a_verification_step_cannot_be_promoted() -> None:
    release = started_release(make_request(risk="medium"))
    assert release.current_step is not None and release.current_step.kind == "env_deploy"
    with pytest.raises(CommandRejected, match="verification step"):
        release.promote_now("alice", T0 + MINUTE)
    assert release.step_index == 0


def test_promote_needs_a_verdict_on_the_step_so_a_double_click_skips_one_step() -> None:
    release = started_release(make_request(risk="medium"))
    now = until_step(release, T0, 1)
    with pytest.raises(CommandRejected, match=r"has not seen 5% .* yet"):
        release.promote_now("alice", now)
    now += MINUTE
    tick(release, now)
    release.promote_now("alice", now)
    with pytest.raises(CommandRejected, match=r"has not seen 25% .* yet"):
        release.promote_now("alice", now)  # the second click of a double click
    assert release.step_index == 2


def test_promote_never_passes_a_breached_guardrail() -> None:
    broken = started_release(make_request(risk="medium"))
    now = until_step(broken, T0, 1)
    now += MINUTE
    tick(broken, now, bad_window)
    assert broken.status == "rolling_back"
    with pytest.raises(CommandRejected, match="cannot promote rel-1: it is rolling back"):
        broken.promote_now("alice", now)
    # The same verdict while still rolling out (say, read before the tick acted on it).
    release, at = judged_at_step()
    release.judgement, release.judged_at = broken.judgement, at + MINUTE
    with pytest.raises(CommandRejected, match=r"cannot promote rel-1 past 5% .*availability"):
        release.promote_now("alice", at + MINUTE)
    assert release.step_index == 1


def test_promote_does_not_skip_a_pause_a_hold_or_the_next_gate() -> None:
    release, now = judged_at_step()
    release.pause("alice", "look", now)
    with pytest.raises(CommandRejected, match="it is paused"):
        release.promote_now("alice", now)
    held = started_release(make_request(risk="high", peak_hours=[tr("14:10", "15:00")]))
    at = T0 + timedelta(minutes=held.plan.steps[0].bake_minutes)
    tick(held, at)
    assert held.holding_until is not None
    with pytest.raises(CommandRejected, match="waits for peak hours to end"):
        held.promote_now("alice", at)
    # Promoted into a step with a manual gate: the gate still asks.
    critical = started_release(make_request(risk="critical", regions=("us-east-1",)))
    at = run(critical, T0, approver="")
    critical.approve("bob", at)
    last = len(critical.plan.steps) - 1
    at = run(critical, at, approver="", max_minutes=2000,
             stop=lambda r: r.step_index == last - 1 and r.judged_step == last - 1)  # fmt: skip
    critical.promote_now("bob", at)
    assert critical.status == "awaiting_approval" and critical.pending_approval == f"step:{last}"
