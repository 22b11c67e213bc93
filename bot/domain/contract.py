"""The brief's output contract: the release report and the ``insufficient_context`` error.

Field names and enums follow ``<output_contract>`` exactly. Timestamps are ISO 8601 UTC
strings. A timestamp of something that has not happened (a pending stage's ``started_at``, a
rollback that never ran) is ``null``, as are the other facts about a rollback that never ran,
and a figure that nothing measured (``docs/report.md`` lists each field's rule).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, TypeAdapter

from bot.domain.base import Model


def _iso_utc(value: str) -> str:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.utcoffset() is None or parsed.utcoffset() != UTC.utcoffset(None):
        raise ValueError("timestamps are ISO 8601 in UTC, e.g. 2026-11-24T10:00:00Z")
    return value


Timestamp = Annotated[
    str,
    Field(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$", examples=["2026-11-24T10:00:00Z"]
    ),
    AfterValidator(_iso_utc),
]


def iso(moment: datetime) -> str:
    """Format an aware datetime as the contract's ISO 8601 UTC timestamp."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Verdict = Literal["pass", "fail"]
CheckStatus = Literal["pass", "fail", "warning"]


class Check(Model):
    check: str
    status: CheckStatus
    details: str


class Artifacts(Model):
    build_id: str
    image: str
    hash: str
    signed: bool
    sbom_attached: bool


class Approval(Model):
    type: Literal["manual", "automated"]
    approver: str
    timestamp: Timestamp
    conditions: list[str]


class PreDeployment(Model):
    checks: list[Check]
    artifacts: Artifacts
    approvals: list[Approval]


class EnvironmentEntry(Model):
    name: Literal["dev", "staging", "prod"]
    region: str
    order: int
    status: Literal["pending", "deploying", "deployed", "failed"]


class Timeline(Model):
    start: Timestamp | None
    canary_duration_minutes: float
    rollout_duration_minutes: float
    validation_duration_minutes: float


class RollbackTrigger(Model):
    metric: str
    threshold: str
    window_minutes: float
    action: Literal["auto_rollback", "alert", "pause"]


class DeploymentPlanOut(Model):
    strategy: Literal["blue_green", "canary", "rolling", "feature_flag"]
    environments: list[EnvironmentEntry]
    timeline: Timeline
    rollback_triggers: list[RollbackTrigger]


class MetricComparison(Model):
    baseline: float | None  # null: no baseline (nothing judged, or 100 % on the new version)
    canary: float | None  # null: nothing judged
    delta: float | None
    verdict: Verdict


class CustomMetric(Model):
    name: str
    baseline: float
    canary: float
    verdict: Verdict


class CanaryMetrics(Model):
    error_rate: MetricComparison
    latency_p95: MetricComparison
    success_rate: MetricComparison
    custom_metrics: list[CustomMetric]


class CanaryAnalysis(Model):
    traffic_percentage: float
    duration_minutes: float
    metrics: CanaryMetrics
    statistical_confidence: float = Field(ge=0, le=1)
    recommendation: Literal["promote", "rollback", "extend_analysis"]


class StageOut(Model):
    percentage: float
    duration_minutes: float
    regions: list[str]
    status: Literal["pending", "active", "completed", "rolled_back"]
    started_at: Timestamp | None
    health_status: Literal["healthy", "degraded", "unhealthy"] | None  # null: never judged


class ProgressiveRollout(Model):
    stages: list[StageOut]
    current_percentage: float
    users_affected: int
    rollout_velocity: Literal["slow", "normal", "fast"]


class Targeting(Model):
    rules: list[str]
    segments: list[str]
    overrides: list[str]


class FeatureFlagOut(Model):
    name: str
    type: Literal["release", "experiment", "operational"]
    status: Literal["off", "partial", "full"]
    percentage: float
    targeting: Targeting
    kill_switch: bool


class Availability(Model):
    current: float | None  # null: no request was measured
    sla: float
    status: Literal["healthy", "warning", "critical"]


class ErrorRateHealth(Model):
    current: float | None  # null: no request was measured
    threshold: float
    trend: Literal["stable", "increasing", "decreasing"]


class Latency(Model):
    # null: no request was measured
    p50: float | None
    p95: float | None
    p99: float | None
    budget: float


class Throughput(Model):
    requests_per_second: float | None  # null: no request was measured
    capacity_used: float | None  # null: nothing measured, or no capacity configured


class BusinessKpi(Model):
    metric: str
    value: float
    baseline: float
    impact: Literal["positive", "neutral", "negative"]


class HealthMetrics(Model):
    availability: Availability
    error_rate: ErrorRateHealth
    latency: Latency
    throughput: Throughput
    business_kpis: list[BusinessKpi]


class Dashboard(Model):
    name: str
    url: str
    key_metrics: list[str]


class Alert(Model):
    name: str
    severity: Literal["critical", "warning", "info"]
    triggered: bool
    timestamp: Timestamp | None
    action_taken: str


