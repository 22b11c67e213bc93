"""The bake release-bot's planner would give a scenario's canary step (issue 17).

``bot.domain.verdict_time`` estimates, from the scenario's traffic and its baseline's measured
figures (the error rate, the share of requests slower than a latency budget), the minutes the
step needs for a verdict on every guardrail; the plan bakes that long, at least the bench's
soak, and at most a medium-risk step's maximum (``MAX_BAKE_MINUTES``). A scenario whose step
would need longer has not enough traffic for a verdict: the plan warns, and it has no bake.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from bench.scenarios import LATENCY_SIGMA, Scenario
from bot.domain.planner import MAX_BAKE_MINUTES
from bot.domain.request import Risk
from bot.domain.verdict_time import minutes_to_verdict
from bot.parsing import parse_guardrail

SOAK_MINUTES = 5.0  # the bench's stage: a short canary bake, the judge's minimum soak
RISK: Risk = "medium"


def baseline_shares(scenario: Scenario) -> dict[str, float]:
    """What a plan would measure on the baseline at the start: each guardrail's bad share."""
    load = scenario.load
    shares: dict[str, float] = {}
    for token in scenario.guardrails.split():
        g = parse_guardrail(token)
        if g.metric == "error_rate":
            shares[g.name] = load.error_rate[0]
        elif g.metric.startswith("latency_"):
            z = math.log(g.value / load.median_ms[0]) / LATENCY_SIGMA
            shares[g.name] = 1 - NormalDist().cdf(z)
    return shares


def planned_bake(scenario: Scenario) -> float | None:
    """The canary step's planned bake in minutes; None: not enough traffic for a verdict."""
    rails = [parse_guardrail(token) for token in scenario.guardrails.split()]
    rps = scenario.load.rps[0]
    share = scenario.canary_share
    times = minutes_to_verdict(
        rails, rps * share, rps * (1 - share), baseline_shares=baseline_shares(scenario)
    )
    need = max((t.minutes for t in times), default=0.0)
    if need > MAX_BAKE_MINUTES[RISK]:
        return None
    return max(SOAK_MINUTES, float(math.ceil(need)))
