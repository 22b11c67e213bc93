"""The planner used when no LLM is configured: the domain's rules, as they are."""

from __future__ import annotations

from datetime import datetime

from bot.domain.plan import Plan
from bot.domain.planner import plan_release
from bot.domain.request import ReleaseRequest
from bot.ports.planner import AbstractPlanner


class RulePlanner(AbstractPlanner):
    """``bakes``: the services whose config sets ``bake_minutes``, with it."""

    def __init__(self, tick_seconds: float, bakes: dict[str, float] | None = None) -> None:
        self.tick_seconds = tick_seconds
        self.bakes = bakes or {}

    def plan(self, request: ReleaseRequest, now: datetime, instances: int) -> Plan:
        bake = self.bakes.get(request.service)
        return plan_release(request, now, instances, self.tick_seconds, bake)
