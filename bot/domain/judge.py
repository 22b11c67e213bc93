"""The canary judge: anytime-valid sequential tests of canary against baseline, every window.

Each window's counts are added to running evidence (``bot.domain.sequential``); nothing is
re-tested from scratch, so looking every tick does not inflate false rollbacks. Tested:

- **errors**, canary against baseline: the per-request rate ratio θ;
- **slow requests**, canary against baseline: requests above the bound of the bucket holding
  the baseline's p95 (fixed from the first ``bound_requests`` baseline requests, which the
  slow test then skips);
- **each absolute guardrail**: ``error_rate<1%`` and ``availability>=99.5%`` on the share of
  failed requests, ``p95<300ms`` on the share slower than 300 ms (at most 5 %);
- **each KPI guardrail**: its values (canary minus baseline, for relative ones) over blocks
  of at least ``kpi_block_requests`` canary requests, so each block's mean is near normal.

Decision:
- ``rollback`` when a test whose trigger rolls back shows the canary worse beyond tolerance
  (θ > 1 + tolerance, a guardrail broken, a KPI beyond its bound) at the configured
  confidence. Not when the stable version breaks the same absolute guardrail too: the
  baseline's share of bad requests, over the same windows, is tested against the same bound
  at the same confidence, and the canary's against the baseline's (θ > 1 + tolerance); a
  baseline over the bound with a canary not shown worse than it is ``stable_breaks``, which
  the release holds on (rolling back would not restore the bound). The false-rollback budget ``alpha`` (1 % per release) is split: 70 % errors,
  10 % slow requests, 10 % KPIs, 10 % absolute guardrails (renormalised over the kinds the
  release has). A breach whose trigger only alerts is reported; one that pauses, pauses.
- ``promote`` only after the soak time and once every gating test bounds the regression:
  θ below ``promote_bound`` (a doubling ruled out) for errors and slow requests while a live
  baseline exists, and every absolute guardrail shown to hold, each at ``1 - promote_alpha``
  (split evenly). The rollback tests keep running through later stages, where more traffic
  catches smaller regressions. KPIs are too noisy at small stages to hold a release back:
  they can stop it, not gate it.
- otherwise ``extend_analysis``; so too when no canary requests arrived for
  ``no_data_limit`` windows (``no_data`` is then set: the caller pauses or rolls back as the
  metrics-provider trigger says). Low traffic never means promote: it means no evidence.

Stages: the rollback evidence restarts at each stage and is mixed with the release-long
evidence: half the weight on the release-long term, the other half shared by the J - 1
later stages (a regression that only shows at higher traffic is not drowned by earlier
healthy evidence). With the finished stages' terms dropped, the mixture stays below a
supermartingale starting at 1, so the budget holds per release.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Literal

from pydantic import Field

from bot.domain.base import Model
from bot.domain.histogram import above_bound, slower_than_sorted, sorted_buckets, tail_bound
from bot.domain.observations import CohortSample, WindowSample
from bot.domain.plan import Trigger, TriggerAction
from bot.domain.power import POWER, detection_power_reached
from bot.domain.request import Guardrail
from bot.domain.sequential import (
    Counts,
    Evidence,
    MeanEvidence,
    Mixture,
    RateEvidence,
    RatioEvidence,
    add_windows,
    log_mixtures,
    rate_mixtures,
)

Recommendation = Literal["promote", "rollback", "extend_analysis"]
# ``extend_analysis`` past the step's maximum bake: no verdict, and none is coming soon. The
# held-step flow hooks onto it (the approvers extend, promote with a recorded override, or
# roll back); the judge itself never promotes on it.
Outcome = Literal["promote", "rollback", "extend_analysis", "no_verdict"]
QUANTILES = {"latency_p50": 0.50, "latency_p95": 0.95, "latency_p99": 0.99}
RATE_METRICS = ("error_rate", "success_rate", "availability")
# Shares of the false-rollback budget, renormalised over the kinds a release has.
ALPHA_SHARES = {"errors": 0.70, "slow": 0.10, "kpis": 0.10, "absolute": 0.10}
# A step still without a verdict this many times its planned bake (never past the service's
# maximum) is past its maximum bake: its approvers decide (``CanaryJudge.past_maximum_bake``).
MAXIMUM_BAKE_FACTOR = 3.0


def maximum_bake(planned_minutes: float, service_maximum: float | None) -> float:
    """The one rule for a step's maximum bake: ``MAXIMUM_BAKE_FACTOR`` times its planned
    bake, at most the service's maximum (``max_bake_minutes``), never less than the bake."""
    limit = MAXIMUM_BAKE_FACTOR * planned_minutes
    if service_maximum is not None:
        limit = min(limit, service_maximum)
    return max(planned_minutes, limit)


