"""The guardrail judge: histogram maths, Wilson bounds, and verdicts on synthetic windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.judge import (
    MIN_KPI_WINDOWS,
    MIN_REQUESTS,
    Judgement,
    aggregate,
    judge,
    quantile_ms,
    share_slower,
    wilson,
)
from bot.domain.observations import CohortSample, WindowSample
from bot.domain.request import ReleaseRequest
from tests.domain_helpers import MINUTE, T0, buckets, cohort, kpi_rail, make_plan, make_request

# -- quantile_ms: Prometheus histogram_quantile -------------------------------------------------


def test_quantile_interpolates_linearly_inside_the_bucket() -> None:
    b = {"0.1": 50, "0.2": 100, "+Inf": 100}
    assert quantile_ms(b, 0.5) == pytest.approx(100.0)  # rank 50: top of the first bucket
    assert quantile_ms(b, 0.75) == pytest.approx(150.0)  # halfway through (0.1, 0.2]
    assert quantile_ms(b, 0.25) == pytest.approx(50.0)  # the first bucket starts at 0


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    b = {"0.1": 50, "0.2": 80, "+Inf": 100}
    assert quantile_ms(b, 0.95) == pytest.approx(200.0)
    assert quantile_ms(b, 0.8) == pytest.approx(200.0)


def test_quantile_ignores_key_order() -> None:
    ordered = {"0.05": 10, "0.1": 60, "0.25": 90, "+Inf": 100}
    shuffled = {"+Inf": 100, "0.25": 90, "0.05": 10, "0.1": 60}
    for q in (0.5, 0.9, 0.95, 0.99):
        assert quantile_ms(shuffled, q) == quantile_ms(ordered, q)
    # rank 95 lies in +Inf: the highest finite bound, 250 ms
    assert quantile_ms(ordered, 0.95) == pytest.approx(250.0)
    # rank 75 lies in (0.1, 0.25]: 0.1 + 0.15 * 15/30
    assert quantile_ms(ordered, 0.75) == pytest.approx(175.0)


def test_quantile_of_nothing_is_none() -> None:
    assert quantile_ms({}, 0.95) is None
    assert quantile_ms({"0.1": 0, "+Inf": 0}, 0.95) is None


def test_quantile_skips_empty_buckets() -> None:
    b = {"0.05": 0, "0.1": 0, "0.25": 100, "+Inf": 100}
    assert quantile_ms(b, 0.5) == pytest.approx(175.0)  # 0.1 + 0.15 * 0.5


# -- share_slower -------------------------------------------------------------------------------


def test_share_slower_interpolates_within_a_bucket() -> None:
    b = {"0.1": 50, "0.2": 100, "+Inf": 100}
    assert share_slower(b, 150) == pytest.approx((25.0, 100))
    assert share_slower(b, 100) == pytest.approx((50.0, 100))
    assert share_slower(b, 50) == pytest.approx((75.0, 100))


def test_share_slower_counts_the_inf_bucket_as_slower() -> None:
    b = {"0.1": 50, "0.2": 90, "+Inf": 100}
    assert share_slower(b, 300) == pytest.approx((10.0, 100))
    assert share_slower({"0.1": 50, "0.2": 100, "+Inf": 100}, 5000) == pytest.approx((0.0, 100))


def test_share_slower_of_nothing() -> None:
    assert share_slower({}, 300) == (0.0, 0)


# -- wilson -------------------------------------------------------------------------------------


def test_wilson_known_value() -> None:
    low, high = wilson(0, 100, z=1.96)
    assert low == 0.0
    assert high == pytest.approx(0.0370, abs=1e-4)
    low, high = wilson(50, 100, z=1.96)
    assert low == pytest.approx(1 - high)
    assert low == pytest.approx(0.4038, abs=1e-3)


def test_wilson_without_data_is_uninformative() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 100_000), share=st.floats(0, 1))
def test_wilson_brackets_the_observed_share_and_narrows_with_n(n: int, share: float) -> None:
    bad = round(n * share)
    low, high = wilson(bad, n)
    assert 0 <= low <= bad / n + 1e-12
    assert bad / n - 1e-12 <= high <= 1
    low4, high4 = wilson(bad * 4, n * 4)
    assert high4 - low4 <= high - low + 1e-12


# -- aggregate ----------------------------------------------------------------------------------


def test_aggregate_sums_counts_and_weights_kpis_by_requests() -> None:
    a = CohortSample(
        requests=100, errors=1, latency_buckets={"0.1": 90, "+Inf": 100}, kpis={"conv": 0.10}
    )
    b = CohortSample(
        requests=300, errors=6, latency_buckets={"0.1": 200, "+Inf": 300}, kpis={"conv": 0.20}
    )
    c = CohortSample(requests=0, errors=0, kpis={"conv": 0.99})  # no requests: no weight
    total = aggregate([a, b, c])
    assert (total.requests, total.errors) == (400, 7)
    assert total.latency_buckets == {"0.1": 290, "+Inf": 400}
    assert total.kpis["conv"] == pytest.approx((0.10 * 100 + 0.20 * 300) / 400)


def test_aggregate_of_nothing_is_empty() -> None:
    total = aggregate([])
    assert (total.requests, total.errors, total.latency_buckets, total.kpis) == (0, 0, {}, {})
    only_idle = aggregate([CohortSample(requests=0, errors=0, kpis={"conv": 0.5})])
    assert only_idle.kpis == {}


# -- judge() ------------------------------------------------------------------------------------


def windows(
    n: int,
    canary: CohortSample | list[CohortSample],
    baseline: CohortSample | list[CohortSample] | None = None,
) -> list[WindowSample]:
    """n one-minute windows ending at T0+1 … T0+n minutes."""
    out = []
    for i in range(n):
        c = canary[i] if isinstance(canary, list) else canary
        b = baseline[i] if isinstance(baseline, list) else baseline
        out.append(
            WindowSample(
                start=T0 + i * MINUTE,
                end=T0 + (i + 1) * MINUTE,
                baseline=b if b is not None else cohort(20_000, 0.1),
                canary=c,
            )
        )
    return out


def run_judge(
    request: ReleaseRequest,
    ws: list[WindowSample],
    history: list[CohortSample] | None = None,
) -> Judgement:
    plan = make_plan(request)
    now = ws[-1].end if ws else T0
    return judge(request.guardrails.all(), plan.triggers, ws, history or [], now)


def states(j: Judgement) -> dict[str, str]:
    return {r.guardrail: r.state for r in j.results}


def test_a_healthy_canary_with_lots_of_traffic_is_promoted() -> None:
    j = run_judge(make_request(), windows(5, cohort(4_000, 0.1)))
    assert states(j) == dict.fromkeys(
        ["error_rate", "latency_p95", "latency_p99", "availability"], "holds"
    )
    assert j.recommendation == "promote"
    assert j.breached() == []
    assert j.canary_requests == 20_000
    assert 0.99 < j.statistical_confidence <= 1


def test_three_times_the_error_rate_breaches_and_rolls_back() -> None:
    ws = windows(5, cohort(4_000, 1.5), baseline=cohort(20_000, 0.5))
    j = run_judge(make_request(), ws)
    assert states(j)["error_rate"] == "breached"
    assert states(j)["availability"] == "breached"  # 98.5 % < 99.5 %
    assert j.recommendation == "rollback"
    err = next(r for r in j.results if r.guardrail == "error_rate")
    assert err.observed == pytest.approx(1.5)
    assert err.baseline == pytest.approx(0.5)
    assert err.action == "auto_rollback"
    assert "error_rate<1%" in err.detail
    assert {r.guardrail for r in j.breached("auto_rollback")} >= {"error_rate", "availability"}
    assert j.statistical_confidence > 0.99  # confident it is broken


def test_few_requests_are_no_data_and_never_promote() -> None:
    j = run_judge(make_request(), windows(5, cohort(6, 0.0)))  # 30 requests in all
    assert j.canary_requests < MIN_REQUESTS
    for name in ("error_rate", "availability", "latency_p95", "latency_p99"):
        assert states(j)[name] == "no_data"
    assert j.recommendation == "extend_analysis"
    assert j.statistical_confidence == 0.0
    err = next(r for r in j.results if r.guardrail == "error_rate")
    assert "too few to judge" in err.detail


@settings(max_examples=60, deadline=None)
@given(
    per_window=st.lists(st.integers(0, 9), min_size=1, max_size=5),
    error_pct=st.floats(0, 100),
)
def test_low_traffic_never_promotes(per_window: list[int], error_pct: float) -> None:
    canaries = [cohort(n, error_pct) for n in per_window]
    j = run_judge(make_request(), windows(len(per_window), canaries))
    assert sum(per_window) < MIN_REQUESTS
    assert j.recommendation != "promote"


def test_a_middling_error_rate_is_unproven_and_extends_the_analysis() -> None:
    # 0.3 % failing against availability>=99.5 % over 2,000 requests: neither bound of the
    # failing share clears the 0.5 % limit
    j = run_judge(make_request(), windows(5, cohort(400, 0.3)))
    assert states(j)["availability"] == "unproven"
    assert j.breached() == []
    assert j.recommendation == "extend_analysis"


def test_latency_regression_past_the_p95_budget_breaches() -> None:
    slow = cohort(4_000, 0.1, slow_share=0.2)  # a fifth of the requests take ~500 ms
    j = run_judge(make_request(), windows(5, slow))
    p95 = next(r for r in j.results if r.guardrail == "latency_p95")
    assert p95.state == "breached"
    assert p95.observed is not None and p95.observed > 300
    assert p95.baseline is not None and p95.baseline < 300
    assert states(j)["error_rate"] == "holds"
    assert j.recommendation == "rollback"
    assert j.metrics.latency_p95.verdict == "fail"
    assert j.metrics.latency_p95.canary > j.metrics.latency_p95.baseline


def kpi_windows(n: int, canary_value: float, baseline_value: float) -> list[WindowSample]:
    wobble = [0.002 * ((-1) ** i) for i in range(n)]  # a little noise, deterministic
    return windows(
        n,
        [cohort(4_000, 0.1, kpis={"conversion": canary_value + w}) for w in wobble],
        [cohort(20_000, 0.1, kpis={"conversion": baseline_value - w}) for w in wobble],
    )


def test_kpi_drop_beyond_tolerance_breaches_with_enough_windows() -> None:
    request = make_request(kpis=[kpi_rail("conversion", -2)])
    j = run_judge(request, kpi_windows(8, 0.08, 0.10))  # -20 % against >= -2 %
    kpi = next(r for r in j.results if r.guardrail == "kpi:conversion")
    assert kpi.state == "breached"
    assert kpi.observed == pytest.approx(-20, abs=0.5)
    assert kpi.baseline == pytest.approx(0.10, abs=1e-3)
    assert j.recommendation == "rollback"
    custom = {m.name: m for m in j.metrics.custom_metrics}
    assert custom["kpi:conversion"].verdict == "fail"
    assert custom["kpi:conversion"].canary < custom["kpi:conversion"].baseline


def test_kpi_with_too_few_windows_cannot_hold_the_release_back() -> None:
    request = make_request(kpis=[kpi_rail("conversion", -2)])
    j = run_judge(request, kpi_windows(MIN_KPI_WINDOWS - 1, 0.08, 0.10))
    assert states(j)["kpi:conversion"] == "no_data"
    assert j.recommendation == "promote"  # rates and latency hold; a KPI can only stop it


def test_kpi_within_tolerance_holds() -> None:
    request = make_request(kpis=[kpi_rail("conversion", -2)])
    j = run_judge(request, kpi_windows(8, 0.102, 0.10))
    assert states(j)["kpi:conversion"] == "holds"
    assert j.recommendation == "promote"


def test_after_a_full_switch_the_baseline_comes_from_history() -> None:
    idle = CohortSample(requests=0, errors=0)
    ws = windows(5, cohort(4_000, 0.1), baseline=idle)
    history = [cohort(10_000, 0.2) for _ in range(10)]
    j = run_judge(make_request(), ws, history)
    err = next(r for r in j.results if r.guardrail == "error_rate")
    assert err.baseline == pytest.approx(0.2)
    assert j.metrics.error_rate.baseline == pytest.approx(0.2)
    assert j.metrics.error_rate.canary == pytest.approx(0.1)
    assert j.metrics.latency_p95.baseline > 0
    assert j.recommendation == "promote"


def test_after_a_full_switch_kpis_compare_with_the_historic_baseline() -> None:
    request = make_request(kpis=[kpi_rail("conversion", -2)])
    idle = CohortSample(requests=0, errors=0)
    canaries = [cohort(4_000, 0.1, kpis={"conversion": 0.08 + 0.001 * (i % 2)}) for i in range(8)]
    history = [cohort(10_000, 0.1, kpis={"conversion": 0.10 + 0.001 * (i % 2)}) for i in range(8)]
    j = run_judge(request, windows(8, canaries, idle), history)
    kpi = next(r for r in j.results if r.guardrail == "kpi:conversion")
    assert kpi.state == "breached"
    assert kpi.baseline == pytest.approx(0.1005, abs=1e-4)


def test_canary_metrics_are_consistent_with_the_results() -> None:
    ws = windows(5, cohort(4_000, 1.5, slow_share=0.2), baseline=cohort(20_000, 0.5))
    j = run_judge(make_request(), ws)
    m = j.metrics
    breached = {r.guardrail for r in j.breached()}
    for comparison in (m.error_rate, m.latency_p95, m.success_rate):
        assert comparison.delta == pytest.approx(comparison.canary - comparison.baseline, abs=1e-3)
    assert m.error_rate.baseline == pytest.approx(0.5)
    assert m.error_rate.canary == pytest.approx(1.5)
    assert m.success_rate.baseline == pytest.approx(99.5)
    assert m.success_rate.canary == pytest.approx(98.5)
    assert m.error_rate.verdict == ("fail" if "error_rate" in breached else "pass") == "fail"
    assert m.success_rate.verdict == "fail"
    assert m.latency_p95.verdict == ("fail" if "latency_p95" in breached else "pass")
    custom = {c.name: c for c in m.custom_metrics}
    assert "latency_p99" in custom
    assert custom["latency_p99"].verdict == ("fail" if "latency_p99" in breached else "pass")
    assert "error_rate" not in custom and "latency_p95" not in custom


def test_healthy_metrics_pass_everywhere() -> None:
    j = run_judge(make_request(), windows(5, cohort(4_000, 0.1)))
    m = j.metrics
    assert (m.error_rate.verdict, m.latency_p95.verdict, m.success_rate.verdict) == (
        "pass",
        "pass",
        "pass",
    )
    assert all(c.verdict == "pass" for c in m.custom_metrics)
    assert m.error_rate.canary == pytest.approx(0.1)


def test_only_windows_inside_the_trigger_window_are_judged() -> None:
    # a bad burst 20 minutes ago has left the 5-minute error_rate window
    old = WindowSample(
        start=T0 - timedelta(minutes=21),
        end=T0 - timedelta(minutes=20),
        baseline=cohort(20_000, 0.1),
        canary=cohort(4_000, 10.0),
    )
    ws = [old, *windows(5, cohort(4_000, 0.1))]
    j = run_judge(make_request(), ws)
    assert states(j)["error_rate"] == "holds"
    assert j.recommendation == "promote"


def tail_heavy(requests: int, tail_share: float) -> CohortSample:
    """Fast requests, with ``tail_share`` of them slower than 10 s (only in +Inf)."""
    return CohortSample(
        requests=requests,
        errors=round(requests * 0.001),
        latency_buckets=buckets(requests, tail_share, slow_s=20),
    )


def test_an_alert_only_breach_does_not_roll_back() -> None:
    # low risk: p99 alerts instead of rolling back; 3 % beyond 10 s breaks p99, not p95
    j = run_judge(make_request(risk="low"), windows(5, tail_heavy(4_000, 0.03)))
    p99 = next(r for r in j.results if r.guardrail == "latency_p99")
    assert p99.state == "breached"
    assert p99.action == "alert"
    assert states(j)["latency_p95"] == "holds"
    assert j.recommendation != "rollback"
    assert j.breached("auto_rollback") == []


def test_an_alert_only_breach_still_promotes() -> None:
    j = run_judge(make_request(risk="low"), windows(5, tail_heavy(4_000, 0.03)))
    assert states(j)["latency_p99"] == "breached"
    assert j.recommendation == "promote"
