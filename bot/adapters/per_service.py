"""Each service on its own metrics provider and traffic router, as ``data/services.toml`` names
them: these two dispatch every call of a port to the adapter of the service it is about.

A service with no adapter here never reaches them: ``Config.refusal`` refuses its release
first. Asking anyway is a bug, and says so."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

from bot.domain.observations import (
    DependencyProbe,
    LogSummary,
    Target,
    TraceSummary,
    TrafficState,
    TransactionResult,
    WindowSample,
)
from bot.domain.request import Strategy
from bot.domain.verdict_time import RecentTraffic
from bot.ports.metrics import TRAFFIC_MINUTES, AbstractMetrics, MetricsUnavailable
from bot.ports.traffic import AbstractTrafficRouter, RouterUnavailable


class ServiceMetrics(AbstractMetrics):
    """The metrics port, answered by each service's own provider."""

    def __init__(
        self, providers: Mapping[str, AbstractMetrics], config_file: str = "data/services.toml"
    ) -> None:
        self.providers = dict(providers)
        self.config_file = config_file  # named in the refusal of a service without one

    def _for(self, service: str) -> AbstractMetrics:
        try:
            return self.providers[service]
        except KeyError:
            raise MetricsUnavailable(
                f"{service} has no metrics provider: add [services.{service}.metrics] "
                f"to {self.config_file}"
            ) from None

    def window(self, target: Target, start: datetime, end: datetime) -> WindowSample:
        return self._for(target.service).window(target, start, end)

    def windows(self, targets: list[Target], start: datetime, end: datetime) -> list[WindowSample]:
        return self._for(_one_service(targets)).windows(targets, start, end)

    def reading(self, service: str) -> AbstractContextManager[None]:
        provider = self.providers.get(service)  # none: its calls say so, one by one
        return nullcontext() if provider is None else provider.reading(service)

    def shortest_window(self, service: str) -> float:
        return self._for(service).shortest_window(service)

    def layout_refusal(
        self, service: str, environments: Sequence[str], regions: Sequence[str]
    ) -> str | None:
        return self._for(service).layout_refusal(service, environments, regions)

    def recent_traffic(
        self, service: str, regions: Sequence[str], now: datetime, minutes: float = TRAFFIC_MINUTES
    ) -> RecentTraffic | None:
        return self._for(service).recent_traffic(service, regions, now, minutes)

    def set_load(self, service: str, rps_per_region: float | None) -> float | None:
        return self._for(service).set_load(service, rps_per_region)

    def probe(self, service: str) -> list[str]:
        """No provider: nothing answers (the monitoring gate says so)."""
        provider = self.providers.get(service)
        return provider.probe(service) if provider is not None else []

    def dependencies(self, service: str, names: list[str]) -> list[DependencyProbe]:
        """No provider: no probe ran (the gate and the report go by what was reported)."""
        provider = self.providers.get(service)
        return provider.dependencies(service, names) if provider is not None else []

    def logs(self, target: Target, start: datetime, end: datetime) -> LogSummary | None:
        return self._for(target.service).logs(target, start, end)

    def traces(self, target: Target, start: datetime, end: datetime) -> TraceSummary | None:
        return self._for(target.service).traces(target, start, end)

    def synthetic(
        self, target: Target, transactions: list[str], at: datetime
    ) -> list[TransactionResult]:
        return self._for(target.service).synthetic(target, transactions, at)


class ServiceRouters(AbstractTrafficRouter):
    """The traffic port, answered by each service's own router."""

    def __init__(
        self, routers: Mapping[str, AbstractTrafficRouter], config_file: str = "data/services.toml"
    ) -> None:
        self.routers = dict(routers)
        self.config_file = config_file  # named in the refusal of a service without one

    def _for(self, service: str) -> AbstractTrafficRouter:
        try:
            return self.routers[service]
        except KeyError:
            raise RouterUnavailable(
                f"{service} has no traffic router: add [services.{service}.traffic] "
                f"to {self.config_file}"
            ) from None

    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        return self._for(target.service).apply(target, desired)

    def apply_all(self, changes: Mapping[Target, TrafficState]) -> None:
        if changes:
            self._for(_one_service(list(changes))).apply_all(changes)

    def state(self, target: Target) -> TrafficState:
        return self._for(target.service).state(target)

    def rehearse_rollback(self, target: Target, version: str) -> bool:
        return self._for(target.service).rehearse_rollback(target, version)

    def refusal(self, service: str, strategy: Strategy) -> str | None:
        return self._for(service).refusal(service, strategy)

    def layout_refusal(
        self, service: str, environments: Sequence[str], regions: Sequence[str]
    ) -> str | None:
        return self._for(service).layout_refusal(service, environments, regions)


def _one_service(targets: list[Target]) -> str:
    """The service of a wave's targets: a wave is one release's, so one service's."""
    services = {t.service for t in targets}
    if len(services) != 1:
        raise ValueError(f"a wave spans one service, not {sorted(services)}")
    return services.pop()
