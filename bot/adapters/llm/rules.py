"""The planner used when no LLM is configured: the domain's rules, as they are."""

from __future__ import annotations

from datetime import datetime

from bot.domain.config import MetricsLossPolicy
from bot.domain.plan import Plan
from bot.domain.planner import plan_release
from bot.domain.request import ReleaseRequest
from bot.domain.verdict_time import Measurement
from bot.ports.planner import AbstractPlanner


class RulePlanner(AbstractPlanner):
    """``bakes``: the services whose config sets ``bake_minutes``, with it; ``metrics_loss``:
    each service's ``on_metrics_loss`` (a service not in it rolls back, the default);
    ``max_bakes``: the services whose config sets ``max_bake_minutes``, with it."""

    def __init__(
        self,
        tick_seconds: float,
        bakes: dict[str, float] | None = None,
        metrics_loss: dict[str, MetricsLossPolicy] | None = None,
        max_bakes: dict[str, float] | None = None,
    ) -> None:
        self.tick_seconds = tick_seconds
        self.bakes = bakes or {}
        self.metrics_loss = metrics_loss or {}
        self.max_bakes = max_bakes or {}

    def plan(
        self,
        request: ReleaseRequest,
        now: datetime,
        instances: int,
        measured: Measurement | None = None,
    ) -> Plan:
        return plan_release(
            request,
            now,
            instances,
            self.tick_seconds,
            self.bakes.get(request.service),
            self.metrics_loss.get(request.service, "rollback"),
            measured,
            max_bake_minutes=self.max_bakes.get(request.service),
        )
