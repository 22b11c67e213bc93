"""The planner used when no LLM is configured: the domain's rules, as they are."""

from __future__ import annotations

from datetime import datetime

from bot.domain.config import MetricsLossPolicy
from bot.domain.plan import Plan
from bot.domain.planner import plan_release
from bot.domain.request import ReleaseRequest
from bot.ports.planner import AbstractPlanner


class RulePlanner(AbstractPlanner):
    """``bakes``: the services whose config sets ``bake_minutes``, with it; ``metrics_loss``:
    each service's ``on_metrics_loss`` (a service not in it rolls back, the default)."""

    def __init__(
        self,
        tick_seconds: float,
        bakes: dict[str, float] | None = None,
        metrics_loss: dict[str, MetricsLossPolicy] | None = None,
    ) -> None:
        self.tick_seconds = tick_seconds
        self.bakes = bakes or {}
        self.metrics_loss = metrics_loss or {}

    def plan(self, request: ReleaseRequest, now: datetime, instances: int) -> Plan:
        bake = self.bakes.get(request.service)
        on_loss = self.metrics_loss.get(request.service, "rollback")
        return plan_release(request, now, instances, self.tick_seconds, bake, on_loss)
