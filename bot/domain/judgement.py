"""What the judge says, in words and in the contract's ``canary_analysis`` shape.

``statistical_confidence`` is 1 minus an anytime-valid p-value, Bonferroni-adjusted across
the tests sharing a budget: for ``rollback``, that the deciding test's canary is worse (it
reaches ``1 - alpha``, 0.99 by default, exactly when the rollback fires); otherwise, that
every gating test is within its bound (the weakest one), which reaches ``1 -
promote_alpha`` (0.95) when promotion is allowed.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from bot.domain.base import Model
from bot.domain.contract import CanaryMetrics, CustomMetric, MetricComparison
from bot.domain.histogram import quantile_ms
from bot.domain.judge import QUANTILES, CanaryJudge, Margin, Recommendation, Totals, Verdict
from bot.domain.observations import CohortSample
from bot.domain.plan import TriggerAction
from bot.domain.power import POWER
from bot.domain.request import Guardrail

TestState = Literal["breached", "holds", "unproven", "no_data"]
_Cohorts = tuple[CohortSample, CohortSample]  # (canary, baseline) over the stage


class TestResult(Model):
    test: str  # what was tested: "errors vs baseline", "error_rate<1%", ...
    guardrail: str  # the guardrail whose trigger it fires
    action: TriggerAction
    state: TestState
    observed: float | None  # the canary's value in the guardrail's unit (a KPI: % change)
    baseline: float | None  # the baseline's value, in the metric's own unit
    canary_value: float | None  # the canary's value, in the same unit as ``baseline``
    confidence: float  # breached: that the canary is worse; otherwise: that it is within
    gating: bool  # must hold before promotion
    detail: str
    stable_breaks: bool = False  # the baseline breaks this absolute guardrail too


class Judgement(Model):
    results: list[TestResult]
    metrics: CanaryMetrics
    statistical_confidence: float
    recommendation: Recommendation
    canary_requests: int  # in the current stage
    no_data: bool = False  # no canary requests for the judge's ``no_data_limit`` windows

    def breached(self, action: str | None = None) -> list[TestResult]:
        return [
            r
            for r in self.results
            if r.state == "breached" and (action is None or r.action == action)
        ]

    def blaming_the_canary(self, action: str) -> list[TestResult]:
        """Breaches that are the canary's own: rolling back (or pausing) would end them."""
        return [r for r in self.breached(action) if not r.stable_breaks]

    def stable_breaks_too(self) -> list[TestResult]:
        """Breaches of a bound the stable version breaks too, where the trigger would stop
        the rollout: going back to the stable version would not restore the bound."""
        return [r for r in self.breached() if r.stable_breaks and r.action != "alert"]


def _adjusted(log_e: float | None, threshold: float, alpha: float) -> float:
    """1 - the adjusted p-value: reaches ``1 - alpha`` exactly when ``log_e`` crosses."""
    if log_e is None:
        return 0.0
    return max(0.0, 1.0 - min(1.0, alpha * math.exp(min(threshold - log_e, 50.0))))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}%"


def _rate(events: float, requests: float) -> float | None:
    return events / requests * 100 if requests else None


def judgement(
    judge: CanaryJudge, now: datetime, verdicts: list[Verdict] | None = None
) -> Judgement:
    """Every test's result and the recommendation (``verdicts``: the judge's, with bounds,
    when the caller has them already)."""
    if verdicts is None:
        verdicts = judge.verdicts(with_bounds=True)
    recommendation = judge.decide(now, verdicts)
    settings = judge.settings
    # The stage's cohorts, summed once for every result and the contract metrics.
    cohorts = (judge.stage_canary.sample(), _baseline(judge))
    results = [_result(judge, v, cohorts, verdicts) for v in verdicts]
    if recommendation == "rollback":
        deciding = [
            r
            for r in results
            if r.state == "breached" and r.action == "auto_rollback" and not r.stable_breaks
        ]
        stated = max(r.confidence for r in deciding)
    else:
        stated = min(
            (_within(v, verdicts, settings.promote_alpha) for v in verdicts if v.gating),
            default=0.0,
        )
    return Judgement(
        results=results,
        metrics=_metrics(cohorts, results),
        statistical_confidence=round(stated, 4),
        recommendation=recommendation,
        canary_requests=judge.stage_canary.requests,
        no_data=judge.no_data_streak >= settings.no_data_limit,
    )


