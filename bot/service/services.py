"""The ports the service functions work through, filled by ``bot.bootstrap``; and the
read-only view of them the agent gets."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from bot.agent.context import AgentContext
from bot.domain.config import Config
from bot.domain.flags import FlagState
from bot.domain.observations import (
    ArtifactRecord,
    CheckEvidence,
    DependencyProbe,
)
from bot.domain.release import Event, Release
from bot.ports.audit import AbstractAuditTrail
from bot.ports.chat import AbstractChat
from bot.ports.checks import AbstractChecks
from bot.ports.ci import AbstractCI
from bot.ports.clock import AbstractClock
from bot.ports.evidence import AbstractEvidence
from bot.ports.flags import AbstractFlags
from bot.ports.leases import AbstractLeases
from bot.ports.llm import AbstractLLM
from bot.ports.locks import AbstractLocks
from bot.ports.metrics import AbstractMetrics
from bot.ports.notifications import AbstractNotificationLog
from bot.ports.notify import Stakeholders
from bot.ports.planner import AbstractPlanner
from bot.ports.series import AbstractSeries
from bot.ports.store import AbstractReleaseStore
from bot.ports.traffic import AbstractTrafficRouter


@dataclass(frozen=True)
class Services:
    """The ports the service functions work through; ``bot.bootstrap`` fills them."""

    config: Config
    store: AbstractReleaseStore
    clock: AbstractClock
    metrics: AbstractMetrics
    traffic: AbstractTrafficRouter
    flags: AbstractFlags
    checks: AbstractChecks
    evidence: AbstractEvidence  # the files a team's CI uploads
    chat: AbstractChat
    planner: AbstractPlanner
    locks: AbstractLocks
    series: AbstractSeries  # each judged window, for the thread's charts
    llm: AbstractLLM  # the agent's model; NoLLM: the rules do every agent step
    tick_seconds: float = 10.0
    ci: AbstractCI | None = None  # a CI that builds on request (the embedded environment's)
    audit: AbstractAuditTrail | None = None  # the audit trail's hash chain, verified
    delivery_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Shared with the other processes on the database (none: this process is alone): who
    # delivers a thread; ``process_id`` names this process in them.
    leases: AbstractLeases | None = None
    process_id: str = "this process"
    # Who hears of each release's start, completion, rollback and failure, and the record of
    # what they were told (none: nobody is, and the report says so).
    stakeholders: Stakeholders | None = None
    notification_log: AbstractNotificationLog | None = None

    def ci_for(self, service: str) -> AbstractCI | None:
        """The CI that builds ``service`` on request: the embedded one where its config says
        ``ci = "simulator"``; none where the team's CI records the evidence."""
        wants = self.config.for_service(service).ci == "simulator"
        return self.ci if wants else None

    def agent(self) -> AgentContext:
        """What the agent may use: its model, the config, the rule planner, and lookups that
        only read. Loading and saving around it stay here, in the service layer."""
        return AgentContext(
            llm=self.llm,
            config=self.config,
            planner=self.planner,
            lookups=PortLookups(self),
            clock=self.clock,
            tick_seconds=self.tick_seconds,
        )


class PortLookups:
    """The agent's read-only lookups (``bot.agent.context.Lookups``), answered by the ports,
    which it keeps to itself."""

    __slots__ = ("_services",)

    def __init__(self, services: Services) -> None:
        self._services = services

    def artifact(self, image: str) -> ArtifactRecord | None:
        return self._services.checks.artifact(image)

    def evidence(self, service: str, version: str) -> list[CheckEvidence]:
        return self._services.checks.results(service, version)

    def flag(self, name: str) -> FlagState | None:
        return self._services.flags.get(name)

    def dependencies(self, service: str, names: list[str]) -> list[DependencyProbe]:
        return self._services.metrics.dependencies(service, names)

    def past_releases(self, service: str, limit: int, excluding: str | None) -> list[Release]:
        store = self._services.store
        rows = [r for r in store.listing(service, limit + 1) if r["id"] != excluding]
        return [store.get(str(row["id"])) for row in rows[:limit]]

    def events(self, release_id: str) -> list[Event]:
        return list(self._services.store.events(release_id))