class Logs(Model):
    # False: no log source is configured for the service, or no window was judged; the
    # figures below are then null, never a guess.
    measured: bool
    error_spike: bool | None
    new_error_types: list[str]
    log_volume: Literal["normal", "elevated", "reduced"] | None


class Traces(Model):
    measured: bool  # as for logs
    critical_path_latency: float | None
    dependency_failures: list[str]
    bottlenecks: list[str]


class Monitoring(Model):
    dashboards: list[Dashboard]
    alerts: list[Alert]
    logs: Logs
    traces: Traces


class RollbackStatus(Model):
    required: bool
    triggered_by: Literal["automated", "manual"] | None
    reason: str
    started_at: Timestamp | None
    completed_at: Timestamp | None
    duration_minutes: float | None
    success: bool | None
    data_loss: bool


class DependencyService(Model):
    name: str
    version: str
    compatibility: Literal["verified", "assumed", "unknown"]
    health: Literal["healthy", "degraded", "unhealthy"]


class Database(Model):
    name: str
    migration_status: Literal["not_required", "pending", "completed"]
    rollback_possible: bool


class ExternalApi(Model):
    name: str
    status: Literal["available", "degraded", "unavailable"]
    fallback: Literal["enabled", "disabled"]


class Dependencies(Model):
    services: list[DependencyService]
    databases: list[Database]
    external_apis: list[ExternalApi]


class Changelog(Model):
    features: list[str]
    fixes: list[str]
    breaking_changes: list[str]
    deprecations: list[str]


class Notification(Model):
    """An extension of the brief's contract: one moment told to one target, and whether it
    got through (``docs/report.md``)."""

    where: Literal["thread", "incident_channel", "pagerduty", "statuspage"]
    target: str  # the release thread, the channel's name or id, PagerDuty, Statuspage
    moment: Literal["started", "completed", "rolled_back", "failed"]
    status: Literal["pending", "delivered", "failed"]  # pending: not through yet, retried
    attempts: int
    delivered_at: Timestamp | None
    error: str | None  # the last refusal, one line
    reference: str | None  # what the target answered: a message ts, an incident id


class Communication(Model):
    stakeholders_notified: bool
    status_page_updated: bool
    incident_channel: str
    notifications: list[Notification]  # an extension: who was told, and whether it got through


class DeploymentArtifacts(Model):
    changelog: Changelog
    runbook: str
    rollback_procedure: str
    communication: Communication


class SmokeTests(Model):
    passed: int
    failed: int
    critical_paths_verified: bool


class KeyTransaction(Model):
    name: str
    success_rate: float
    latency_ms: float


class SyntheticMonitoring(Model):
    availability: float
    key_transactions: list[KeyTransaction]


class UserFeedback(Model):
    # False: nobody could report a problem (no chat reached people, e.g. `run` in a terminal);
    # the figures below are then null (an extension, as for logs and traces).
    measured: bool
    sentiment: Literal["positive", "neutral", "negative"] | None
    issues_reported: int | None


class PostDeployment(Model):
    smoke_tests: SmokeTests
    synthetic_monitoring: SyntheticMonitoring
    user_feedback: UserFeedback


class RiskAssessment(Model):
    deployment_risk: Literal["low", "medium", "high", "critical"]
    blast_radius: Literal["minimal", "limited", "significant", "global"]
    rollback_complexity: Literal["simple", "moderate", "complex"]
    data_risk: Literal["none", "low", "medium", "high"]
    confidence_score: float = Field(ge=0, le=1)


class AuditEntry(Model):
    action: str
    actor: str
    timestamp: Timestamp
    details: str


class Compliance(Model):
    change_ticket: str
    approval_board: Literal["approved", "pending", "rejected"]
    audit_trail: list[AuditEntry]
    regulatory_requirements: list[str]


class NextAction(Model):
    action: str
    trigger: Literal["time", "metric", "manual"]
    scheduled_for: Timestamp | None
    owner: str


class ReleaseReport(Model):
    release_id: str
    version: str
    status: Literal["in_progress", "completed", "rolled_back", "failed"]
    summary: str
    pre_deployment: PreDeployment
    deployment_plan: DeploymentPlanOut
    canary_analysis: CanaryAnalysis
    progressive_rollout: ProgressiveRollout
    feature_flags: list[FeatureFlagOut]
    health_metrics: HealthMetrics
    monitoring: Monitoring
    rollback_status: RollbackStatus
    dependencies: Dependencies
    deployment_artifacts: DeploymentArtifacts
    post_deployment: PostDeployment
    risk_assessment: RiskAssessment
    compliance: Compliance
    next_actions: list[NextAction]


class InsufficientContext(Model):
    error: Literal["insufficient_context"] = "insufficient_context"
    missing: list[str]
    deployment_blockers: list[str]
    next_best_step: str


ContractOutput = ReleaseReport | InsufficientContext


def contract_json_schema() -> dict[str, object]:
    """The JSON Schema of the contract: one of the two shapes."""
    schema = TypeAdapter(ContractOutput).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "release-bot output contract"
    return schema
