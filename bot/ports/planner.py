"""Planning a release by the rules; the agent's plan, when there is one, is checked against it."""

from __future__ import annotations

import abc
from datetime import datetime

from bot.domain.plan import Plan
from bot.domain.request import ReleaseRequest
from bot.domain.verdict_time import Measurement


class AbstractPlanner(abc.ABC):
    @abc.abstractmethod
    def plan(
        self,
        request: ReleaseRequest,
        now: datetime,
        instances: int,
        measured: Measurement | None = None,
    ) -> Plan:
        """``measured``: the service's traffic, for a line without ``traffic=``."""
