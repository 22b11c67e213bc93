"""The canary judge: histogram maths, the sequential tests' guarantees, and verdicts."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.histogram import above_bound, aggregate, quantile_ms, slower_than, tail_bound
from bot.domain.judge import CanaryJudge, JudgeSettings
from bot.domain.judgement import judgement
from bot.domain.observations import CohortSample, WindowSample
from bot.domain.planner import trigger_for
from bot.domain.request import Guardrail
from bot.domain.sequential import MeanEvidence, RateEvidence, RatioEvidence
from tests.domain_helpers import ERROR_RATE, P95, T0, buckets, cohort, kpi_rail, rail

TEN_S = timedelta(seconds=10)
# The simulated canary fails 0.5 % of requests: a 99.5 % floor could never be shown to hold.
AVAILABILITY = rail("availability", ">=", 99.0, "percent")

# -- histograms ---------------------------------------------------------------------------------


def test_quantile_interpolates_linearly_inside_the_bucket() -> None:
    b = {"0.1": 50, "0.2": 100, "+Inf": 100}
    assert quantile_ms(b, 0.5) == pytest.approx(100.0)
    assert quantile_ms(b, 0.75) == pytest.approx(150.0)
    assert quantile_ms(b, 0.25) == pytest.approx(50.0)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert quantile_ms({"0.1": 50, "0.2": 80, "+Inf": 100}, 0.95) == pytest.approx(200.0)
    assert quantile_ms({}, 0.95) is None


def test_slower_than_interpolates_and_is_exact_on_a_bound() -> None:
    b = {"0.1": 50, "0.2": 100, "+Inf": 100}
    assert slower_than(b, 150) == (pytest.approx(25.0), 100)
    assert slower_than(b, 100) == (pytest.approx(50.0), 100)
    assert above_bound(b, "0.1") == 50


def test_tail_bound_is_the_top_of_the_p95_bucket() -> None:
    b = {"0.05": 800, "0.1": 1500, "0.25": 1850, "0.5": 1890, "1": 1899, "+Inf": 1900}
    # 50 requests (2.6 %) above 0.25 s, 400 (21 %) above 0.1 s: the p95 lies in (0.1, 0.25].
    assert tail_bound(b, 0.95) == "0.25"
    assert tail_bound({"0.1": 10, "+Inf": 100}, 0.95) is None  # the p95 is in +Inf


def test_aggregate_sums_counts_and_weights_kpis_by_requests() -> None:
    a = CohortSample(requests=100, errors=1, latency_buckets={"+Inf": 100}, kpis={"k": 0.1})
    b = CohortSample(requests=300, errors=2, latency_buckets={"+Inf": 300}, kpis={"k": 0.2})
    total = aggregate([a, b])
    assert (total.requests, total.errors, total.latency_buckets) == (400, 3, {"+Inf": 400})
    assert total.kpis["k"] == pytest.approx(0.175)


# -- the sequential tests -----------------------------------------------------------------------


def _ratio_run(theta: float, seed: int, windows: int = 360) -> float:
    """The largest log e-value against "θ ≤ 1" over a run: 10 rps canary, 190 baseline."""
    # A window's errors are binomial: drawn at once, not request by request (the same law).
    rng = np.random.default_rng(seed)
    canary = rng.binomial(100, 0.005 * theta, windows)
    baseline = rng.binomial(1900, 0.005, windows)
    evidence = RatioEvidence(worse_than=1.0, within=2.0)
    best = 0.0
    for canary_errors, baseline_errors in zip(canary.tolist(), baseline.tolist(), strict=True):
        evidence.add(canary_errors, 100, baseline_errors, 1900)
        best = max(best, evidence.log_e_worse())
    return best


def test_the_ratio_test_rarely_crosses_on_a_healthy_canary_however_often_it_looks() -> None:
    # Ville: P(ever reaching 1/α) ≤ α. 200 hour-long runs looked at every window, α = 5 %.
    crossed = sum(_ratio_run(1.0, seed, 120) >= math.log(20) for seed in range(200))
    assert crossed <= 20  # expected at most 10; a wide margin keeps the test stable


def test_the_ratio_test_catches_a_doubled_error_rate() -> None:
    assert all(_ratio_run(2.0, seed, 120) >= math.log(100) for seed in range(10))


def test_the_ratio_test_cancels_the_baseline_rate_moving_with_load() -> None:
    # Both cohorts' error rates swing together tenfold: no evidence against the canary.
    evidence = RatioEvidence(worse_than=1.0, within=2.0)
    for i in range(200):
        rate = 0.001 if i % 2 else 0.01
        evidence.add(round(100 * rate * 10), 1000, round(1900 * rate * 10), 19000)
    assert evidence.log_e_worse() < 0
    assert evidence.log_e_within() > math.log(100)
    assert evidence.ratio() == pytest.approx(1.0, rel=0.05)


def test_windows_without_both_cohorts_move_nothing() -> None:
    evidence = RatioEvidence(worse_than=1.0, within=2.0)
    evidence.add(5, 100, 0, 0)
    evidence.add(0, 0, 5, 100)
    assert (evidence.loglik, evidence.canary_requests) == (b"", 0)
    assert evidence.log_e_worse() == evidence.log_e_within() == 0.0


def test_the_rate_test_tells_over_from_under_the_limit() -> None:
    over, under = RateEvidence(limit=0.01), RateEvidence(limit=0.01)
    over.add(300, 10_000)  # 3 %
    under.add(20, 10_000)  # 0.2 %
    assert over.log_e_above() > math.log(1000) and over.log_e_below() < 0
    assert under.log_e_below() > math.log(1000) and under.log_e_above() < 0


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=0.0001, max_value=0.5), st.integers(min_value=0, max_value=5000))
def test_the_rate_test_is_finite_for_any_limit_and_count(limit: float, requests: int) -> None:
    evidence = RateEvidence(limit=limit)
    evidence.add(requests * limit, requests)
    assert math.isfinite(evidence.log_e_above()) and math.isfinite(evidence.log_e_below())


def test_the_mean_test_weights_blocks_by_their_requests() -> None:
    evidence = MeanEvidence()
    rng = random.Random(3)
    for _ in range(40):
        evidence.add(-0.2 + rng.gauss(0, 0.05), 1000)
    assert evidence.mean() == pytest.approx(-0.2, abs=0.02)
    assert evidence.log_e_below(0.0, 1000) > math.log(1000)  # clearly below 0
    assert evidence.log_e_above(0.0, 1000) < 0


# -- verdicts -----------------------------------------------------------------------------------


def make_judge(*rails: Guardrail, soak: float = 5.0, stages: int = 1) -> CanaryJudge:
    guardrails = list(rails) or [ERROR_RATE, P95, AVAILABILITY]
    judge = CanaryJudge.create(
        guardrails, [trigger_for(g, "medium") for g in guardrails], stages=stages
    )
    judge.start_stage(T0, soak)
    return judge


def feed(
    judge: CanaryJudge,
    minutes: float,
    canary_error_pct: float = 0.5,
    canary_slow: float = 0.01,
    kpis: tuple[float, float] | None = None,
    canary_rps: int = 10,
    seed: int = 0,
) -> str:
    """Windows of 10 s with binomial noise; the recommendation once it is not extend."""
    rng = random.Random(seed)
    verdict = "extend_analysis"
    for i in range(int(minutes * 6)):
        end = T0 + TEN_S * (i + 1)

        def side(n: int, error_pct: float, slow: float, kpi: float | None) -> CohortSample:
            errors = sum(rng.random() < error_pct / 100 for _ in range(n))
            slow_n = sum(rng.random() < slow for _ in range(n))
            return CohortSample(
                requests=n,
                errors=errors,
                latency_buckets=buckets(n, slow_n / n if n else 0.0),
                kpis={} if kpi is None else {"conversion": kpi * (1 + rng.gauss(0, 0.05))},
            )

        canary = side(canary_rps * 10, canary_error_pct, canary_slow, kpis and kpis[0])
        baseline = side(1900, 0.5, 0.01, kpis and kpis[1])
        judge.observe(WindowSample(start=end - TEN_S, end=end, baseline=baseline, canary=canary))
        verdict = judge.decide(end)
        if verdict != "extend_analysis":
            return verdict
    return verdict


def test_a_healthy_canary_is_promoted_after_the_soak_not_before() -> None:
    judge = make_judge(soak=5.0)
    assert feed(judge, 4.9) == "extend_analysis"
    assert feed(judge, 20, seed=1) == "promote"
    assert judge.soaked(T0 + timedelta(minutes=5))


def test_doubled_errors_roll_back_and_name_the_test() -> None:
    judge = make_judge()
    assert feed(judge, 30, canary_error_pct=2.0) == "rollback"
    verdict = judgement(judge, T0 + timedelta(minutes=30))
    assert verdict.recommendation == "rollback"
    assert verdict.statistical_confidence >= 0.99
    assert "errors vs baseline" in [r.test for r in verdict.breached("auto_rollback")]
    assert verdict.metrics.error_rate.verdict == "fail"


def test_slow_requests_roll_back_on_the_latency_guardrail() -> None:
    judge = make_judge()
    assert feed(judge, 30, canary_slow=0.05) == "rollback"
    breached = judgement(judge, T0).breached("auto_rollback")
    assert breached[0].guardrail == "latency_p95"
    assert breached[0].test.startswith("slow requests")


def test_low_traffic_never_promotes() -> None:
    judge = make_judge(soak=1.0)
    assert feed(judge, 30, canary_rps=0) == "extend_analysis"
    assert judgement(judge, T0 + timedelta(minutes=30)).no_data


def test_a_kpi_drop_rolls_back_and_a_leaning_kpi_holds_promotion() -> None:
    judge = make_judge(ERROR_RATE, P95, kpi_rail("conversion", -5), soak=2.0)
    judge.settings = JudgeSettings(kpi_block_requests=100)
    assert feed(judge, 40, kpis=(0.035, 0.05), canary_rps=20) == "rollback"
    result = next(r for r in judgement(judge, T0).results if r.guardrail == "kpi:conversion")
    assert result.state == "breached" and result.observed is not None and result.observed < -20


def test_alert_only_breach_is_reported_but_neither_rolls_back_nor_blocks() -> None:
    guardrails = [ERROR_RATE, P95]
    triggers = [trigger_for(g, "medium") for g in guardrails]
    triggers = [t.model_copy(update={"action": "alert"}) for t in triggers]
    judge = CanaryJudge.create(guardrails, triggers)
    judge.start_stage(T0, 1.0)
    assert feed(judge, 30, canary_error_pct=3.0) == "extend_analysis"
    verdict = judgement(judge, T0 + timedelta(minutes=30))
    assert verdict.breached("alert") and not verdict.breached("auto_rollback")


def test_the_judgement_fills_the_contract_metrics_from_the_stage() -> None:
    judge = make_judge()
    judge.observe(
        WindowSample(start=T0, end=T0 + TEN_S, baseline=cohort(2000, 0.5), canary=cohort(100, 1.0))
    )
    metrics = judgement(judge, T0 + TEN_S).metrics
    assert metrics.error_rate.baseline == pytest.approx(0.5)
    assert metrics.error_rate.canary == pytest.approx(1.0)
    assert metrics.error_rate.delta == pytest.approx(0.5)
    assert metrics.success_rate.canary == pytest.approx(99.0)


def test_a_new_stage_restarts_its_evidence_but_the_release_keeps_it() -> None:
    judge = make_judge(stages=3)
    feed(judge, 3)
    before = judge.errors.canary_requests
    judge.start_stage(T0 + timedelta(minutes=3), 5.0)
    assert judge.errors_stage.canary_requests == 0
    assert judge.errors.canary_requests == before > 0
    assert judge.stage_canary.requests == 0


def test_the_state_survives_a_json_round_trip() -> None:
    judge = make_judge(ERROR_RATE, P95, kpi_rail("conversion", -5))
    feed(judge, 3, kpis=(0.05, 0.05))
    again = CanaryJudge.model_validate_json(judge.model_dump_json())
    now = T0 + timedelta(minutes=3)
    assert judgement(again, now) == judgement(judge, now)
