"""Reading what the fleet does: metrics, logs, traces, synthetic checks, dependencies."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

from bot.domain.observations import (
    DependencyProbe,
    LogSummary,
    Target,
    TraceSummary,
    TransactionResult,
    WindowSample,
)
from bot.domain.verdict_time import RecentTraffic

# How far back a plan's measured traffic looks.
TRAFFIC_MINUTES = 10.0


class MetricsUnavailable(Exception):
    """The metrics provider did not answer or returned no data for the window."""


class AbstractMetrics(abc.ABC):
    """Reads what the fleet is doing: metrics, logs, traces, synthetic checks, dependencies."""

    @abc.abstractmethod
    def window(self, target: Target, start: datetime, end: datetime) -> WindowSample:
        """Baseline and canary counts for (start, end]. Raises MetricsUnavailable."""

    def windows(self, targets: list[Target], start: datetime, end: datetime) -> list[WindowSample]:
        """The window of every target of a wave, in order; a provider that can reads them
        side by side. Raises MetricsUnavailable."""
        return [self.window(target, start, end) for target in targets]

    def reading(self, service: str) -> AbstractContextManager[None]:
        """The calls made inside as one observation of ``service``: a provider that keeps
        state in a database (the simulated fleet) reads it once for them all, and again
        after. Nothing for the others."""
        return nullcontext()

    def layout_refusal(
        self, service: str, environments: Sequence[str], regions: Sequence[str]
    ) -> str | None:
        """Why this adapter cannot keep a release's targets apart (a backend or a selector
        that would be the same for two of them); None: it can."""
        return None

    def shortest_window(self, service: str) -> float:
        """Seconds a window must last for this provider to measure it (a scraped counter
        needs two samples in it); the tick waits that long before asking."""
        return 0.0

    def recent_traffic(
        self, service: str, regions: Sequence[str], now: datetime, minutes: float = TRAFFIC_MINUTES
    ) -> RecentTraffic | None:
        """What the service served in production in ``regions`` over the last ``minutes`` up
        to ``now``, both versions summed (its rate and its bad requests, for the plan): the
        rate over the span its data covers, which may be less than ``minutes``; None: this
        provider cannot say. Raises MetricsUnavailable."""
        return None

    def set_load(self, service: str, rps_per_region: float | None) -> float | None:
        """Serve ``rps_per_region`` in each of the service's regions from now on where this
        provider simulates the fleet (a line's ``traffic=``, so the plan's figure and the run
        agree; None: its own traffic again), and return the load it replaced (None: its
        own); a provider that measures a real fleet cannot, and does nothing."""
        return None

    @abc.abstractmethod
    def probe(self, service: str) -> list[str]:
        """Names of the metrics that answer for the service (requests, errors, latency, kpis)."""

    @abc.abstractmethod
    def dependencies(self, service: str, names: list[str]) -> list[DependencyProbe]:
        """Live health of the named dependencies that have a probe; a probe that cannot
        reach its dependency says ``unhealthy``, never healthy."""

    @abc.abstractmethod
    def logs(self, target: Target, start: datetime, end: datetime) -> LogSummary | None:
        """Error lines by type per cohort; None when no log source is configured (the report
        then says logs were not measured). Raises MetricsUnavailable."""

    @abc.abstractmethod
    def traces(self, target: Target, start: datetime, end: datetime) -> TraceSummary | None:
        """None when no trace source is configured. Raises MetricsUnavailable."""

    @abc.abstractmethod
    def synthetic(
        self, target: Target, transactions: list[str], at: datetime
    ) -> list[TransactionResult]:
        """Run the key transactions against the new version."""