@lru_cache(maxsize=64)
def _alpha_split(alpha: float, kpis: int, rates: int) -> Mapping[str, float]:
    """``CanaryJudge._alphas`` (the same few settings every tick: computed once)."""
    counts = {"errors": 1, "slow": 1, "kpis": kpis, "absolute": rates}
    present = sum(ALPHA_SHARES[k] for k, n in counts.items() if n)
    split = {k: alpha * ALPHA_SHARES[k] / present / n for k, n in counts.items() if n}
    return MappingProxyType(split)


class JudgeSettings(Model):
    alpha: float = Field(default=0.01, gt=0, lt=1)  # false rollbacks per release, all tests
    promote_alpha: float = Field(default=0.05, gt=0, lt=1)  # per promotion, all gating tests
    tolerance: float = Field(default=0.0, ge=0)  # errors, slow: rollback when θ > 1 + this
    promote_bound: float = Field(default=2.0, gt=1)  # promote once θ < this is shown
    kpi_min_blocks: int = Field(default=12, ge=2)  # a KPI decides nothing before this
    kpi_block_requests: int = Field(default=300, ge=1)  # canary requests per KPI block
    no_data_limit: int = Field(default=30, ge=1)  # windows without canary requests
    bound_requests: int = Field(default=400, ge=1)  # baseline requests fixing the slow bound


class Totals(Evidence):
    """Running sums of one cohort's windows (a ``CohortSample`` that grows in place)."""

    requests: int = 0
    errors: int = 0
    buckets: dict[str, int] = {}
    kpi_sums: dict[str, float] = {}  # value × requests
    kpi_requests: dict[str, int] = {}

    def add(self, sample: CohortSample, histogram: bool = True) -> None:
        state = self.__dict__  # plain writes (see ``RatioEvidence.add_step``)
        state["requests"] += sample.requests
        state["errors"] += sample.errors
        if histogram:
            get = self.buckets.get
            latency = sample.latency_buckets
            self.buckets.update({le: get(le, 0) + count for le, count in latency.items()})
        for name, value in sample.kpis.items():
            self.kpi_sums[name] = self.kpi_sums.get(name, 0.0) + value * sample.requests
            self.kpi_requests[name] = self.kpi_requests.get(name, 0) + sample.requests

    def kpi(self, name: str) -> float | None:
        weight = self.kpi_requests.get(name, 0)
        return self.kpi_sums[name] / weight if weight else None

    def sample(self) -> CohortSample:
        kpis = {n: v for n in self.kpi_sums if (v := self.kpi(n)) is not None}
        return CohortSample(
            requests=self.requests, errors=self.errors, latency_buckets=self.buckets, kpis=kpis
        )


