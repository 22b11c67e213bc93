"""Ports: the small abstract classes the service layer talks through.

Each has a real adapter and an embedded default (see ``bot/adapters``); ``bootstrap`` picks.
"""

from __future__ import annotations

import abc
from datetime import datetime
from typing import TYPE_CHECKING

from bot.agent.task import AgentRun, AgentTask
from bot.domain.flags import FlagState
from bot.domain.observations import (
    ArtifactRecord,
    CheckEvidence,
    DependencyProbe,
    LogSummary,
    Target,
    TraceSummary,
    TrafficState,
    TransactionResult,
    WindowSample,
)
from bot.domain.plan import Plan
from bot.domain.request import ReleaseRequest

if TYPE_CHECKING:
    from bot.adapters.store import StoredEvent
    from bot.domain.release import Release


class MetricsUnavailable(Exception):
    """The metrics provider did not answer or returned no data for the window."""


class AbstractClock(abc.ABC):
    @abc.abstractmethod
    def now(self) -> datetime:
        """An aware UTC datetime."""


class AbstractMetrics(abc.ABC):
    """Reads what the fleet is doing: metrics, logs, traces, synthetic checks, dependencies."""

    @abc.abstractmethod
    def window(self, target: Target, start: datetime, end: datetime) -> WindowSample:
        """Baseline and canary counts for (start, end]. Raises MetricsUnavailable."""

    @abc.abstractmethod
    def probe(self, service: str) -> list[str]:
        """Names of the metrics that answer for the service (requests, errors, latency, kpis)."""

    @abc.abstractmethod
    def dependencies(self, service: str, names: list[str]) -> list[DependencyProbe]:
        """Live health of the named dependencies."""

    @abc.abstractmethod
    def logs(self, target: Target, start: datetime, end: datetime) -> LogSummary: ...

    @abc.abstractmethod
    def traces(self, target: Target, start: datetime, end: datetime) -> TraceSummary: ...

    @abc.abstractmethod
    def synthetic(
        self, target: Target, transactions: list[str], at: datetime
    ) -> list[TransactionResult]:
        """Run the key transactions against the new version."""


class AbstractTrafficRouter(abc.ABC):
    @abc.abstractmethod
    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        """Make the router's state for ``target`` equal ``desired``; idempotent. Returns it."""

    @abc.abstractmethod
    def state(self, target: Target) -> TrafficState: ...

    @abc.abstractmethod
    def rehearse_rollback(self, target: Target, version: str) -> bool:
        """Deploy ``version`` beside the stable one and roll it back; True when the
        stable version serves all traffic afterwards."""


class AbstractFlags(abc.ABC):
    @abc.abstractmethod
    def get(self, name: str) -> FlagState | None: ...

    @abc.abstractmethod
    def put(self, flag: FlagState) -> None: ...


class AbstractChecks(abc.ABC):
    """Evidence from CI and the registry, recorded per service version."""

    @abc.abstractmethod
    def artifact(self, image: str) -> ArtifactRecord | None: ...

    @abc.abstractmethod
    def results(self, service: str, version: str) -> list[CheckEvidence]: ...

    @abc.abstractmethod
    def record_artifact(self, record: ArtifactRecord) -> None: ...

    @abc.abstractmethod
    def record(self, service: str, version: str, evidence: CheckEvidence) -> None: ...


class AbstractChat(abc.ABC):
    """Where a release's thread lives: Slack, or the terminal."""

    @abc.abstractmethod
    def post(self, release: Release, events: list[StoredEvent]) -> None:
        """Show a release's new events (oldest first) in its thread. One call per release per
        delivery, so a chat with rate limits can coalesce a burst into one update."""


class AbstractPlanner(abc.ABC):
    """Plans a release: the LLM agent, or the rule planner when no API key is set."""

    @abc.abstractmethod
    def plan(self, request: ReleaseRequest, now: datetime, instances: int) -> Plan: ...


class AbstractLLM(abc.ABC):
    """The language model behind the agent: Anthropic, or none (the rules do every step).

    ``run`` never raises for the model's or the API's failures: it returns an ``AgentRun``
    whose ``fallback`` says why the rules must do this step."""

    model: str = "rules"

    @property
    def enabled(self) -> bool:
        return True

    @abc.abstractmethod
    def run(self, task: AgentTask) -> AgentRun: ...
