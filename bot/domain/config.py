"""What a team configures once per service, as pure models: defaults, approvers, channels,
dependencies, flags. Reading the file is outside the domain (``bot/config.py``).

A ``[defaults]`` table applies to every service; ``[services.NAME]`` tables override it.
Guardrails and flags are written in the same syntax as on a ``/release`` line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field

from bot.domain.base import Model
from bot.domain.request import ENV_ORDER, EnvName, Risk, Strategy


class DependencyConfig(Model):
    name: str
    kind: Literal["service", "database", "external_api"] = "service"
    version: str = "unknown"
    compatibility: Literal["verified", "assumed", "unknown"] = "unknown"
    migration: Literal["not_required", "pending", "completed"] = "not_required"
    rollback_possible: bool = True
    fallback: Literal["enabled", "disabled"] = "disabled"


class FlagConfig(Model):
    name: str
    description: str = ""  # free text for people; reaches the agent only as quoted data
    type: Literal["release", "experiment", "operational"] = "release"
    kill_switch: bool = True
    rules: list[str] = []
    segments: list[str] = []
    overrides: list[str] = []


class Dashboard(Model):
    name: str
    url: str
    key_metrics: list[str] = []


class ServiceConfig(Model):
    """What a team sets once per service. Every field is optional: the line can say it too."""

    owner: str | None = None
    approvers: list[str] = []  # Slack user IDs (U0ABC…) in Slack; any names in the CLI
    # Overrides ``approvers`` for a release whose highest environment is the key, e.g. prod.
    environment_approvers: dict[EnvName, list[str]] = {}
    # Channels where a release of the service may be started (IDs or #names); empty: any.
    allowed_channels: list[str] = []
    environments: list[EnvName] | None = None
    regions: list[str] | None = None
    strategy: Strategy | None = None
    risk: Risk | None = None
    artifact: str | None = Field(default=None, description="image ref; {version} is replaced")
    guardrails: list[str] = []
    flags: list[str] = []
    peak_hours: list[str] = []
    maintenance_windows: list[str] = []
    dependencies: list[DependencyConfig] = []
    flag_settings: list[FlagConfig] = []
    dashboards: list[Dashboard] = []
    runbook: str | None = None
    rollback_procedure: str | None = None
    incident_channel: str | None = None
    regulatory_requirements: list[str] = []
    capacity_rps: float | None = None
    instances: int = 10
    key_transactions: list[str] = []

    def approvers_for(self, environments: Iterable[EnvName]) -> list[str]:
        """The effective approvers of a release reaching ``environments``: those set for its
        highest environment in ``environment_approvers``, else ``approvers``."""
        reached = set(environments)
        highest = next((e for e in reversed(ENV_ORDER) if e in reached), None)
        if highest is not None and highest in self.environment_approvers:
            return list(self.environment_approvers[highest])
        return list(self.approvers)


class Config(Model):
    # Who may lock and unlock any scope, besides the approvers (see bot/domain/access.py).
    lock_admins: list[str] = []
    defaults: ServiceConfig = ServiceConfig()
    services: dict[str, ServiceConfig] = {}

    def for_service(self, service: str) -> ServiceConfig:
        """Defaults overlaid with the service's own table (fields it sets win)."""
        own = self.services.get(service)
        if own is None:
            return self.defaults
        merged = self.defaults.model_dump() | own.model_dump(exclude_unset=True)
        return ServiceConfig.model_validate(merged)

    def knows(self, service: str) -> bool:
        return service in self.services

    def all_approvers(self) -> set[str]:
        """Everyone listed as an approver anywhere: defaults, services, any environment."""
        tables = [self.defaults, *self.services.values()]
        return {
            a
            for t in tables
            for a in [*t.approvers, *(x for xs in t.environment_approvers.values() for x in xs)]
        }
