"""The rule planner: steps per risk, environment order and waves, strategies, triggers, timing."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.llm.rules import RulePlanner
from bot.domain.planner import (
    BAKE_MINUTES,
    PREPROD_BAKE_MINUTES,
    STAGES_BY_RISK,
    WAVE_THRESHOLD,
    in_ranges,
    instances_for,
    next_window_start,
    peak_ends,
)
from bot.domain.request import RISKS
from tests.domain_helpers import T0, kpi_rail, make_plan, make_request, rail, tr

REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")


def prod_pcts(plan) -> list[float]:  # type: ignore[no-untyped-def]
    return [s.percentage for s in plan.prod_steps() if s.kind in ("traffic", "batch", "flag")]


# -- steps per risk -----------------------------------------------------------------------------


def test_low_risk_takes_few_big_steps_with_short_bakes() -> None:
    plan = make_plan(make_request(risk="low"))
    assert prod_pcts(plan) == [10, 50, 100]
    assert all(s.bake_minutes == 5 for s in plan.prod_steps())
    assert plan.steps[0].bake_minutes == PREPROD_BAKE_MINUTES["low"] == 3
    assert not any(s.manual_gate for s in plan.steps)
    assert plan.velocity == "fast"


def test_medium_risk_steps_and_no_manual_gate() -> None:
    plan = make_plan(make_request(risk="medium"))
    assert prod_pcts(plan) == [5, 25, 50, 100]
    assert all(s.bake_minutes == BAKE_MINUTES["medium"] for s in plan.prod_steps())
    assert not any(s.manual_gate for s in plan.steps)
    assert plan.velocity == "normal"


def test_high_risk_more_smaller_steps_longer_bakes_and_gate_on_first_prod_step() -> None:
    low, high = make_plan(make_request(risk="low")), make_plan(make_request(risk="high"))
    assert prod_pcts(high) == [1, 5, 10, 25, 50, 100]
    assert len(high.prod_steps()) > len(low.prod_steps())
    assert prod_pcts(high)[0] < prod_pcts(low)[0]
    assert min(s.bake_minutes for s in high.prod_steps()) > max(
        s.bake_minutes for s in low.prod_steps()
    )
    prod = high.prod_steps()
    assert prod[0].manual_gate
    assert not any(s.manual_gate for s in prod[1:])
    assert not any(s.manual_gate for s in high.steps if s.env != "prod")
    assert high.velocity == "slow"
    assert any("human approves before the first prod step" in n for n in high.notes)


def test_critical_risk_gates_first_prod_step_and_the_step_to_100() -> None:
    plan = make_plan(make_request(risk="critical"))
    prod = plan.prod_steps()
    assert prod_pcts(plan) == STAGES_BY_RISK["critical"]
    assert [s.manual_gate for s in prod] == [True] + [False] * (len(prod) - 2) + [True]
    assert prod[-1].percentage == 100
    assert all(s.bake_minutes == 30 for s in prod)
    assert any("before 100 %" in n for n in plan.notes)


@pytest.mark.parametrize("risk", RISKS)
def test_stages_from_the_request_override_the_risk_defaults(risk: str) -> None:
    plan = make_plan(make_request(risk=risk, stages=[2, 20, 60, 100]))
    assert prod_pcts(plan) == [2, 20, 60, 100]
    assert any("from the request" in n and "2%, 20%, 60%, 100%" in n for n in plan.notes)


# -- environments and regions -------------------------------------------------------------------


def test_environments_run_dev_then_staging_then_prod() -> None:
    request = make_request(environments=("prod", "dev", "staging"), regions=REGIONS)
    plan = make_plan(request)
    envs = [s.env for s in plan.steps]
    assert envs == sorted(envs, key=["dev", "staging", "prod"].index)
    assert [s.kind for s in plan.steps[:2]] == ["env_deploy", "env_deploy"]
    assert [s.env for s in plan.steps[:2]] == ["dev", "staging"]
    assert all(s.phase == "preprod" and s.percentage == 100 for s in plan.steps[:2])
    # pre-prod environments get the first region; prod gets every region, in order
    assert [(e.name, e.region, e.order) for e in plan.environments] == [
        ("dev", "us-east-1", 1),
        ("staging", "us-east-1", 2),
        ("prod", "us-east-1", 3),
        ("prod", "eu-west-1", 4),
        ("prod", "ap-south-1", 5),
    ]


def test_regions_are_waves_small_steps_stay_in_the_first_region() -> None:
    plan = make_plan(make_request(risk="high", regions=REGIONS))
    for step in plan.prod_steps():
        if step.percentage < WAVE_THRESHOLD:
            assert step.regions == ["us-east-1"], step
            assert step.phase == "canary"
        else:
            assert step.regions == list(REGIONS), step
    assert plan.prod_steps()[-1].phase == "validation"


def test_no_prod_means_only_preprod_steps() -> None:
    plan = make_plan(make_request(environments=("dev", "staging")))
    assert [s.env for s in plan.steps] == ["dev", "staging"]
    assert plan.prod_steps() == []
    assert [e.name for e in plan.environments] == ["dev", "staging"]


def test_step_indexes_match_positions_and_minutes_sum_per_phase() -> None:
    plan = make_plan(make_request(risk="medium"))
    assert [s.index for s in plan.steps] == list(range(len(plan.steps)))
    # staging 5 (preprod); 5 % canary 10; 25, 50 % rollout 20; 100 % validation 10
    assert plan.minutes("preprod") == 5
    assert plan.minutes("canary") == 10
    assert plan.minutes("rollout") == 20
    assert plan.minutes("validation") == 10


# -- strategies ---------------------------------------------------------------------------------


def test_canary_steps_are_traffic_shares() -> None:
    plan = make_plan(make_request(strategy="canary"))
    assert {s.kind for s in plan.prod_steps()} == {"traffic"}
    assert plan.reported_strategy == "canary"
    assert all(s.mirror == 0 for s in plan.steps)


def test_blue_green_verifies_green_then_switches() -> None:
    plan = make_plan(make_request(strategy="blue_green", regions=("us-east-1", "eu-west-1")))
    prod = plan.prod_steps()
    assert [s.kind for s in prod] == ["green_verify", "switch", "switch"]
    assert prod[0].percentage == 0
    assert prod[1].percentage == prod[2].percentage == 100
    assert prod[1].regions == ["us-east-1"]
    assert prod[2].regions == ["us-east-1", "eu-west-1"]
    assert plan.reported_strategy == "blue_green"


def test_blue_green_single_region_switches_once_and_ignores_stages() -> None:
    plan = make_plan(
        make_request(strategy="blue_green", regions=("us-east-1",), stages=[5, 50, 100])
    )
    assert [s.kind for s in plan.prod_steps()] == ["green_verify", "switch"]
    assert any("percentages are not used" in n for n in plan.notes)


def test_rolling_replaces_batches() -> None:
    plan = make_plan(make_request(strategy="rolling", risk="low"))
    prod = plan.prod_steps()
    assert [s.kind for s in prod] == ["batch"] * 3
    assert [s.percentage for s in prod] == [10, 50, 100]
    assert "instances" in prod[0].description
    assert plan.reported_strategy == "rolling"


def test_feature_flag_dark_launches_then_raises_the_flag_capped_at_its_percentage() -> None:
    request = make_request(strategy="feature_flag", risk="high", flags=[("new_checkout", 30)])
    plan = make_plan(request)
    prod = plan.prod_steps()
    assert prod[0].kind == "dark_launch"
    assert prod[0].percentage == 0
    assert prod[0].regions == ["us-east-1", "eu-west-1"]  # the code goes everywhere, dark
    flags = prod[1:]
    assert {s.kind for s in flags} == {"flag"}
    assert [s.percentage for s in flags] == [1, 5, 10, 25, 30]
    assert all("new_checkout" in s.description for s in flags)
    assert plan.reported_strategy == "feature_flag"


def test_feature_flag_at_100_follows_every_stage() -> None:
    plan = make_plan(make_request(strategy="feature_flag", flags=[("f", 100)]))
    assert [s.percentage for s in plan.prod_steps() if s.kind == "flag"] == [5, 25, 50, 100]


def test_shadow_mirrors_before_any_user_traffic_and_reports_canary() -> None:
    plan = make_plan(make_request(strategy="shadow"))
    prod = plan.prod_steps()
    assert prod[0].kind == "shadow"
    assert prod[0].percentage == 0
    assert prod[0].mirror > 0
    assert [s.kind for s in prod[1:]] == ["traffic"] * 4
    assert [s.percentage for s in prod[1:]] == [5, 25, 50, 100]
    assert plan.strategy == "shadow"
    assert plan.reported_strategy == "canary"


# -- triggers -----------------------------------------------------------------------------------


def test_every_guardrail_gets_a_trigger_plus_the_metrics_provider() -> None:
    request = make_request(risk="medium", kpis=[kpi_rail("conversion", -2)])
    plan = make_plan(request)
    by = {t.guardrail: t for t in plan.triggers}
    assert set(by) == {
        "error_rate",
        "latency_p95",
        "latency_p99",
        "availability",
        "kpi:conversion",
        "metrics_provider",
    }
    # Judged every tick (10 s) on all the evidence since the stage began.
    for name in ("error_rate", "latency_p95", "latency_p99", "availability", "kpi:conversion"):
        assert by[name].window_minutes == pytest.approx(10 / 60, abs=0.01)
        assert by[name].action == "auto_rollback"
    suffix = " (sequential test, 99% confidence)"
    assert by["error_rate"].threshold == "error_rate<1% or errors above the baseline's" + suffix
    assert by["latency_p95"].threshold == (
        "p95<300ms or slow requests above the baseline's" + suffix
    )
    assert by["latency_p99"].threshold == "p99<800ms" + suffix
    assert by["availability"].threshold == "availability>=99.5%" + suffix
    assert by["kpi:conversion"].threshold == "kpi:conversion>=-2%" + suffix
    provider = by["metrics_provider"]
    assert provider.action == "auto_rollback"  # on_metrics_loss defaults to "rollback"
    assert provider.window_minutes == pytest.approx(3 * 10 / 60, abs=0.01)
    assert "3 consecutive" in provider.threshold
    assert "pauses while no production user" in provider.threshold


def test_the_metrics_provider_trigger_says_what_the_service_does_on_metrics_loss() -> None:
    request = make_request(risk="medium")
    for policy, action in (("rollback", "auto_rollback"), ("pause", "pause")):
        planner = RulePlanner(10.0, metrics_loss={request.service: policy})  # type: ignore[dict-item]
        by = {t.guardrail: t for t in planner.plan(request, T0, 10).triggers}
        assert by["metrics_provider"].action == action
    other = RulePlanner(10.0, metrics_loss={"another-service": "pause"})
    by = {t.guardrail: t for t in other.plan(request, T0, 10).triggers}
    assert by["metrics_provider"].action == "auto_rollback"


def test_p99_only_alerts_for_low_risk() -> None:
    low = {t.guardrail: t for t in make_plan(make_request(risk="low")).triggers}
    high = {t.guardrail: t for t in make_plan(make_request(risk="high")).triggers}
    assert low["latency_p99"].action == "alert"
    assert low["latency_p95"].action == "auto_rollback"
    assert high["latency_p99"].action == "auto_rollback"


def test_a_p50_guardrail_gets_its_own_trigger() -> None:
    request = make_request(latency=[rail("latency_p50", "<", 80, "ms")])
    by = {t.guardrail: t for t in make_plan(request).triggers}
    # The first latency guardrail also answers for the slow-request comparison.
    assert by["latency_p50"].threshold == (
        "p50<80ms or slow requests above the baseline's (sequential test, 99% confidence)"
    )


# -- timing: maintenance windows and peak hours ------------------------------------------------


def test_start_is_now_without_a_maintenance_window() -> None:
    assert make_plan(make_request()).start == T0


def test_start_is_now_inside_an_open_window() -> None:
    plan = make_plan(make_request(maintenance_windows=[tr("13:00", "15:00")]))
    assert plan.start == T0


def test_start_waits_for_the_next_window() -> None:
    plan = make_plan(make_request(maintenance_windows=[tr("02:00", "04:00", ["sat"])]))
    assert plan.start == datetime(2025, 3, 8, 2, 0, tzinfo=UTC)  # the Saturday after T0
    assert any("start delayed" in n for n in plan.notes)


def test_next_window_start_later_today_and_wrapping_past_midnight() -> None:
    assert next_window_start([tr("15:30", "16:00")], T0) == T0.replace(hour=15, minute=30)
    assert next_window_start([tr("23:00", "01:00")], T0) == T0.replace(hour=23)
    late = T0.replace(hour=0, minute=30)
    assert next_window_start([tr("23:00", "01:00")], late) == late  # open since 23:00
    assert next_window_start([], T0) == T0


def test_a_weekday_window_past_midnight_belongs_to_the_day_it_opens() -> None:
    window = [tr("23:00", "01:00", ["sat"])]
    saturday_0030 = datetime(2025, 3, 8, 0, 30, tzinfo=UTC)
    sunday_0030 = datetime(2025, 3, 9, 0, 30, tzinfo=UTC)
    assert in_ranges(window, sunday_0030)
    assert not in_ranges(window, saturday_0030)


def test_high_risk_holds_in_peak_hours_only_when_peak_hours_are_set() -> None:
    peak = [tr("09:00", "12:00")]
    assert make_plan(make_request(risk="high", peak_hours=peak)).hold_in_peak_hours
    assert make_plan(make_request(risk="critical", peak_hours=peak)).hold_in_peak_hours
    assert not make_plan(make_request(risk="medium", peak_hours=peak)).hold_in_peak_hours
    assert not make_plan(make_request(risk="high")).hold_in_peak_hours


def test_peak_ends() -> None:
    peaks = [tr("13:00", "15:00")]
    assert peak_ends(peaks, T0 + timedelta(minutes=30)) == T0.replace(hour=15)
    assert peak_ends(peaks, T0.replace(hour=16)) == T0.replace(hour=16)


# -- instances ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pct", "total", "expected"),
    [(0, 10, 0), (1, 10, 1), (5, 10, 1), (10, 10, 1), (25, 10, 3), (50, 12, 6), (100, 10, 10)],
)
def test_instances_for(pct: float, total: int, expected: int) -> None:
    assert instances_for(pct, total) == expected


def test_plan_carries_the_instance_count() -> None:
    assert make_plan(make_request()).instances == 10


# -- property -----------------------------------------------------------------------------------

stage_lists = st.lists(st.integers(1, 99), unique=True, max_size=7).map(
    lambda xs: [float(x) for x in sorted(xs)] + [100.0]
)


@settings(max_examples=60, deadline=None)
@given(
    stages=stage_lists,
    risk=st.sampled_from(RISKS),
    strategy=st.sampled_from(["canary", "rolling", "shadow"]),
)
def test_prod_steps_follow_the_stages_in_order(
    stages: list[float], risk: str, strategy: str
) -> None:
    plan = make_plan(make_request(risk=risk, strategy=strategy, stages=stages, regions=REGIONS))
    assert prod_pcts(plan) == stages
    assert all(b > a for a, b in itertools.pairwise(prod_pcts(plan)))
    assert [s.index for s in plan.steps] == list(range(len(plan.steps)))
    prod = plan.prod_steps()
    gated = [s.index for s in prod if s.manual_gate]
    if risk in ("low", "medium"):
        assert gated == []
    else:
        assert prod[0].manual_gate
        expected = {prod[0].index} | ({prod[-1].index} if risk == "critical" else set())
        assert set(gated) == expected
    for step in prod:
        if step.kind in ("traffic", "batch"):
            small = step.percentage < WAVE_THRESHOLD
            assert step.regions == (["us-east-1"] if small else list(REGIONS))
