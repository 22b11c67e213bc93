"""Reading what the fleet does: metrics, logs, traces, synthetic checks, dependencies."""

from __future__ import annotations

import abc
from datetime import datetime

from bot.domain.observations import (
    DependencyProbe,
    LogSummary,
    Target,
    TraceSummary,
    TransactionResult,
    WindowSample,
)


class MetricsUnavailable(Exception):
    """The metrics provider did not answer or returned no data for the window."""


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
