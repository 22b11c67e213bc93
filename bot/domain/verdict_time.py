"""How long a step needs to reach a verdict on its guardrails, from the traffic it gets.

The judge promotes once every gating test holds (``bot.domain.judge``): each absolute
guardrail shown to hold, and each canary-vs-baseline test inside its margin, which the
budget covers when the baseline leaves the guardrail at least ``promote_bound`` times
headroom. This module asks the same tests' power calculation (``bot.domain.power``) how many
minutes of a step's traffic they need for that, with ``PLAN_POWER``. Before a release starts
the baseline's own figures are rarely known: unless they are given, a service is taken to use
``NOMINAL_USE`` of each budget (0.25 % errors under ``error_rate<1%``). Pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.domain.judge import RATE_METRICS, JudgeSettings, Totals, bad_requests, bad_share
from bot.domain.observations import CohortSample
from bot.domain.power import PLAN_POWER, events_to_bound, requests_to_hold
from bot.domain.request import Guardrail

NOMINAL_USE = 0.25  # the share of a guardrail's budget a healthy baseline is assumed to use
SLOW_SHARE = 0.05  # the slow-request test counts requests above the baseline's p95 bucket
# Data covering less of the look-back than this gives no rate: a few scrapes' worth is noise.
MIN_COVERED_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class GuardrailTime:
    guardrail: str  # as written: error_rate<1%
    minutes: float  # math.inf: no verdict at this traffic, however long


@dataclass(frozen=True, slots=True)
class RecentTraffic:
    """What a service served over the plan's look-back, as its metrics provider read it: the
    counts (both versions, for the shares of bad requests), the requests per second over the
    span its data covers, and that span. A series born inside the look-back (a Prometheus
    started a minute ago, a newly exposed service) covers only part of it, and its requests
    are divided by that part, never by the whole look-back."""

    sample: CohortSample
    rps: float
    seconds: float  # how much of the look-back the data covers (the least of its parts)
    minutes: float  # the look-back

    @classmethod
    def over(
        cls, sample: CohortSample, requests: float, seconds: float, minutes: float
    ) -> RecentTraffic:
        """``requests`` counted over the last ``seconds``, which the data covers entirely
        (at most the look-back of ``minutes``)."""
        covered = min(max(seconds, 0.0), minutes * 60)
        rps = max(requests, 0.0) / covered if covered > 0 else 0.0
        return cls(sample=sample, rps=rps, seconds=covered, minutes=minutes)

    @classmethod
    def total(cls, parts: Sequence[RecentTraffic]) -> RecentTraffic | None:
        """Cohorts or regions together: counts and rates add up, each part's rate over its
        own span; the span is the least any part covers (one that covers too little makes
        the sum partly a guess). None: no part."""
        if not parts:
            return None
        totals = Totals()
        for part in parts:
            totals.add(part.sample)
        return cls(
            sample=totals.sample(),
            rps=sum(p.rps for p in parts),
            seconds=min(p.seconds for p in parts),
            minutes=max(p.minutes for p in parts),
        )


@dataclass(frozen=True, slots=True)
class NotMeasured:
    """The provider answered, but with too little to plan on: why, as a plan says it."""

    reason: str


@dataclass(frozen=True, slots=True)
class MeasuredTraffic:
    """The service's production traffic as its metrics provider measured it just before
    planning: its rate, and per absolute guardrail the share of requests it counts as bad
    (an upper estimate: a handful of events says little)."""

    rps: float  # requests per second, all the release's regions
    minutes: float  # over the last this many minutes (what the data covers)
    shares: dict[str, float] = field(default_factory=dict)  # guardrail name -> bad share

    @classmethod
    def of(
        cls, recent: RecentTraffic, guardrails: list[Guardrail]
    ) -> MeasuredTraffic | NotMeasured:
        """The plan's figure from what the provider read; NotMeasured when it read no
        requests or its data covers under ``MIN_COVERED_SECONDS`` (a figure is never
        guessed)."""
        sample, look_back = recent.sample, f"the last {recent.minutes:g} min"
        if sample.requests <= 0 or recent.rps <= 0:
            return NotMeasured(f"no requests measured over {look_back}")
        if recent.seconds < MIN_COVERED_SECONDS:
            return NotMeasured(
                f"the metrics cover only {recent.seconds:.0f} s of {look_back}, under the "
                f"{MIN_COVERED_SECONDS:.0f} s a rate is measured over"
            )
        shares: dict[str, float] = {}
        for g in guardrails:
            if bad_share(g) is None:
                continue
            bad, total = bad_requests(g, sample)
            if total > 0:
                shares[g.name] = min(1.0, (bad + 2 * math.sqrt(bad + 1) + 2) / total)
        return cls(rps=recent.rps, minutes=recent.seconds / 60, shares=shares)

    def describe_shares(self, guardrails: list[Guardrail]) -> str:
        """``error_rate<1% 0.31%, p95<300ms 0.9%``: each measured share, as a plan says it."""
        return ", ".join(
            f"{g.describe()} {100 * self.shares[g.name]:.2g}%"
            for g in guardrails
            if g.name in self.shares
        )


# What a plan is given of the service's traffic: a figure, or why there is none.
Measurement = MeasuredTraffic | NotMeasured


def minutes_to_verdict(
    guardrails: list[Guardrail],
    canary_rps: float,
    baseline_rps: float,
    settings: JudgeSettings | None = None,
    baseline_shares: dict[str, float] | None = None,
    power: float = PLAN_POWER,
    window_seconds: float = 10.0,
) -> list[GuardrailTime]:
    """Per guardrail, the minutes until its promotion evidence is in with ``power``.

    ``baseline_shares``: the baseline's measured share of bad requests per guardrail name
    (errors under ``error_rate<1%``, requests slower than 300 ms under ``p95<300ms``);
    ``window_seconds``: how often the judge reads a window (the tick)."""
    settings = settings or JudgeSettings()
    shares = baseline_shares or {}
    absolute = [g for g in guardrails if bad_share(g) is not None]
    threshold = math.log((2 + len(absolute)) / settings.promote_alpha)
    compared = {
        next((g.name for g in absolute if g.metric in RATE_METRICS), None),
        next((g.name for g in absolute if g.metric.startswith("latency_")), None),
    }
    per_second = max(canary_rps, 0.0)
    out: list[GuardrailTime] = []
    for g in guardrails:
        if g.metric == "kpi":
            # A block closes at the first window that brings it to ``kpi_block_requests``;
            # traffic varies, so allow three standard deviations of the requests it needs.
            per_window = max(per_second * window_seconds, 1e-9)
            block = settings.kpi_block_requests
            windows = math.ceil((block + 3 * math.sqrt(block)) / per_window)
            blocks = settings.kpi_min_blocks * windows * per_window
            out.append(GuardrailTime(g.describe(), _minutes(blocks, per_second)))
            continue
        limit = bad_share(g)
        if limit is None:
            continue
        share = shares.get(g.name, NOMINAL_USE * limit)
        minutes = _minutes(requests_to_hold(limit, share, threshold, power), per_second)
        headroom = limit / share if share > 0 else math.inf
        if g.name in compared and baseline_rps > 0 and headroom < settings.promote_bound:
            # The budget does not cover the canary-vs-baseline test: it needs its own bound.
            event_share = share if g.metric in RATE_METRICS else SLOW_SHARE
            ratio = per_second / baseline_rps
            events = events_to_bound(settings.promote_bound, 1.0, ratio, threshold, power)
            per_event = event_share * (per_second + baseline_rps)
            minutes = max(minutes, _minutes(events, per_event))
        out.append(GuardrailTime(g.describe(), minutes))
    return out


def _minutes(count: float, per_second: float) -> float:
    if per_second <= 0 or math.isinf(count):
        return math.inf
    return count / per_second / 60
