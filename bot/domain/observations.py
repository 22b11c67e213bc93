"""What the outside world tells the core: metric windows, traffic state, evidence from CI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from bot.domain.base import Model
from bot.domain.request import DependencyHealth, EnvName


class Target(Model):
    """Where a version runs: one service in one environment and region."""

    service: str
    env: EnvName
    region: str

    def describe(self) -> str:
        return f"{self.service}/{self.env}/{self.region}"


class CohortSample(Model):
    """One cohort's counts over a window (not cumulative across windows).

    ``latency_buckets`` are Prometheus-style cumulative ``le`` buckets in seconds ("0.05",
    "0.1", ..., "+Inf"), counts for this window summed across instances. ``kpis`` are each
    KPI's value over the window (e.g. a conversion rate), when the window had sessions.
    """

    requests: int = Field(ge=0)
    errors: int = Field(ge=0)
    latency_buckets: dict[str, int] = {}
    kpis: dict[str, float] = {}


class WindowSample(Model):
    start: datetime
    end: datetime
    baseline: CohortSample
    canary: CohortSample


class TrafficState(Model):
    """The router's state for one target; ``apply`` makes it so (idempotently).

    ``new_weight`` is the percent of user traffic served by the new version (canary, green, or
    updated instances); ``mirror`` the percent copied to it with responses discarded (shadow);
    ``flag`` names the feature flag gating the new behaviour; its percentage (flags port)
    decides the canary cohort.
    """

    stable_version: str | None = None
    new_version: str | None = None
    new_weight: float = Field(default=0.0, ge=0, le=100)
    mirror: float = Field(default=0.0, ge=0, le=100)
    instances_total: int = Field(default=0, ge=0)
    instances_updated: int = Field(default=0, ge=0)
    # The feature flag gating the new behaviour; when set, the canary cohort is the flag-on
    # share of user traffic, read from the flags port.
    flag: str | None = None
    # The release that wants this state (routers that call out, such as webhooks, send it).
    release_id: str | None = None


class ArtifactRecord(Model):
    """What the registry knows of an image."""

    image: str
    digest: str
    build_id: str
    signed: bool
    sbom_attached: bool


class CheckEvidence(Model):
    """A result CI (or a rehearsal) recorded for a service version."""

    name: Literal[
        "staging_tests", "security_scan", "performance_benchmark", "smoke_tests", "contract_tests"
    ]
    status: Literal["pass", "fail", "warning"]
    details: str
    passed: int = 0
    failed: int = 0
    recorded_at: datetime


def latest_by_name(evidence: list[CheckEvidence]) -> list[CheckEvidence]:
    """The latest result per check name (later wins on equal times), sorted by name."""
    latest: dict[str, CheckEvidence] = {}
    for e in evidence:
        if e.name not in latest or e.recorded_at >= latest[e.name].recorded_at:
            latest[e.name] = e
    return [latest[name] for name in sorted(latest)]


class LogSummary(Model):
    baseline_errors_by_type: dict[str, int]
    canary_errors_by_type: dict[str, int]
    baseline_lines: int
    canary_lines: int


class TraceSummary(Model):
    critical_path_ms: float
    dependency_failures: list[str]
    bottlenecks: list[str]


class TransactionResult(Model):
    name: str
    success_rate: float
    latency_ms: float
    budget_ms: float | None = None  # the transaction's own latency budget, when it has one


class DependencyProbe(Model):
    name: str
    health: DependencyHealth