def _within(v: Verdict, verdicts: list[Verdict], alpha: float) -> float:
    """The confidence that a test is within its margin: a test the budget covers is as sure
    as its guardrail; one covered by power states the power."""
    margin = v.margin
    if margin is not None and margin.covered == "budget":
        rail = next((r for r in verdicts if r.key == v.guardrail), None)
        if rail is not None:
            return _adjusted(rail.log_within, rail.within_threshold, alpha)
    if margin is not None and margin.covered == "power":
        return POWER
    return _adjusted(v.log_within, v.within_threshold, alpha)


def _result(
    judge: CanaryJudge, v: Verdict, cohorts: _Cohorts, verdicts: list[Verdict]
) -> TestResult:
    worse = _adjusted(v.log_worse, v.worse_threshold, judge.settings.alpha)
    within = _within(v, verdicts, judge.settings.promote_alpha)
    state: TestState = (
        "breached"
        if v.breached
        else "no_data"
        if not v.has_data
        else "holds"
        if v.holds
        else "unproven"
    )
    claim = _Claim(state, worse, within)
    if v.key in ("errors", "slow"):
        return _ratio_result(judge, v, claim)
    guardrail = next(g for g in judge.guardrails if g.name == v.key)
    if guardrail.metric == "kpi":
        return _kpi_result(judge, guardrail, v, claim, cohorts[1])
    return _rate_result(judge, guardrail, v, claim, cohorts)


class _Claim:
    """A test's state with both confidences, and how to say it."""

    def __init__(self, state: TestState, worse: float, within: float) -> None:
        self.state, self.worse, self.within = state, worse, within

    @property
    def confidence(self) -> float:
        return round(self.worse if self.state == "breached" else self.within, 4)

    def say(self, broken: str, holding: str) -> str:
        match self.state:
            case "breached":
                return f"{broken} at {self.worse:.2%} confidence"
            case "holds":
                return f"{holding} at {self.within:.1%} confidence"
            case "unproven":
                return f"not yet shown that {holding} ({self.within:.1%} confidence)"
        return "no data yet"


def _ratio_result(judge: CanaryJudge, v: Verdict, claim: _Claim) -> TestResult:
    if v.key == "errors":
        release, stage, test, what = (
            judge.errors,
            judge.errors_stage,
            "errors vs baseline",
            "error rate",
        )
    else:
        release, stage = judge.slow, judge.slow_stage
        if judge.slow_bound is None:
            why = (
                "the baseline's p95 lies beyond the highest finite bucket"
                if judge.bound_settled
                else f"waiting for {judge.settings.bound_requests} baseline requests to fix "
                "the slow-request bound"
            )
            return TestResult(
                test="slow requests vs baseline",
                guardrail=v.guardrail,
                action=v.action,
                state="no_data",
                observed=None,
                baseline=None,
                canary_value=None,
                confidence=0.0,
                gating=v.gating,
                detail=f"slow requests: {why}",
            )
        ms = float(judge.slow_bound) * 1000
        test, what = f"slow requests (>{ms:g}ms) vs baseline", f"requests slower than {ms:g}ms"
    c_rate = _rate(stage.canary_events, stage.canary_requests)
    b_rate = _rate(stage.baseline_events, stage.baseline_requests)
    ratio = stage.ratio() if stage.canary_requests else release.ratio()
    worse_than = (
        "worse than the baseline"
        if release.worse_than == 1
        else f"more than {release.worse_than:g}× the baseline"
    )
    said = claim.say(worse_than, f"the canary is below {release.within:g}× the baseline")
    if claim.state == "holds" and v.margin is not None and v.margin.covered:
        said = _margin_said(v.margin)
    detail = (
        f"{what}: canary {_pct(c_rate)} vs baseline {_pct(b_rate)} this stage"
        + ("" if ratio is None else f" ({ratio:.2f}×)")
        + f"; {said}"
    )
    return TestResult(
        test=test,
        guardrail=v.guardrail,
        action=v.action,
        state=claim.state,
        observed=None if c_rate is None else round(c_rate, 4),
        baseline=None if b_rate is None else round(b_rate, 4),
        canary_value=None if c_rate is None else round(c_rate, 4),
        confidence=claim.confidence,
        gating=v.gating,
        detail=detail,
    )


