"""The plan release-bot's rule planner makes for a scenario's canary step (issue 17).

Each scenario becomes the request the bot would plan: medium risk, one prod region, the
scenario's canary share as the first step (``stages=``, so the planner keeps it), its
guardrails, and its traffic as the line's ``traffic=``; what the bot would measure of the
stable version before planning is the scenario's baseline (its error rate, its share of
requests slower than the latency budget). The request needs an availability SLA:
``availability>=99%`` allows the same failures as ``error_rate<1%``, so it adds no evidence
to wait for. ``bench.ours`` soaks the first prod step's bake, as the engine does; a step the
planner warns about (no verdict within the maximum bake) has no planned bake.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from statistics import NormalDist

from bench.scenarios import LATENCY_SIGMA, Scenario
from bot.domain.plan import Step
from bot.domain.planner import plan_release
from bot.domain.request import (
    Artifact,
    DeploymentConfig,
    Guardrails,
    OperationalContext,
    ReleasePackage,
    ReleaseRequest,
)
from bot.domain.verdict_time import MeasuredTraffic
from bot.parsing import parse_guardrail

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
AVAILABILITY = "availability>=99%"
TICK_SECONDS = 10.0
INSTANCES = 10


def request_for(scenario: Scenario) -> ReleaseRequest:
    """The /release request of the scenario's canary, as the bot would read it."""
    rails = [parse_guardrail(t) for t in scenario.guardrails.split()]
    latency = [g for g in rails if g.metric.startswith("latency_")]
    return ReleaseRequest(
        service="bench-api",
        release_package=ReleasePackage(
            version="2.0.0",
            artifact=Artifact(image="ghcr.io/acme/bench-api:2.0.0"),
            changes=scenario.description,
            risk="medium",
        ),
        deployment_config=DeploymentConfig(
            environments=["prod"],
            regions=["bench"],
            strategy="canary",
            stages=[100 * scenario.canary_share, 100.0],
        ),
        guardrails=Guardrails(
            error_rate=next(g for g in rails if g.metric == "error_rate"),
            latency=latency,
            availability=parse_guardrail(AVAILABILITY),
            kpis=[g for g in rails if g.metric == "kpi"],
        ),
        operational_context=OperationalContext(traffic_rps=scenario.load.rps[0]),
    )


def measured(scenario: Scenario, minutes: float = 10.0) -> MeasuredTraffic:
    """What the bot measures before planning: the scenario's baseline, each absolute
    guardrail's share of bad requests (exact here: the scenario's own rates)."""
    load = scenario.load
    shares: dict[str, float] = {}
    for g in request_for(scenario).guardrails.all():
        if g.metric in ("error_rate", "availability"):
            shares[g.name] = load.error_rate[0]
        elif g.metric.startswith("latency_"):
            z = math.log(g.value / load.median_ms[0]) / LATENCY_SIGMA
            shares[g.name] = 1 - NormalDist().cdf(z)
    return MeasuredTraffic(rps=load.rps[0], minutes=minutes, shares=shares)


@lru_cache(maxsize=64)
def canary_step(scenario: Scenario) -> Step:
    """The plan's first prod step for the scenario's canary."""
    plan = plan_release(
        request_for(scenario), START, INSTANCES, TICK_SECONDS, measured=measured(scenario)
    )
    return plan.prod_steps()[0]


def soak_minutes(scenario: Scenario) -> float:
    """What the engine soaks the canary step for: its planned bake (the maximum, when the
    plan warns that no verdict comes within it)."""
    return canary_step(scenario).bake_minutes


def planned_bake(scenario: Scenario) -> float | None:
    """The canary step's planned bake in minutes; None: the plan warns that its traffic
    reaches no verdict within the maximum bake."""
    step = canary_step(scenario)
    return None if "warning: no verdict" in step.description else step.bake_minutes
