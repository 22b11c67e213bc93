"""What a team configures once per service, as pure models: defaults, approvers, channels,
dependencies, flags. Reading the file is outside the domain (``bot/config.py``).

A ``[defaults]`` table applies to every service; ``[services.NAME]`` tables override it.
Guardrails and flags are written in the same syntax as on a ``/release`` line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Literal

from pydantic import ConfigDict, Field, PrivateAttr

from bot.domain.base import Model
from bot.domain.evidence import Waiver
from bot.domain.request import ENV_ORDER, EnvName, Risk, Strategy

# What a release does when its metrics provider stays down (``on_metrics_loss``): "rollback"
# rolls back while the canary serves production users and pauses otherwise; "pause" pauses.
MetricsLossPolicy = Literal["rollback", "pause"]
# Where the config is read from unless ``--config`` or ``RELEASE_BOT_CONFIG`` says otherwise.
DEFAULT_SOURCE = "data/services.toml"


class DependencyConfig(Model):
    name: str
    # A live probe, read by the service's metrics provider: an HTTP health endpoint (2xx is
    # healthy), or a PromQL query whose single value is compared with ``healthy`` (and then
    # ``degraded``), e.g. ``healthy = ">= 1"`` for ``up``. Unreachable is unhealthy.
    health_url: str | None = None
    health_query: str | None = None
    healthy: str = ">= 1"
    degraded: str | None = None
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


class SmokeCheck(Model):
    """One key transaction, checked over HTTP: ``url`` reaches the new version (``$env`` and
    ``$region`` are replaced per target); it passes on ``expect_status`` within
    ``latency_ms`` (none: the request's tightest latency guardrail)."""

    name: str
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE"] = "GET"
    expect_status: int = Field(default=200, ge=100, le=599)
    latency_ms: float | None = Field(default=None, gt=0)


class AdapterTable(Model):
    """One port's adapter for a service as the config names it, with the adapter's own
    settings; that adapter's schema checks them at start-up (``bot/bootstrap.py``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def settings(self) -> dict[str, object]:
        return dict(self.model_extra or {})


class MetricsTable(AdapterTable):
    provider: str  # prometheus, simulator


class TrafficTable(AdapterTable):
    router: str  # haproxy, webhook, simulator


class NotifyTable(AdapterTable):
    """A notification target's settings (``[services.NAME.pagerduty]``, ``.statuspage``),
    checked at start-up against its adapter's schema; secrets stay in the environment."""


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
    incident_channel: str | None = None  # told of rollbacks and failures, when Slack is the chat
    # Stakeholders told through their APIs, off unless set: a PagerDuty Events API v2 alert
    # on a rollback or failure (resolved on completion), a Statuspage incident on a rollback.
    pagerduty: NotifyTable | None = None
    statuspage: NotifyTable | None = None
    regulatory_requirements: list[str] = []
    capacity_rps: float | None = None
    instances: int = 10
    # Minutes every step bakes, replacing the risk's defaults (prod 5/10/15/30, pre-prod
    # 3/5/10/15), e.g. 0.5 for a service that serves enough traffic to judge in 30 s.
    bake_minutes: float | None = Field(default=None, gt=0)
    # The longest a prod step bakes while its traffic gathers evidence (the planner's ceiling;
    # unset: 20 / 40 / 60 / 90 min for low / medium / high / critical risk); a step still
    # without a verdict asks its approvers at 3× its bake, never later than this.
    max_bake_minutes: float | None = Field(default=None, gt=0, le=24 * 60)
    key_transactions: list[str] = []
    # The key transactions checked over HTTP against the new version after each environment
    # step, for a service on a real provider (the simulator draws its own).
    smoke: list[SmokeCheck] = []
    # Where the service's metrics come from and what moves its traffic; a service with
    # neither cannot be released (``Config.refusal``).
    metrics: MetricsTable | None = None
    traffic: TrafficTable | None = None
    # When the metrics provider fails CONSECUTIVE_ERROR_LIMIT checks in a row: no data is
    # no proof of safety, so by default a canary serving production users is rolled back.
    on_metrics_loss: MetricsLossPolicy = "rollback"
    # "simulator": the embedded CI builds each version and records its evidence (the demo);
    # unset: the team's CI records it, and the gates judge only what was recorded.
    ci: Literal["simulator"] | None = None
    # Security findings accepted for now: { id = "CVE-…", reason = "…", expires = 2027-01-31 }.
    waivers: list[Waiver] = []
    # The public key (PEM text, or a path to a PEM file) artifact signatures verify against.
    signing_key: str | None = None

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
    # The file it was read from (``read_from``), so that messages name the file to fix.
    _source: str = PrivateAttr(default=DEFAULT_SOURCE)
    # Each service's merged table, built once: the tick asks for it several times a release.
    _merged: dict[str, ServiceConfig] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str:
        return self._source

    def read_from(self, source: str) -> Config:
        """This config, saying it was read from ``source``."""
        copy = self.model_copy()
        copy._source = source
        return copy

    def for_service(self, service: str) -> ServiceConfig:
        """Defaults overlaid with the service's own table (fields it sets win)."""
        own = self.services.get(service)
        if own is None:
            return self.defaults
        if (merged := self._merged.get(service)) is None:
            fields = self.defaults.model_dump() | own.model_dump(exclude_unset=True)
            merged = self._merged[service] = ServiceConfig.model_validate(fields)
        return merged

    def knows(self, service: str) -> bool:
        return service in self.services

    def refusal(self, service: str) -> str | None:
        """Why ``service`` cannot be released with this config: not a service it knows
        (naming the closest), or no metrics provider or traffic router to release it with."""
        where = self.source
        if not self.knows(service):
            close = difflib.get_close_matches(service, list(self.services), n=1, cutoff=0.6)
            if close:
                return (
                    f"{service} is not a service in {where}: did you mean {close[0]}? "
                    f"(a new service needs its own [services.{service}] table)"
                )
            known = ", ".join(sorted(self.services)) or "none yet"
            return (
                f"{service} is not a service in {where} (known: {known}); add a "
                f"[services.{service}] table with its metrics and traffic"
            )
        svc = self.for_service(service)
        missing = [
            (what, f'[services.{service}.{table}] {key} = "{real}"')
            for what, table, key, real, given in (
                ("metrics provider", "metrics", "provider", "prometheus", svc.metrics),
                ("traffic router", "traffic", "router", "haproxy", svc.traffic),
            )
            if given is None
        ]
        if missing:
            return (
                f"{service} has no {' and no '.join(what for what, _ in missing)} in {where}: "
                f'add {" and ".join(fix for _, fix in missing)} (or "simulator" for a demo)'
            )
        return None

    def all_approvers(self) -> set[str]:
        """Everyone listed as an approver anywhere: defaults, services, any environment."""
        tables = [self.defaults, *self.services.values()]
        return {
            a
            for t in tables
            for a in [*t.approvers, *(x for xs in t.environment_approvers.values() for x in xs)]
        }