def _margin_said(margin: Margin) -> str:
    """Why a canary-vs-baseline test holds without its own 2× bound."""
    allowed, base = margin.allowed * 100, margin.baseline_share * 100
    if margin.covered == "budget":
        return (
            f"cannot break {margin.guardrail}: it allows {allowed:.3g}% of requests, the "
            f"baseline has at most {base:.2g}% ({margin.ratio:.3g}× headroom), and the canary "
            f"is shown within {margin.guardrail}"
        )
    return (
        f"a canary at {margin.ratio:.3g}× the baseline would have been caught with "
        f"{POWER:.0%} power by now, and none is"
    )


def _rate_result(
    judge: CanaryJudge, g: Guardrail, v: Verdict, claim: _Claim, cohorts: _Cohorts
) -> TestResult:
    stage = judge.rates_stage[g.name]
    canary, baseline = cohorts
    stable = v.stable_breaks and claim.state == "breached"
    if g.metric in QUANTILES:
        q = QUANTILES[g.metric]
        observed = quantile_ms(canary.latency_buckets, q)
        base = quantile_ms(baseline.latency_buckets, q)
        share = stage.share()
        measured = (
            f"canary {g.metric[8:]} {observed or 0:.0f}ms; "
            f"{(share or 0) * 100:.2f}% of requests slower than {g.value:g}ms "
            f"(at most {(1 - q) * 100:g}% allowed)"
        )
    else:
        observed = _rate(canary.errors, canary.requests)
        base = _rate(baseline.errors, baseline.requests)
        if g.metric != "error_rate":
            observed = None if observed is None else 100 - observed
            base = None if base is None else 100 - base
        measured = f"canary {g.metric} {_pct(observed)}"
    return TestResult(
        test=g.describe(),
        guardrail=g.name,
        action=v.action,
        state=claim.state,
        observed=None if observed is None else round(observed, 4),
        baseline=None if base is None else round(base, 4),
        canary_value=None if observed is None else round(observed, 4),
        confidence=claim.confidence,
        gating=v.gating,
        detail=_stable_detail(judge, g, claim)
        if stable
        else f"{g.describe()}: {measured} over {int(stage.requests)} requests this stage; "
        + claim.say("broken", "it holds"),
        stable_breaks=stable,
    )


def _stable_detail(judge: CanaryJudge, g: Guardrail, claim: _Claim) -> str:
    """An absolute guardrail broken by the canary and by the stable version alike: both
    figures over the windows judged (this stage's, or the release's when it has none)."""
    canary, base = judge.rates_stage[g.name], judge.baseline_rates_stage[g.name]
    if not canary.requests or not base.requests:
        canary, base = judge.rates[g.name], judge.baseline_rates[g.name]
    c_share, b_share = (canary.share() or 0.0) * 100, (base.share() or 0.0) * 100
    if g.metric in QUANTILES:
        limit = (1 - QUANTILES[g.metric]) * 100
        figures = (
            f"canary {c_share:.2f} %, baseline {b_share:.2f} % of requests slower than "
            f"{g.value:g}ms, both over the {limit:g} % that {g.describe()} allows"
        )
    elif g.metric == "error_rate":
        figures = f"canary {c_share:.2f} %, baseline {b_share:.2f} %, both over the {g.value:g} %"
    else:
        figures = (
            f"canary {100 - c_share:.2f} %, baseline {100 - b_share:.2f} %, "
            f"both under the {g.value:g} % SLA"
        )
    return (
        f"{g.metric}: {figures}: the stable version breaks it too; rolling back would not "
        f"restore it (over {int(canary.requests)} canary and {int(base.requests)} baseline "
        f"requests, {claim.worse:.2%} confidence)"
    )