class KpiBlock(Evidence):
    """Windows gathered until the canary has served enough requests for one KPI value."""

    canary: Totals = Field(default_factory=Totals)
    baseline: Totals = Field(default_factory=Totals)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One test's standing, in the log domain; the judgement is built from these."""

    key: str  # "errors", "slow", or the guardrail's name
    guardrail: str  # whose trigger it fires
    action: TriggerAction
    log_worse: float  # log e-value against "no worse than tolerance" (stage-combined)
    worse_threshold: float  # log of 1/α for this test
    log_within: float | None  # log e-value against "regression ≥ the bound" (None: not asked)
    within_threshold: float
    has_data: bool
    gating: bool
    # An absolute guardrail the baseline breaks too, with the canary not shown worse than it.
    stable_breaks: bool = False
    # A canary-vs-baseline test that holds without its own bound (``Margin``): the margin
    # it had to rule out, and why that is ruled out.
    margin: Margin | None = None

    @property
    def breached(self) -> bool:
        return self.log_worse >= self.worse_threshold

    @property
    def holds(self) -> bool:
        if self.margin is not None and self.margin.covered:
            return True
        return self.log_within is not None and self.log_within >= self.within_threshold


@dataclass(frozen=True, slots=True)
class Margin:
    """The regression a canary-vs-baseline test must rule out before promotion: the larger
    of the relative bound (``promote_bound``, 2×) and the headroom to the absolute guardrail
    on the same requests (its allowed share over the baseline's): a slow-request share of
    0.06 % that doubles cannot break a p95 budget that allows 5 % above it.

    ``covered`` says how it is ruled out when the relative bound is not shown: "budget" (the
    headroom is the margin and the guardrail is shown to hold: the canary's upper bound is
    inside it) or "power" (the exposure would have caught a canary at the margin with
    ``POWER``, and no test shows harm)."""

    guardrail: str  # the absolute guardrail giving the headroom, as written (p95<400ms)
    allowed: float  # the share of bad requests it allows
    baseline_share: float  # the baseline's share (an upper estimate)
    ratio: float  # max(promote_bound, allowed / baseline_share)
    covered: Literal["budget", "power", ""] = ""


def bad_share(guardrail: Guardrail) -> float | None:
    """The share of bad requests an absolute guardrail allows (None: not a share test)."""
    if guardrail.metric == "error_rate" and guardrail.upper_bound:
        return guardrail.value / 100
    if guardrail.metric in ("availability", "success_rate") and not guardrail.upper_bound:
        return 1 - guardrail.value / 100
    if guardrail.metric in QUANTILES and guardrail.upper_bound:
        return 1 - QUANTILES[guardrail.metric]
    return None


def bad_requests(
    guardrail: Guardrail, cohort: CohortSample, ordered: list[tuple[float, int]] | None = None
) -> tuple[float, float]:
    """(requests the guardrail counts as bad, requests) in ``cohort`` (``ordered``: its
    histogram already sorted, ``sorted_buckets``)."""
    if guardrail.metric in QUANTILES:
        if ordered is None:
            ordered = sorted_buckets(cohort.latency_buckets)
        slow, total = slower_than_sorted(ordered, guardrail.value)
        return slow, float(total)
    return float(cohort.errors), float(cohort.requests)


