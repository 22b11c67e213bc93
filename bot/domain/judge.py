"""The guardrail judge until the statistical judge lands: thresholds with a noise guard.

Each guardrail is checked over its trigger's trailing window. A rate threshold is breached
only when the Wilson bound at ``Z`` says so (one-sided 99.5 %), and holds with evidence only
when the opposite bound is inside the threshold; latency budgets are judged the same way on
the share of requests slower than the budget (p95<300ms means under 5 % slower than 300 ms).
KPIs are compared with the baseline window by window (Welch): noisy at small stages, they can
stop a release but cannot hold it back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import NormalDist, fmean, variance
from typing import Literal

from bot.domain.base import Model
from bot.domain.contract import CanaryMetrics, CustomMetric, MetricComparison
from bot.domain.observations import CohortSample, WindowSample
from bot.domain.plan import Trigger
from bot.domain.request import Guardrail

Z = 2.576  # one-sided 99.5 %
MIN_REQUESTS = 50  # below this a window says nothing about rates
MIN_KPI_WINDOWS = 6
QUANTILES = {"latency_p50": 0.50, "latency_p95": 0.95, "latency_p99": 0.99}
_NORMAL = NormalDist()


class GuardrailResult(Model):
    guardrail: str
    action: Literal["auto_rollback", "alert", "pause"]
    observed: float | None  # what the threshold applies to; a KPI's relative change in %
    baseline: float | None  # the baseline's value of the metric, in its own unit
    canary_value: float | None = None  # the canary's value in the same unit as ``baseline``
    state: Literal["breached", "holds", "unproven", "no_data"]
    confidence: float  # probability the guardrail holds, from the normal approximation
    detail: str


class Judgement(Model):
    results: list[GuardrailResult]
    metrics: CanaryMetrics
    statistical_confidence: float
    recommendation: Literal["promote", "rollback", "extend_analysis"]
    canary_requests: int

    def breached(self, action: str | None = None) -> list[GuardrailResult]:
        return [
            r
            for r in self.results
            if r.state == "breached" and (action is None or r.action == action)
        ]


def aggregate(samples: Sequence[CohortSample]) -> CohortSample:
    """Sum counts; KPI values are averaged weighted by requests."""
    requests = sum(s.requests for s in samples)
    buckets: dict[str, int] = {}
    kpi_sum: dict[str, float] = {}
    kpi_weight: dict[str, int] = {}
    for s in samples:
        for le, count in s.latency_buckets.items():
            buckets[le] = buckets.get(le, 0) + count
        for name, value in s.kpis.items():
            kpi_sum[name] = kpi_sum.get(name, 0.0) + value * s.requests
            kpi_weight[name] = kpi_weight.get(name, 0) + s.requests
    kpis = {n: kpi_sum[n] / kpi_weight[n] for n in kpi_sum if kpi_weight[n] > 0}
    return CohortSample(
        requests=requests,
        errors=sum(s.errors for s in samples),
        latency_buckets=buckets,
        kpis=kpis,
    )


def _sorted_buckets(buckets: dict[str, int]) -> list[tuple[float, int]]:
    return sorted(((math.inf if le == "+Inf" else float(le)), c) for le, c in buckets.items())


def quantile_ms(buckets: dict[str, int], q: float) -> float | None:
    """Like Prometheus histogram_quantile: linear within the bucket holding rank q."""
    ordered = _sorted_buckets(buckets)
    if not ordered or ordered[-1][1] == 0:
        return None
    rank = q * ordered[-1][1]
    lower_le, lower_count = 0.0, 0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower_le * 1000
            span = count - lower_count
            share = (rank - lower_count) / span if span else 1.0
            return (lower_le + (le - lower_le) * share) * 1000
        lower_le, lower_count = le, count
    return lower_le * 1000


def share_slower(buckets: dict[str, int], budget_ms: float) -> tuple[float, int]:
    """(requests slower than the budget, interpolated; total requests)."""
    ordered = _sorted_buckets(buckets)
    if not ordered:
        return 0.0, 0
    total = ordered[-1][1]
    budget = budget_ms / 1000
    lower_le, lower_count = 0.0, 0
    for le, count in ordered:
        if budget <= le:
            if math.isinf(le):
                at_or_below = float(lower_count)
            else:
                at_or_below = lower_count + (count - lower_count) * (budget - lower_le) / (
                    le - lower_le
                )
            return total - at_or_below, total
        lower_le, lower_count = le, count
    return 0.0, total


def wilson(successes: float, n: int, z: float = Z) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate_result(
    guardrail: Guardrail,
    trigger: Trigger,
    bad: float,
    n: int,
    limit: float,
    observed: float | None,
    baseline: float | None,
    what: str,
) -> GuardrailResult:
    """Judge a share of bad requests against ``limit`` (a fraction it must stay under)."""
    if n < MIN_REQUESTS:
        return GuardrailResult(
            guardrail=guardrail.name,
            action=trigger.action,
            observed=observed,
            baseline=baseline,
            state="no_data",
            confidence=0.0,
            detail=f"{n} canary requests in {trigger.window_minutes:g} min: too few to judge",
        )
    low, high = wilson(bad, n)
    p = bad / n
    se = math.sqrt(max(p * (1 - p), 1e-9) / n)
    confidence = _NORMAL.cdf((limit - p) / se)
    state: Literal["breached", "holds", "unproven"] = (
        "breached" if low > limit else "holds" if high < limit else "unproven"
    )
    unit = "ms" if what == "ms" else "%"
    shown = "n/a" if observed is None else f"{observed:.4g}{unit}"
    label = guardrail.describe().split("<")[0].split(">")[0]
    detail = (
        f"{guardrail.describe()}: canary {label} {shown} over {n} requests "
        f"({trigger.window_minutes:g} min)"
    )
    return GuardrailResult(
        guardrail=guardrail.name,
        action=trigger.action,
        observed=observed,
        baseline=baseline,
        canary_value=observed,
        state=state,
        confidence=round(confidence, 4),
        detail=detail,
    )


def _kpi_result(
    guardrail: Guardrail,
    trigger: Trigger,
    canary_values: list[float],
    baseline_values: list[float],
) -> GuardrailResult:
    name = guardrail.kpi or ""
    if len(canary_values) < MIN_KPI_WINDOWS or (
        guardrail.relative and len(baseline_values) < MIN_KPI_WINDOWS
    ):
        return GuardrailResult(
            guardrail=guardrail.name,
            action=trigger.action,
            observed=None,
            baseline=None,
            state="no_data",
            confidence=0.0,
            detail=f"{name}: too few windows with sessions to compare",
        )
    mean_c = fmean(canary_values)
    var_c = variance(canary_values) / len(canary_values)
    mean_b = fmean(baseline_values) if baseline_values else 0.0
    if guardrail.relative:
        if mean_b <= 0:
            return GuardrailResult(
                guardrail=guardrail.name,
                action=trigger.action,
                observed=None,
                baseline=mean_b,
                state="no_data",
                confidence=0.0,
                detail=f"{name}: the baseline is zero, a relative change is undefined",
            )
        var_b = variance(baseline_values) / len(baseline_values)
        observed = (mean_c - mean_b) / mean_b * 100
        se = math.sqrt(var_c + var_b) / mean_b * 100
    else:
        observed, se = mean_c, math.sqrt(var_c)
    se = max(se, 1e-9)
    margin = observed - guardrail.value if not guardrail.upper_bound else guardrail.value - observed
    confidence = _NORMAL.cdf(margin / se)
    state: Literal["breached", "holds", "unproven"] = (
        "breached" if margin + Z * se < 0 else "holds" if margin - Z * se > 0 else "unproven"
    )
    unit = "%" if guardrail.relative else ""
    return GuardrailResult(
        guardrail=guardrail.name,
        action=trigger.action,
        observed=round(observed, 4),
        baseline=round(mean_b, 6) if baseline_values else None,
        canary_value=round(mean_c, 6),
        state=state,
        confidence=round(confidence, 4),
        detail=f"{guardrail.describe()}: canary {name} {observed:+.2f}{unit} "
        f"vs baseline over {len(canary_values)} windows",
    )


def judge_guardrail(
    guardrail: Guardrail,
    trigger: Trigger,
    windows: Sequence[WindowSample],
    baseline_history: Sequence[CohortSample],
) -> GuardrailResult:
    canary = aggregate([w.canary for w in windows])
    baseline = aggregate([w.baseline for w in windows])
    if baseline.requests == 0:
        # After a full switch there is no live baseline: compare with the one seen before.
        baseline = aggregate(list(baseline_history))
    n = canary.requests
    metric = guardrail.metric
    if metric in ("error_rate", "success_rate", "availability"):
        ok_share = guardrail.value / 100
        # Everything is judged as a share of failing requests that must stay under a limit.
        limit = ok_share if metric == "error_rate" else 1 - ok_share
        rate = canary.errors / n * 100 if n else None
        base = baseline.errors / baseline.requests * 100 if baseline.requests else None
        if metric != "error_rate":
            rate = None if rate is None else 100 - rate
            base = None if base is None else 100 - base
        return _rate_result(guardrail, trigger, canary.errors, n, limit, rate, base, metric)
    if metric in QUANTILES:
        q = QUANTILES[metric]
        slow, total = share_slower(canary.latency_buckets, guardrail.value)
        observed = quantile_ms(canary.latency_buckets, q)
        base = quantile_ms(baseline.latency_buckets, q)
        return _rate_result(guardrail, trigger, slow, total, 1 - q, observed, base, "ms")
    name = guardrail.kpi or ""
    canary_values = [w.canary.kpis[name] for w in windows if name in w.canary.kpis]
    baseline_values = [w.baseline.kpis[name] for w in windows if name in w.baseline.kpis]
    if len(baseline_values) < MIN_KPI_WINDOWS:
        # After a full switch there is no live baseline: compare with the one seen before.
        baseline_values = [s.kpis[name] for s in baseline_history if name in s.kpis]
    return _kpi_result(guardrail, trigger, canary_values, baseline_values)


def trailing(windows: Sequence[WindowSample], now: datetime, minutes: float) -> list[WindowSample]:
    since = now - timedelta(minutes=minutes)
    return [w for w in windows if w.end > since]


def _comparison(base: float | None, canary: float | None, failed: bool) -> MetricComparison:
    b = round(base or 0.0, 4)
    c = round(canary or 0.0, 4)
    return MetricComparison(
        baseline=b, canary=c, delta=round(c - b, 4), verdict="fail" if failed else "pass"
    )


def judge(
    guardrails: Sequence[Guardrail],
    triggers: Sequence[Trigger],
    stage_windows: Sequence[WindowSample],
    baseline_history: Sequence[CohortSample],
    now: datetime,
) -> Judgement:
    by_name = {t.guardrail: t for t in triggers}
    results = [
        judge_guardrail(
            g,
            by_name[g.name],
            trailing(stage_windows, now, by_name[g.name].window_minutes),
            baseline_history,
        )
        for g in guardrails
    ]
    failed = {r.guardrail for r in results if r.state == "breached"}
    canary = aggregate([w.canary for w in stage_windows])
    baseline = aggregate([w.baseline for w in stage_windows])
    if baseline.requests == 0:
        baseline = aggregate(list(baseline_history))

    def rate(s: CohortSample) -> float | None:
        return s.errors / s.requests * 100 if s.requests else None

    err_b, err_c = rate(baseline), rate(canary)
    rate_failed = bool(failed & {"error_rate", "availability", "success_rate"})
    custom: list[CustomMetric] = []
    for r in results:
        if r.guardrail in ("error_rate", "latency_p95", "availability", "success_rate"):
            continue
        if r.canary_value is None or r.baseline is None:
            continue  # nothing measured on one side: no comparison to report
        custom.append(
            CustomMetric(
                name=r.guardrail,
                baseline=round(r.baseline, 6),
                canary=round(r.canary_value, 6),
                verdict="fail" if r.state == "breached" else "pass",
            )
        )
    metrics = CanaryMetrics(
        error_rate=_comparison(err_b, err_c, "error_rate" in failed),
        latency_p95=_comparison(
            quantile_ms(baseline.latency_buckets, 0.95),
            quantile_ms(canary.latency_buckets, 0.95),
            "latency_p95" in failed,
        ),
        success_rate=_comparison(
            None if err_b is None else 100 - err_b,
            None if err_c is None else 100 - err_c,
            rate_failed,
        ),
        custom_metrics=custom,
    )
    rollbacks = [r for r in results if r.state == "breached" and r.action == "auto_rollback"]
    # A breach whose trigger only alerts is reported, but does not hold the rollout back.
    alerting = {r.guardrail for r in results if r.state == "breached" and r.action == "alert"}
    deciding = [r for r in results if r.guardrail not in alerting]
    gating = [r for r in deciding if not r.guardrail.startswith("kpi:")]
    blocked = any(r.state == "breached" for r in deciding)
    if rollbacks:
        recommendation: Literal["promote", "rollback", "extend_analysis"] = "rollback"
        confidence = max(1 - r.confidence for r in rollbacks)
    elif gating and all(r.state == "holds" for r in gating) and not blocked:
        recommendation = "promote"
        confidence = min(r.confidence for r in deciding if r.state != "no_data")
    else:
        recommendation = "extend_analysis"
        judged = [r.confidence for r in results if r.state != "no_data"]
        confidence = min(judged) if judged else 0.0
    return Judgement(
        results=results,
        metrics=metrics,
        statistical_confidence=round(confidence, 4),
        recommendation=recommendation,
        canary_requests=canary.requests,
    )
