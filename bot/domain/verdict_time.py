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
from dataclasses import dataclass, field

from bot.domain.judge import RATE_METRICS, JudgeSettings, bad_requests, bad_share
from bot.domain.observations import CohortSample
from bot.domain.power import PLAN_POWER, events_to_bound, requests_to_hold
from bot.domain.request import Guardrail

NOMINAL_USE = 0.25  # the share of a guardrail's budget a healthy baseline is assumed to use
SLOW_SHARE = 0.05  # the slow-request test counts requests above the baseline's p95 bucket


@dataclass(frozen=True, slots=True)
class GuardrailTime:
    guardrail: str  # as written: error_rate<1%
    minutes: float  # math.inf: no verdict at this traffic, however long


@dataclass(frozen=True, slots=True)
class MeasuredTraffic:
    """The service's production traffic as its metrics provider measured it just before
    planning: its rate, and per absolute guardrail the share of requests it counts as bad
    (an upper estimate: a handful of events says little)."""

    rps: float  # requests per second, all the release's regions
    minutes: float  # over the last this many minutes
    shares: dict[str, float] = field(default_factory=dict)  # guardrail name -> bad share

    @classmethod
    def of(
        cls, sample: CohortSample, minutes: float, guardrails: list[Guardrail]
    ) -> MeasuredTraffic:
        shares: dict[str, float] = {}
        for g in guardrails:
            if bad_share(g) is None:
                continue
            bad, total = bad_requests(g, sample)
            if total > 0:
                shares[g.name] = min(1.0, (bad + 2 * math.sqrt(bad + 1) + 2) / total)
        return cls(rps=sample.requests / (minutes * 60), minutes=minutes, shares=shares)

    def describe_shares(self, guardrails: list[Guardrail]) -> str:
        """``error_rate<1% 0.31%, p95<300ms 0.9%``: each measured share, as a plan says it."""
        return ", ".join(
            f"{g.describe()} {100 * self.shares[g.name]:.2g}%"
            for g in guardrails
            if g.name in self.shares
        )


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