class CanaryJudge(Evidence):
    """The judge's running state for one release (stored with it) or one analysis."""

    settings: JudgeSettings
    guardrails: list[Guardrail]
    actions: dict[str, TriggerAction]
    stages: int = 1
    stage: int = -1  # index of the current stage; -1 before the first
    stage_started: datetime | None = None
    soak_minutes: float = 0.0
    errors: RatioEvidence
    errors_stage: RatioEvidence
    slow_bound: str | None = None
    bound_settled: bool = False
    probe: dict[str, int] = {}
    slow: RatioEvidence
    slow_stage: RatioEvidence
    rates: dict[str, RateEvidence]
    rates_stage: dict[str, RateEvidence]
    kpis: dict[str, MeanEvidence]
    kpis_stage: dict[str, MeanEvidence]
    kpi_blocks: dict[str, KpiBlock]
    # Per absolute guardrail, over the windows the canary is judged on: the baseline against
    # the same bound, and the canary against the baseline on the same bad requests.
    baseline_rates: dict[str, RateEvidence] = {}
    baseline_rates_stage: dict[str, RateEvidence] = {}
    versus: dict[str, RatioEvidence] = {}
    versus_stage: dict[str, RatioEvidence] = {}
    stage_canary: Totals = Field(default_factory=Totals)
    stage_baseline: Totals = Field(default_factory=Totals)
    release_baseline: Totals = Field(default_factory=Totals)
    no_data_streak: int = 0

    @classmethod
    def create(
        cls,
        guardrails: list[Guardrail],
        triggers: list[Trigger],
        settings: JudgeSettings | None = None,
        stages: int = 1,
    ) -> CanaryJudge:
        settings = settings or JudgeSettings()
        ratio = RatioEvidence(worse_than=1 + settings.tolerance, within=settings.promote_bound)
        rates = {
            g.name: RateEvidence(limit=share)
            for g in guardrails
            if (share := bad_share(g)) is not None
        }
        kpis = [g.name for g in guardrails if g.metric == "kpi"]
        return cls(
            settings=settings,
            guardrails=guardrails,
            actions={t.guardrail: t.action for t in triggers},
            stages=max(1, stages),
            errors=ratio,
            errors_stage=ratio.model_copy(deep=True),
            slow=ratio.model_copy(deep=True),
            slow_stage=ratio.model_copy(deep=True),
            rates=rates,
            rates_stage={k: v.model_copy(deep=True) for k, v in rates.items()},
            kpis={k: MeanEvidence() for k in kpis},
            kpis_stage={k: MeanEvidence() for k in kpis},
            kpi_blocks={k: KpiBlock() for k in kpis},
            baseline_rates={k: v.model_copy(deep=True) for k, v in rates.items()},
            baseline_rates_stage={k: v.model_copy(deep=True) for k, v in rates.items()},
            versus={k: ratio.model_copy(deep=True) for k in rates},
            versus_stage={k: ratio.model_copy(deep=True) for k in rates},
        )

    # -- feeding ----------------------------------------------------------------------------

    def start_stage(self, now: datetime, soak_minutes: float) -> None:
        """A new stage begins: stage evidence restarts; release-long evidence carries on."""
        self.stage += 1
        self.stage_started, self.soak_minutes = now, soak_minutes
        fresh = RatioEvidence(worse_than=self.errors.worse_than, within=self.errors.within)
        self.errors_stage = fresh
        self.slow_stage = fresh.model_copy(deep=True)
        self.rates_stage = {k: RateEvidence(limit=v.limit) for k, v in self.rates.items()}
        self.baseline_rates_stage = {
            k: RateEvidence(limit=v.limit) for k, v in self.baseline_rates.items()
        }
        self.versus_stage = {k: fresh.model_copy(deep=True) for k in self.versus}
        self.kpis_stage = {k: MeanEvidence() for k in self.kpis}
        self.kpi_blocks = {k: KpiBlock() for k in self.kpis}
        self.stage_canary, self.stage_baseline = Totals(), Totals()
        self.no_data_streak = 0

    def observe(self, window: WindowSample) -> None:
        if self.stage < 0:
            self.start_stage(window.start, 0.0)
        canary, baseline = window.canary, window.baseline
        self.stage_canary.add(canary)
        self.stage_baseline.add(baseline)
        self.release_baseline.add(baseline)
        if canary.requests == 0:
            self.no_data_streak += 1
            return
        self.no_data_streak = 0
        # Every canary-vs-baseline test's window, added at the end in one pass.
        ratios: list[tuple[Counts, RatioEvidence]] = []
        counts = (canary.errors, canary.requests, baseline.errors, baseline.requests)
        ratios += ((counts, self.errors), (counts, self.errors_stage))
        self._observe_slow(canary, baseline, ratios)
        # Each cohort's histogram sorted once for every latency guardrail.
        canary_sorted = baseline_sorted = None
        if any(g.metric in QUANTILES for g in self.guardrails):
            canary_sorted = sorted_buckets(canary.latency_buckets)
            baseline_sorted = sorted_buckets(baseline.latency_buckets)
        for g in self.guardrails:
            name = g.name
            rate = self.rates.get(name)
            if rate is not None:
                bad, total = bad_requests(g, canary, canary_sorted)
                rate.add(bad, total)
                self.rates_stage[name].add(bad, total)
                base_bad, base_total = bad_requests(g, baseline, baseline_sorted)
                self._observe_stable(name, bad, total, base_bad, base_total, ratios)
            elif name in self.kpi_blocks:
                self._observe_kpi(g, canary, baseline)
        add_windows(ratios)

    def _observe_stable(
        self,
        name: str,
        bad: float,
        total: float,
        base_bad: float,
        base_total: float,
        ratios: list[tuple[Counts, RatioEvidence]],
    ) -> None:
        """The baseline against the guardrail's own bound, and the canary against it."""
        if name not in self.versus:  # a release stored before these tests existed
            return
        self.baseline_rates[name].add(base_bad, base_total)
        self.baseline_rates_stage[name].add(base_bad, base_total)
        counts = (round(bad), round(total), round(base_bad), round(base_total))
        ratios += ((counts, self.versus[name]), (counts, self.versus_stage[name]))

    def _observe_slow(
        self,
        canary: CohortSample,
        baseline: CohortSample,
        ratios: list[tuple[Counts, RatioEvidence]],
    ) -> None:
        if not self.bound_settled:
            # The bound comes from baseline data only, and the windows that chose it are not
            # tested: the test stays valid whatever bound was picked.
            for le, count in baseline.latency_buckets.items():
                self.probe[le] = self.probe.get(le, 0) + count
            if self.probe.get("+Inf", 0) >= self.settings.bound_requests:
                self.slow_bound = tail_bound(self.probe, 0.95)
                self.bound_settled = True
            return
        if self.slow_bound is None:
            return
        c_total = canary.latency_buckets.get("+Inf", 0)
        b_total = baseline.latency_buckets.get("+Inf", 0)
        c_slow = above_bound(canary.latency_buckets, self.slow_bound)
        b_slow = above_bound(baseline.latency_buckets, self.slow_bound)
        counts = (c_slow, c_total, b_slow, b_total)
        ratios += ((counts, self.slow), (counts, self.slow_stage))

    def _observe_kpi(self, g: Guardrail, canary: CohortSample, baseline: CohortSample) -> None:
        name = g.kpi or ""
        if name not in canary.kpis or (g.relative and name not in baseline.kpis):
            return
        block = self.kpi_blocks[g.name]
        # A block needs requests and KPI sums only: no histogram.
        block.canary.add(canary, histogram=False)
        block.baseline.add(baseline, histogram=False)
        if block.canary.requests < self.settings.kpi_block_requests:
            return
        value, reference = block.canary.kpi(name), block.baseline.kpi(name)
        self.kpi_blocks[g.name] = KpiBlock()
        weight = float(block.canary.requests)
        if value is None or (g.relative and reference is None):
            return
        ref = reference or 0.0
        point = value - ref if g.relative else value
        self.kpis[g.name].add(point, weight, ref)
        self.kpis_stage[g.name].add(point, weight, ref)

    # -- judging ----------------------------------------------------------------------------

    def soaked(self, now: datetime) -> bool:
        return self.stage_started is not None and now - self.stage_started >= timedelta(
            minutes=self.soak_minutes
        )

    def _alphas(self) -> Mapping[str, float]:
        """The false-rollback budget of one test of each kind."""
        return _alpha_split(self.settings.alpha, len(self.kpis), len(self.rates))

    def _combined(self, release: float, stage: float) -> float:
        """log of the stage-restarting mixture: E_release / 2 + E_stage / (2 (J - 1)).

        The release-long term carries half the weight (a lasting regression pays only
        log 2); the stages after the first share the other half, each its own restart.
        """
        if self.stages == 1 or self.stage <= 0 or self.stage >= self.stages:
            return release - math.log(2 if self.stages > 1 else 1)
        a = release - math.log(2)
        b = stage - math.log(2 * (self.stages - 1))
        top = max(a, b)
        return top + math.log(math.exp(a - top) + math.exp(b - top))

    def _gates(self, guardrail: str) -> bool:
        return self.actions.get(guardrail, "auto_rollback") != "alert"

    def error_guardrail(self) -> str:
        return next((g.name for g in self.guardrails if g.metric in RATE_METRICS), "error_rate")

    def latency_guardrail(self) -> str:
        return next((g.name for g in self.guardrails if g.metric in QUANTILES), "latency_p95")

    def gating_tests(self) -> int:
        """How many tests gate a promotion: each gets an even share of ``promote_alpha``."""
        return 2 + sum(1 for g in self.rates if self._gates(g))

    def verdicts(self, with_bounds: bool) -> list[Verdict]:
        """Every test's standing; the promotion evidence only when ``with_bounds``."""
        alphas = self._alphas()
        within_threshold = math.log(self.gating_tests() / self.settings.promote_alpha)
        live = self.stage_baseline.requests > 0

        def threshold(kind: str) -> float:
            return math.log(1 / alphas[kind])

        out = []
        staged = self.stage > 0
        ratios = (
            ("errors", self.errors, self.errors_stage, self.error_guardrail()),
            ("slow", self.slow, self.slow_stage, self.latency_guardrail()),
        )
        # Each guardrail's name read once (a property, built for KPIs).
        named = [(g.name, g) for g in self.guardrails]
        kpis = [(name, g) for name, g in named if name not in self.rates and name in self.kpis]
        # Every e-value below, computed in one batch (``log_mixtures``), three per test:
        # release-long against "no worse", this stage's, release-long "within its bound".
        wanted: list[Mixture] = []
        for _, ratio, stage, _ in ratios:
            wanted += (
                ratio.worse_mixture(),
                stage.worse_mixture() if staged else None,
                ratio.within_mixture() if with_bounds else None,
            )
        asked: list[tuple[RateEvidence, float] | None] = []
        for name, rate in self.rates.items():
            asked += (
                (rate, +1.0),
                (self.rates_stage[name], +1.0) if staged else None,
                (rate, -1.0) if with_bounds else None,
            )
        wanted += rate_mixtures(asked)
        for _, g in kpis:
            wanted += self._kpi_mixtures(g, staged, with_bounds)
        computed = iter(log_mixtures(wanted))
        logs = {
            key: (next(computed), next(computed), next(computed))
            for key in [k for k, *_ in ratios] + list(self.rates) + [name for name, _ in kpis]
        }
        # Each absolute guardrail's promotion evidence, shared with the margins below.
        rates_within = {name: logs[name][2] for name in self.rates} if with_bounds else {}
        for key, ratio, stage, guardrail in ratios:
            # With a live baseline, no promotion before the slow-request bound is fixed.
            waiting = key == "slow" and not self.bound_settled
            log_worse, log_worse_stage, within = logs[key]
            log_within = within if with_bounds else None
            margin = (
                self._margin(key, guardrail, ratio, rates_within, threshold(key))
                if with_bounds and log_within is not None and log_within < within_threshold
                else None
            )
            out.append(
                Verdict(
                    key=key,
                    guardrail=guardrail,
                    action=self.actions.get(guardrail, "auto_rollback"),
                    log_worse=self._combined(log_worse, log_worse_stage),
                    worse_threshold=threshold(key),
                    log_within=log_within,
                    within_threshold=within_threshold,
                    margin=margin,
                    has_data=ratio.canary_requests > 0,
                    # No event in either cohort yet: nothing to compare, nothing to hold.
                    gating=self._gates(guardrail)
                    and live
                    and (
                        waiting
                        or (
                            stage.canary_requests > 0
                            and ratio.canary_events + ratio.baseline_events > 0
                        )
                    ),
                )
            )
        for name, g in named:
            if name in self.rates:
                log_worse = self._combined(*logs[name][:2])
                worse_threshold = threshold("absolute")
                out.append(
                    Verdict(
                        key=name,
                        guardrail=name,
                        action=self.actions.get(name, "auto_rollback"),
                        log_worse=log_worse,
                        worse_threshold=worse_threshold,
                        log_within=rates_within.get(name),
                        within_threshold=within_threshold,
                        has_data=self.rates[name].requests > 0,
                        gating=self._gates(name),
                        stable_breaks=log_worse >= worse_threshold
                        and self.stable_breaks(name, worse_threshold),
                    )
                )
            elif name in self.kpis:
                log_within = logs[name][2] if with_bounds else None
                log_worse = self._combined(*logs[name][:2])
                thresholds = (threshold("kpis"), within_threshold)
                out.append(self._kpi_verdict(g, log_worse, log_within, thresholds))
        return out

    def _margin(
        self,
        key: str,
        guardrail: str,
        ratio: RatioEvidence,
        rates_within: dict[str, float],
        worse_threshold: float,
    ) -> Margin | None:
        """The margin test ``key`` must rule out (see ``Margin``), and whether it is, when
        its own bound (``promote_bound``) is not shown yet."""
        base = self.baseline_rates.get(guardrail)
        if guardrail not in self.rates or base is None or base.requests <= 0:
            return None
        allowed = self.rates[guardrail].limit
        # An upper estimate of the baseline's share: a handful of events says little.
        share = min(1.0, (base.events + 2 * math.sqrt(base.events + 1) + 2) / base.requests)
        bound = self.settings.promote_bound
        headroom = allowed / share
        within_threshold = math.log(self.gating_tests() / self.settings.promote_alpha)
        covered: Literal["budget", "power", ""] = ""
        if (
            headroom >= bound
            and self._gates(guardrail)
            and rates_within.get(guardrail, 0.0) >= within_threshold
        ):
            covered = "budget"
        else:
            # The slow test counts other requests than its guardrail: its margin stays 2×.
            test_margin = max(bound, headroom) if key == "errors" else bound
            base_share = (
                ratio.baseline_events / ratio.baseline_requests if ratio.baseline_requests else 0.0
            )
            # The release-long term alone must cross: log 2 more where stages share the budget.
            alone = worse_threshold + (math.log(2) if self.stages > 1 else 0.0)
            if detection_power_reached(
                ratio.worse_than,
                test_margin,
                ratio.canary_requests,
                ratio.baseline_requests,
                base_share,
                alone,
                POWER,
            ):
                covered = "power"
        described = next((g.describe() for g in self.guardrails if g.name == guardrail), guardrail)
        return Margin(described, allowed, share, max(bound, headroom), covered)

    def stable_breaks(self, name: str, threshold: float) -> bool:
        """Whether the baseline breaks guardrail ``name``'s bound too, at the confidence the
        canary's breach needs, while the canary is not shown worse than the baseline."""
        if name not in self.versus:
            return False
        stage = self.stage > 0
        base, base_stage = self.baseline_rates[name], self.baseline_rates_stage[name]
        baseline_over = self._combined(
            base.log_e_above(), base_stage.log_e_above() if stage else 0.0
        )
        versus, versus_stage = self.versus[name], self.versus_stage[name]
        canary_worse = self._combined(
            versus.log_e_worse(), versus_stage.log_e_worse() if stage else 0.0
        )
        return baseline_over >= threshold and canary_worse < threshold

    def kpi_bound(self, g: Guardrail, evidence: MeanEvidence) -> float:
        """The bound on a KPI series' mean: a share of the baseline level, or the value."""
        if g.relative:
            return g.value / 100 * (evidence.reference_mean() or 0.0)
        return g.value

    def _kpi_mixtures(self, g: Guardrail, staged: bool, with_bounds: bool) -> list[Mixture]:
        """A KPI's e-values to compute, as ``verdicts`` takes them: release-long and this
        stage's against "within its bound", the release-long one against "beyond it"."""
        enough = self.settings.kpi_min_blocks

        def mixture(evidence: MeanEvidence, worse: bool) -> Mixture:
            if evidence.n < enough:
                return None
            bound = self.kpi_bound(g, evidence)
            unit = float(self.settings.kpi_block_requests)
            # A KPI kept under its bound ("<") is worse when higher.
            return evidence.mixture(bound, 1.0 if worse == g.upper_bound else -1.0, unit)

        release = self.kpis[g.name]
        return [
            mixture(release, True),
            mixture(self.kpis_stage[g.name], True) if staged else None,
            mixture(release, False) if with_bounds else None,
        ]

    def _kpi_verdict(
        self,
        g: Guardrail,
        log_worse: float,
        log_within: float | None,
        thresholds: tuple[float, float],
    ) -> Verdict:
        return Verdict(
            key=g.name,
            guardrail=g.name,
            action=self.actions.get(g.name, "alert"),
            log_worse=log_worse,
            worse_threshold=thresholds[0],
            log_within=log_within,
            within_threshold=thresholds[1],
            has_data=self.kpis[g.name].n >= self.settings.kpi_min_blocks,
            gating=False,
        )

    def decide(self, now: datetime, verdicts: list[Verdict] | None = None) -> Recommendation:
        """The recommendation alone: what the engine acts on every tick."""
        soaked = self.soaked(now)
        verdicts = verdicts if verdicts is not None else self.verdicts(with_bounds=soaked)
        # A bound the stable version breaks too is no reason to go back to it: the release
        # holds on it instead (``Release.observe``), unless another test blames the canary.
        if any(
            v.breached and v.action == "auto_rollback" and not v.stable_breaks for v in verdicts
        ):
            return "rollback"
        if not soaked or self.no_data_streak >= self.settings.no_data_limit:
            return "extend_analysis"
        if any(v.breached and v.action != "alert" for v in verdicts):
            return "extend_analysis"
        gating = [v for v in verdicts if v.gating]
        # A KPI cannot be shown within bounds at small stages, but one still gathering its
        # first blocks, or whose evidence has come half-way (in log) to a rollback, holds the
        # promotion back. Half-way, not E > 1: a healthy KPI's e-value wanders above 1 a
        # quarter of the time, but past √(1/α) at most √α of the time (Ville), so a healthy
        # canary's planned bake holds. A KPI that reports nothing does not.
        leaning = any(
            v.key in self.kpis
            and v.action != "alert"
            and (
                v.log_worse >= v.worse_threshold / 2
                or 0 < self.kpis[v.key].n < self.settings.kpi_min_blocks
            )
            for v in verdicts
        )
        if gating and self.stage_canary.requests and all(v.holds for v in gating) and not leaning:
            return "promote"
        return "extend_analysis"

    def past_maximum_bake(self, now: datetime, service_maximum: float | None) -> bool:
        """Whether the stage has run its maximum bake (``maximum_bake`` of its planned bake,
        the soak time) without promotion or rollback."""
        started = self.stage_started
        limit = maximum_bake(self.soak_minutes, service_maximum)
        return started is not None and now - started >= timedelta(minutes=limit)

    def outcome(self, now: datetime, service_maximum: float | None) -> Outcome:
        """``decide``, with ``no_verdict`` once the stage is past its maximum bake."""
        recommendation = self.decide(now)
        if recommendation == "extend_analysis" and self.past_maximum_bake(now, service_maximum):
            return "no_verdict"
        return recommendation
