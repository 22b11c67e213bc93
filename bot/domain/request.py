"""The release request: the service plus every field of the brief's ``<inputs>`` template, typed."""

from __future__ import annotations

import itertools
from datetime import time
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.domain.base import Model

Strategy = Literal["canary", "blue_green", "rolling", "feature_flag", "shadow"]
STRATEGIES: tuple[Strategy, ...] = ("canary", "blue_green", "rolling", "feature_flag", "shadow")
Risk = Literal["low", "medium", "high", "critical"]
RISKS: tuple[Risk, ...] = ("low", "medium", "high", "critical")
EnvName = Literal["dev", "staging", "prod"]
ENV_ORDER: tuple[EnvName, ...] = ("dev", "staging", "prod")
DependencyHealth = Literal["healthy", "degraded", "unhealthy"]
Comparator = Literal["<", "<=", ">", ">="]
GuardrailMetric = Literal[
    "error_rate", "success_rate", "availability", "latency_p50", "latency_p95", "latency_p99", "kpi"
]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Template field names, as the brief writes them; `missing` lists use these.
TEMPLATE_FIELDS: dict[str, str] = {
    "version": "Version",
    "artifact": "Build artifacts",
    "changes": "Changes included",
    "risk": "Risk level",
    "environments": "Target environments",
    "strategy": "Deployment strategy",
    "flags": "Feature flags",
    "stages": "Rollout percentages",
    "error_rate": "Error rate threshold",
    "latency": "Latency budget",
    "availability": "Availability SLA",
    "kpis": "Business KPIs",
    "traffic": "Current traffic",
    "peak_hours": "Peak hours",
    "maintenance_windows": "Maintenance windows",
    "dependencies": "Dependencies status",
}


class Guardrail(Model):
    """One guardrail: ``error_rate<1%``, ``p95<300ms``, ``availability>=99.9%``, ``kpi:x>=-2%``.

    Rates and availability are in percent, latencies in milliseconds. A KPI guardrail with
    ``relative=True`` bounds the canary's change against the baseline, in percent.
    """

    metric: GuardrailMetric
    kpi: str | None = None
    comparator: Comparator
    value: float = Field(allow_inf_nan=False)
    unit: Literal["percent", "ms", "value"]
    relative: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Guardrail:
        if (self.metric == "kpi") != (self.kpi is not None):
            raise ValueError("a KPI guardrail needs a KPI name, and only a KPI guardrail has one")
        if self.metric.startswith("latency") and (self.unit != "ms" or self.value <= 0):
            raise ValueError(
                "a latency budget is a positive number of milliseconds, e.g. p95<300ms"
            )
        is_rate = self.metric in ("error_rate", "success_rate", "availability")
        if is_rate and (self.unit != "percent" or not 0 <= self.value <= 100):
            raise ValueError(f"{self.metric} is a percentage between 0 and 100, e.g. 1%")
        return self

    @property
    def name(self) -> str:
        return f"kpi:{self.kpi}" if self.kpi else self.metric

    @property
    def upper_bound(self) -> bool:
        """True when the guardrail caps the metric from above (``<`` or ``<=``)."""
        return self.comparator in ("<", "<=")

    def describe(self) -> str:
        suffix = {"percent": "%", "ms": "ms", "value": ""}[self.unit]
        value = f"{self.value:.12g}"  # exact enough to parse back to the same guardrail
        if self.relative and self.value > 0:
            value = f"+{value}"
        label = {"latency_p50": "p50", "latency_p95": "p95", "latency_p99": "p99"}.get(
            self.metric, self.name
        )
        return f"{label}{self.comparator}{value}{suffix}"

    def holds(self, observed: float) -> bool:
        match self.comparator:
            case "<":
                return observed < self.value
            case "<=":
                return observed <= self.value
            case ">":
                return observed > self.value
            case _:
                return observed >= self.value


class Artifact(Model):
    image: str = Field(min_length=1)
    hash: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{6,64}$")
    build_id: str | None = None


class FlagSpec(Model):
    """A feature flag the release uses; ``percentage`` is where the release takes it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    percentage: float = Field(default=100.0, ge=0, le=100)


class TimeRange(Model):
    """A daily range in UTC; ``end`` before ``start`` wraps past midnight."""

    start: time
    end: time
    days: list[Weekday] | None = None

    def contains(self, weekday: Weekday, at: time) -> bool:
        def on(day: Weekday) -> bool:
            return self.days is None or day in self.days

        if self.start <= self.end:
            return on(weekday) and self.start <= at < self.end
        if at >= self.start:
            return on(weekday)
        # The part after midnight belongs to the day the range opened.
        previous = WEEKDAYS[(WEEKDAYS.index(weekday) - 1) % 7]
        return at < self.end and on(previous)

    def describe(self) -> str:
        days = f"{','.join(self.days)} " if self.days else ""
        return f"{days}{self.start:%H:%M}-{self.end:%H:%M} UTC"


class DependencyStatus(Model):
    name: str = Field(min_length=1)
    health: DependencyHealth


class ReleasePackage(Model):
    version: str = Field(min_length=1)
    artifact: Artifact
    changes: str = Field(min_length=1)
    risk: Risk
    change_ticket: str | None = None


class DeploymentConfig(Model):
    environments: list[EnvName] = Field(min_length=1)
    regions: list[str] = Field(min_length=1)
    strategy: Strategy
    flags: list[FlagSpec] = []
    stages: list[float] | None = None  # None: the planner picks them from risk and strategy

    @field_validator("environments")
    @classmethod
    def _ordered(cls, envs: list[EnvName]) -> list[EnvName]:
        if len(set(envs)) != len(envs):
            raise ValueError("an environment is listed twice")
        return sorted(envs, key=ENV_ORDER.index)

    @field_validator("stages")
    @classmethod
    def _increasing(cls, stages: list[float] | None) -> list[float] | None:
        if stages is None:
            return None
        if any(not 0 < s <= 100 for s in stages):
            raise ValueError("rollout percentages are between 0 (exclusive) and 100")
        if any(b <= a for a, b in itertools.pairwise(stages)):
            raise ValueError("rollout percentages must increase, e.g. 1,5,25,50,100")
        if stages[-1] != 100:
            raise ValueError("the last rollout percentage must be 100")
        return stages

    @model_validator(mode="after")
    def _flag_strategy_has_flag(self) -> DeploymentConfig:
        if self.strategy == "feature_flag" and not self.flags:
            raise ValueError("the feature_flag strategy needs a flag: flags=name")
        return self


class Guardrails(Model):
    error_rate: Guardrail
    latency: list[Guardrail] = Field(min_length=1)
    availability: Guardrail
    kpis: list[Guardrail] = []
    others: list[Guardrail] = []  # success_rate and anything beyond the template

    def all(self) -> list[Guardrail]:
        return [self.error_rate, *self.latency, self.availability, *self.kpis, *self.others]


class OperationalContext(Model):
    traffic_rps: float | None = Field(default=None, ge=0)  # None: measured at start
    peak_hours: list[TimeRange] = []
    maintenance_windows: list[TimeRange] = []
    dependencies: list[DependencyStatus] = []  # [] : probed live by the dependency gate


class ReleaseRequest(Model):
    service: str = Field(pattern=r"^[a-z0-9][a-z0-9._\-]*$")
    release_package: ReleasePackage
    deployment_config: DeploymentConfig
    guardrails: Guardrails
    operational_context: OperationalContext