def _kpi_result(
    judge: CanaryJudge, g: Guardrail, v: Verdict, claim: _Claim, baseline: CohortSample
) -> TestResult:
    release, stage = judge.kpis[g.name], judge.kpis_stage[g.name]
    name = g.kpi or ""
    source = stage if stage.n else release
    mean, ref = source.mean(), source.reference_mean()
    if g.relative:
        canary_level = None if mean is None or ref is None else mean + ref
        observed = mean / ref * 100 if mean is not None and ref else None
        baseline_level = ref
        value = "n/a" if observed is None else f"{observed:+.2f}%"
    else:
        canary_level = observed = mean
        baseline_level = baseline.kpis.get(name)
        value = "n/a" if mean is None else f"{mean:.4g}"
    needed = judge.settings.kpi_min_blocks
    said = (
        claim.say("beyond its bound", "it is within its bound")
        if release.n >= needed
        else f"{release.n} of the {needed} blocks of data it needs to decide"
    )
    return TestResult(
        test=g.describe(),
        guardrail=g.name,
        action=v.action,
        state=claim.state,
        observed=None if observed is None else round(observed, 4),
        baseline=None if baseline_level is None else round(baseline_level, 6),
        canary_value=None if canary_level is None else round(canary_level, 6),
        confidence=claim.confidence,
        gating=False,
        detail=f"{g.describe()}: canary {name} {value} over {source.n} blocks; {said}",
    )


def _baseline(judge: CanaryJudge) -> CohortSample:
    """This stage's baseline, or the release's when the stage has none (after a switch)."""
    totals: Totals = (
        judge.stage_baseline if judge.stage_baseline.requests else judge.release_baseline
    )
    return totals.sample()


def _metrics(cohorts: _Cohorts, results: list[TestResult]) -> CanaryMetrics:
    canary, baseline = cohorts
    failed = {r.test for r in results if r.state == "breached"}
    failed_rails = {r.guardrail for r in results if r.state == "breached"}

    def rate(s: CohortSample) -> float:
        return s.errors / s.requests * 100 if s.requests else 0.0

    def comparison(base: float, value: float, fail: bool) -> MetricComparison:
        b, c = round(base, 4), round(value, 4)
        return MetricComparison(
            baseline=b, canary=c, delta=round(c - b, 4), verdict="fail" if fail else "pass"
        )

    errors_failed = "errors vs baseline" in failed or "error_rate" in failed_rails
    slow_failed = any(t.startswith("slow requests") for t in failed)
    custom = [
        CustomMetric(
            name=r.test,
            baseline=r.baseline,
            canary=r.canary_value,
            verdict="fail" if r.state == "breached" else "pass",
        )
        for r in results
        if (
            r.guardrail.startswith("kpi:")
            or r.test.startswith("slow requests")
            or r.guardrail in ("latency_p50", "latency_p99")
        )
        and r.baseline is not None
        and r.canary_value is not None
    ]
    return CanaryMetrics(
        error_rate=comparison(rate(baseline), rate(canary), errors_failed),
        latency_p95=comparison(
            quantile_ms(baseline.latency_buckets, 0.95) or 0.0,
            quantile_ms(canary.latency_buckets, 0.95) or 0.0,
            slow_failed or "latency_p95" in failed_rails,
        ),
        success_rate=comparison(
            100 - rate(baseline) if baseline.requests else 0.0,
            100 - rate(canary) if canary.requests else 0.0,
            errors_failed or bool(failed_rails & {"availability", "success_rate"}),
        ),
        custom_metrics=custom,
    )
