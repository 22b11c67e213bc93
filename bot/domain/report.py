"""Build the brief's release report from what happened: the release, its audit trail, and
the facts the service read from the ports at report time (``ReportContext``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import fmean
from typing import Literal

from bot.domain.audit import AuditVerdict
from bot.domain.base import Model
from bot.domain.config import ServiceConfig
from bot.domain.contract import (
    Alert,
    Approval,
    Artifacts,
    AuditEntry,
    Availability,
    BusinessKpi,
    CanaryAnalysis,
    CanaryMetrics,
    Changelog,
    Check,
    Communication,
    Compliance,
    Dashboard,
    Database,
    Dependencies,
    DependencyService,
    DeploymentArtifacts,
    DeploymentPlanOut,
    EnvironmentEntry,
    ErrorRateHealth,
    ExternalApi,
    FeatureFlagOut,
    HealthMetrics,
    KeyTransaction,
    Latency,
    Logs,
    MetricComparison,
    Monitoring,
    NextAction,
    Notification,
    PostDeployment,
    PreDeployment,
    ProgressiveRollout,
    ReleaseReport,
    RiskAssessment,
    RollbackStatus,
    RollbackTrigger,
    SmokeTests,
    StageOut,
    SyntheticMonitoring,
    Targeting,
    Throughput,
    Timeline,
    Traces,
    UserFeedback,
    iso,
)
from bot.domain.feedback import ISSUE_REPORTED, sentiment
from bot.domain.flags import FlagState
from bot.domain.histogram import aggregate, quantile_ms
from bot.domain.notify import (
    Delivery,
    stakeholders_notified,
    status_page_updated,
    target_kind,
)
from bot.domain.observations import CheckEvidence, CohortSample, DependencyProbe
from bot.domain.plan import step_label
from bot.domain.release import Event, Release, StepDecision
from bot.domain.summary import summarise

SUMMARY_WORDS = 200
# The provider counts requests, not people: users_affected assumes this many requests per
# user over a release (README, docs/report.md).
REQUESTS_PER_USER = 10
# A trend is a change of the canary's error rate that is both material and not noise.
TREND_MIN_RELATIVE = 0.25
TREND_MIN_Z = 3.0


class CanaryPoint(Model):
    """One judged window of the release, as the series port recorded it."""

    step: int
    canary_requests: int
    canary_errors: int
    baseline_requests: int


class ReportContext(Model):
    """Facts read from the ports when the report is built."""

    service_config: ServiceConfig
    flags: dict[str, FlagState | None]
    dependencies: list[DependencyProbe]
    evidence: list[CheckEvidence]
    notified: bool  # the chat received the release's updates
    deliveries: list[Delivery] = []  # who was told of its moments, and whether it got through
    now: datetime
    audit: AuditVerdict | None = None  # the audit chain, verified for this release
    series: list[CanaryPoint] = []  # the release's judged windows, in time order


def build_report(release: Release, events: Sequence[Event], ctx: ReportContext) -> ReleaseReport:
    status = _status(release)
    return ReleaseReport(
        release_id=release.id,
        version=release.version,
        status=status,
        summary=_clip(
            _audit_warning(ctx)
            # The agent's summary is its own words; the rules' says what nothing measured.
            + (
                _agent_summary(release)
                or summarise(release, events)
                + _decisions_note(release)
                + _unmeasured_note(release, ctx)
            ),
            SUMMARY_WORDS,
        ),
        pre_deployment=PreDeployment(
            checks=release.observed.checks + _audit_checks(ctx),
            artifacts=release.observed.artifacts or _unverified_artifacts(release),
            approvals=[
                Approval(
                    type=a.type, approver=a.approver, timestamp=iso(a.at), conditions=a.conditions
                )
                for a in release.approvals
            ]
            + _overrides(release),
        ),
        deployment_plan=_plan(release),
        canary_analysis=_canary(release, ctx, events),
        progressive_rollout=_rollout(release),
        feature_flags=_flags(release, ctx),
        health_metrics=_health(release, ctx),
        monitoring=_monitoring(release, ctx),
        rollback_status=_rollback(release, ctx),
        dependencies=_dependencies(release, ctx),
        deployment_artifacts=_artifacts(release, ctx, events),
        post_deployment=_post(release, ctx, events),
        risk_assessment=_risk(release, ctx),
        compliance=_compliance(release, ctx, events),
        next_actions=_agent_actions(release) or _next_actions(release, ctx),
    )


def _audit_warning(ctx: ReportContext) -> str:
    """A tampered trail leads the summary: nothing below it can be taken as recorded."""
    if ctx.audit is None or ctx.audit.broken is None:
        return ""
    return f"The audit trail is broken at {ctx.audit.broken.line()}; do not trust this report. "


def _unmeasured_note(release: Release, ctx: ReportContext) -> str:
    """Says in words which figures are null because nothing measured them."""
    notes = []
    if not _served(release).requests:
        notes.append("No request was measured for health_metrics: its figures are null.")
    if _baseline_gone(release, ctx):
        notes.append(
            "canary_analysis is at 100% on the new version: no baseline runs, so its "
            "baseline figures are null."
        )
    logs = release.observed.logs
    if logs is not None and not logs.baseline_lines:
        notes.append("Logs had no baseline to compare with: no spike or new error type is told.")
    return (" " + " ".join(notes)) if notes else ""


def _decided(release: Release, d: StepDecision) -> str:
    """ "step 2 (canary 5%) promoted on override by alice: reason", and why it was held."""
    held = (
        "the stable version broke a guardrail too"
        if d.cause == "stable_breaks"
        else "no verdict past its maximum bake"
    )
    return f"{step_label(release.plan.steps[d.step])} {d.describe()} (held: {held})"


def _decisions_note(release: Release) -> str:
    """How each held step was decided, in words: the report says it was not the judge."""
    notes = [f"{_decided(release, d)}." for d in release.decisions]
    if release.held is not None:
        notes.append(
            f"{step_label(release.plan.steps[release.held.step])} waits for its approvers "
            f"to decide: {release.held.reason}."
        )
    return (" " + " ".join(notes)) if notes else ""


def _overrides(release: Release) -> list[Approval]:
    """A promotion on an override is an approval given without the judge's verdict."""
    return [
        Approval(
            type="manual",
            approver=d.by,
            timestamp=iso(d.at),
            conditions=[_decided(release, d), "the judge reached no verdict: an override"],
        )
        for d in release.decisions
        if d.outcome == "promoted_on_override"
    ]


def _audit_checks(ctx: ReportContext) -> list[Check]:
    if ctx.audit is None or ctx.audit.broken is None:
        return []
    return [Check(check="audit_trail", status="fail", details=ctx.audit.broken.line())]


def _iso_or_none(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _status(release: Release) -> Literal["in_progress", "completed", "rolled_back", "failed"]:
    if release.status in ("completed", "rolled_back", "failed"):
        return release.status
    return "in_progress"


def _clip(text: str, words: int) -> str:
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words])


def _unverified_artifacts(release: Release) -> Artifacts:
    art = release.request.release_package.artifact
    # Gates have not run yet: only what the request says, nothing verified.
    return Artifacts(
        build_id=art.build_id or "",
        image=art.image,
        hash=art.hash or "",
        signed=False,
        sbom_attached=False,
    )


def _env_status(
    release: Release, env: str, region: str
) -> Literal["pending", "deploying", "deployed", "failed"]:
    steps = [s for s in release.plan.steps if s.env == env and region in s.regions]
    records = [release.steps[s.index] for s in steps]
    if not records or all(r.status == "pending" for r in records):
        return "pending"  # never reached
    if env != "prod" and all(r.completed_at is not None for r in records):
        return "deployed"  # deployed and verified there; a later prod rollback does not undo it
    if any(r.status == "rolled_back" for r in records):
        return "failed"  # the new version was taken out of it
    if release.status == "completed" or all(r.status == "completed" for r in records):
        return "deployed"  # e.g. dev and staging, verified before a prod rollback
    return "failed" if release.rollback is not None else "deploying"


def _plan(release: Release) -> DeploymentPlanOut:
    plan = release.plan
    started = next((r.started_at for r in release.steps if r.started_at is not None), None)
    return DeploymentPlanOut(
        strategy=plan.reported_strategy,
        environments=[
            EnvironmentEntry(
                name=e.name,
                region=e.region,
                order=e.order,
                status=_env_status(release, e.name, e.region),
            )
            for e in plan.environments
        ],
        timeline=Timeline(
            start=iso(started or plan.start)
            if started or release.status not in ("failed",)
            else None,
            canary_duration_minutes=plan.minutes("canary"),
            rollout_duration_minutes=plan.minutes("rollout"),
            validation_duration_minutes=plan.minutes("validation"),
        ),
        rollback_triggers=[
            RollbackTrigger(
                metric=t.metric,
                threshold=t.threshold,
                window_minutes=_evaluation_window(release, t.guardrail, t.window_minutes),
                action=t.action,
            )
            for t in plan.triggers
        ],
    )


def _evaluation_window(release: Release, guardrail: str, planned: float) -> float:
    """A guardrail's trigger is judged each tick on all the evidence since its stage began,
    so its window is the stage's bake: the judged stage's, else the first prod stage's. The
    metrics provider's is its consecutive failed checks, as planned."""
    if guardrail == "metrics_provider":
        return planned
    if release.judged_step is not None:
        return release.plan.steps[release.judged_step].bake_minutes
    prod = release.plan.prod_steps()
    return prod[0].bake_minutes if prod else planned


def _empty_metrics() -> CanaryMetrics:
    none = MetricComparison(baseline=None, canary=None, delta=None, verdict="pass")
    return CanaryMetrics(error_rate=none, latency_p95=none, success_rate=none, custom_metrics=[])


def _baseline_gone(release: Release, ctx: ReportContext) -> bool:
    """The judged stage ran with no baseline cohort (100 % on the new version)."""
    step = release.judged_step
    if step is None or release.judgement is None:
        return False
    points = [p for p in ctx.series if p.step == step]
    if points:
        return not any(p.baseline_requests for p in points)
    plan_step = release.plan.steps[step]
    return plan_step.kind != "shadow" and plan_step.percentage >= 100


def _without_baseline(metrics: CanaryMetrics) -> CanaryMetrics:
    def canary_only(m: MetricComparison) -> MetricComparison:
        return m.model_copy(update={"baseline": None, "delta": None})

    return CanaryMetrics(
        error_rate=canary_only(metrics.error_rate),
        latency_p95=canary_only(metrics.latency_p95),
        success_rate=canary_only(metrics.success_rate),
        custom_metrics=[],  # each compares with a baseline, and there is none
    )


def _judged_stage_start(release: Release, events: Sequence[Event]) -> datetime | None:
    """When the judged stage's run began: its last start before the judgement (a resumed
    stage restarts after the judgement it paused on)."""
    step, judged_at = release.judged_step, release.judged_at
    if step is None:
        return None
    starts = [
        e.at
        for e in events
        if e.action == "step_started"
        and e.data.get("step") == step
        and (judged_at is None or e.at <= judged_at)
    ]
    return max(starts) if starts else release.steps[step].started_at


def _canary(release: Release, ctx: ReportContext, events: Sequence[Event]) -> CanaryAnalysis:
    verdict = release.judgement
    if verdict is None or release.judged_step is None:
        # No traffic step has been judged: nothing measured, so nothing to promote on.
        return CanaryAnalysis(
            traffic_percentage=0.0,
            duration_minutes=0.0,
            metrics=_empty_metrics(),
            statistical_confidence=0.0,
            recommendation="extend_analysis",
        )
    step = release.plan.steps[release.judged_step]
    end = release.judged_at or ctx.now
    began = _judged_stage_start(release, events)
    minutes = max(0.0, (end - began).total_seconds() / 60) if began else 0.0
    return CanaryAnalysis(
        traffic_percentage=step.mirror if step.kind == "shadow" else step.percentage,
        duration_minutes=round(minutes, 2),
        metrics=_without_baseline(verdict.metrics)
        if _baseline_gone(release, ctx)
        else verdict.metrics,
        statistical_confidence=verdict.statistical_confidence,
        recommendation=verdict.recommendation,
    )


def _stage_health(
    release: Release, index: int
) -> Literal["healthy", "degraded", "unhealthy"] | None:
    # None: the stage never ran, or ran without being judged yet: nothing says its health.
    return release.steps[index].health


def _rollout(release: Release) -> ProgressiveRollout:
    prod = release.plan.prod_steps()
    return ProgressiveRollout(
        stages=[
            StageOut(
                percentage=s.mirror if s.kind == "shadow" else s.percentage,
                duration_minutes=s.bake_minutes,
                regions=s.regions,
                status=release.steps[s.index].status,
                started_at=_iso_or_none(release.steps[s.index].started_at),
                health_status=_stage_health(release, s.index),
            )
            for s in prod
        ],
        current_percentage=release.current_percentage(),
        # An estimate: the provider counts requests, not users (REQUESTS_PER_USER).
        users_affected=math.ceil(release.observed.user_requests / REQUESTS_PER_USER),
        rollout_velocity=release.plan.velocity,
    )


def _flags(release: Release, ctx: ReportContext) -> list[FeatureFlagOut]:
    out = []
    settings = {f.name: f for f in ctx.service_config.flag_settings}
    for spec in release.request.deployment_config.flags:
        state = ctx.flags.get(spec.name)
        cfg = settings.get(spec.name)
        pct = state.effective_percentage if state else 0.0
        out.append(
            FeatureFlagOut(
                name=spec.name,
                type=state.type if state else (cfg.type if cfg else "release"),
                status=state.status if state else "off",
                percentage=pct,
                targeting=Targeting(
                    rules=state.rules if state else (cfg.rules if cfg else []),
                    segments=state.segments if state else (cfg.segments if cfg else []),
                    overrides=state.overrides if state else (cfg.overrides if cfg else []),
                ),
                kill_switch=state.kill_switch if state else (cfg.kill_switch if cfg else True),
            )
        )
    return out


def _trend(series: list[CanaryPoint]) -> Literal["stable", "increasing", "decreasing"]:
    """The canary's own error rate, the latest judged stage against the stages before it
    (or, with one stage, its second half against its first), pooled by requests: a change
    both material (TREND_MIN_RELATIVE) and beyond noise (a two-proportion z-test)."""
    points = [p for p in series if p.canary_requests]
    if len(points) < 2:
        return "stable"
    last = points[-1].step
    before = [p for p in points if p.step != last]
    after = [p for p in points if p.step == last]
    if not before:
        half = len(points) // 2
        before, after = points[:half], points[half:]
    n1, n2 = sum(p.canary_requests for p in before), sum(p.canary_requests for p in after)
    e1, e2 = sum(p.canary_errors for p in before), sum(p.canary_errors for p in after)
    r1, r2 = e1 / n1, e2 / n2
    pooled = (e1 + e2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if not spread or abs(r2 - r1) / spread < TREND_MIN_Z:
        return "stable"
    if abs(r2 - r1) < TREND_MIN_RELATIVE * max(r1, r2):
        return "stable"
    return "increasing" if r2 > r1 else "decreasing"


def _served(release: Release) -> CohortSample:
    """What users were served over the judged stage's recent windows: the canary's
    requests, or the stable version's where the canary had none."""
    recent = release.observed.windows
    canary = aggregate([w.canary for w in recent])
    return canary if canary.requests else aggregate([w.baseline for w in recent])


def _kpi_impact(
    release: Release, guardrail: str, value: float, baseline: float, breached: bool
) -> Literal["positive", "neutral", "negative"]:
    """From the sign of the change and whether the KPI is better higher (``>=`` bounds)."""
    if breached:
        return "negative"
    rail = next((g for g in release.request.guardrails.all() if g.name == guardrail), None)
    if not baseline or abs(value - baseline) / abs(baseline) * 100 < KPI_NEUTRAL_PERCENT:
        return "neutral"
    higher_is_better = rail is None or rail.comparator in (">", ">=")
    return "positive" if (value > baseline) == higher_is_better else "negative"


KPI_NEUTRAL_PERCENT = 1.0  # a KPI change within ±1 % of its baseline is neutral


def _health(release: Release, ctx: ReportContext) -> HealthMetrics:
    g = release.request.guardrails
    recent = release.observed.windows
    canary = aggregate([w.canary for w in recent])
    baseline = aggregate([w.baseline for w in recent])
    seconds = sum((w.end - w.start).total_seconds() for w in recent)
    served = _served(release)
    measured = served.requests > 0
    error = served.errors / served.requests * 100 if measured else None
    availability = 100 - error if error is not None else None
    sla = g.availability.value
    # Critical exactly when the availability guardrail broke; below the SLA (or its margin)
    # without proof a warning; nothing measured is a warning too, never "healthy".
    status: Literal["healthy", "warning", "critical"] = (
        "critical"
        if "availability" in _broken_guardrails(release)
        else "warning"
        if availability is None or availability < sla + (100 - sla) / 2
        else "healthy"
    )
    p95_budget = next((x.value for x in g.latency if x.metric == "latency_p95"), g.latency[0].value)
    capacity = ctx.service_config.capacity_rps
    rps = (canary.requests + baseline.requests) / seconds if seconds and measured else None
    kpis = []
    if release.judgement:
        for r in release.judgement.results:
            if not r.guardrail.startswith("kpi:") or r.canary_value is None:
                continue
            # The judge's figures over the stage, as canary_analysis reports them.
            value, reference = r.canary_value, r.baseline or 0.0
            kpis.append(
                BusinessKpi(
                    metric=r.guardrail[4:],
                    value=round(value, 6),
                    baseline=round(reference, 6),
                    impact=_kpi_impact(
                        release, r.guardrail, value, reference, r.state == "breached"
                    ),
                )
            )
    return HealthMetrics(
        availability=Availability(
            current=round(availability, 4) if availability is not None else None,
            sla=sla,
            status=status,
        ),
        error_rate=ErrorRateHealth(
            current=round(error, 4) if error is not None else None,
            threshold=g.error_rate.value,
            trend=_trend(ctx.series),
        ),
        latency=Latency(
            p50=_quantile(served, 0.5),
            p95=_quantile(served, 0.95),
            p99=_quantile(served, 0.99),
            budget=p95_budget,
        ),
        throughput=Throughput(
            requests_per_second=round(rps, 2) if rps is not None else None,
            capacity_used=round(rps / capacity * 100, 2) if capacity and rps is not None else None,
        ),
        business_kpis=kpis,
    )


def _quantile(served: CohortSample, q: float) -> float | None:
    value = quantile_ms(served.latency_buckets, q) if served.requests else None
    return round(value, 2) if value is not None else None


def _broken_guardrails(release: Release) -> set[str]:
    """Guardrails that broke: an alert fired for them, or the judge found them breached."""
    broken = {a.guardrail for a in release.alerts}
    if release.judgement is not None:
        broken |= {r.guardrail for r in release.judgement.breached()}
    return broken


def _monitoring(release: Release, ctx: ReportContext) -> Monitoring:
    cfg = ctx.service_config
    fired = {a.guardrail: a for a in release.alerts}
    breached = _broken_guardrails(release) - set(fired)
    alerts = []
    for t in release.plan.triggers:
        a = fired.get(t.guardrail)
        severity: Literal["critical", "warning", "info"] = (
            "critical" if t.action != "alert" else "warning"
        )
        alerts.append(
            Alert(
                name=t.threshold
                if t.guardrail != "metrics_provider"
                else f"{t.metric}: {t.threshold}",
                severity=a.severity if a else severity,
                triggered=a is not None or t.guardrail in breached,
                timestamp=iso(a.at)
                if a
                else _iso_or_none(release.judged_at)
                if t.guardrail in breached
                else None,
                action_taken=a.action_taken
                if a
                else "breached; another guardrail's action was already taken"
                if t.guardrail in breached
                else "none: did not fire",
            )
        )
    logs = release.observed.logs
    if logs is not None and not logs.baseline_lines:
        # At 100 % no stable version logs anything: there is nothing to compare with, and
        # every error type would look new.
        log_out = Logs(measured=True, error_spike=None, new_error_types=[], log_volume=None)
    elif logs is not None:
        new_types = sorted(set(logs.canary_errors_by_type) - set(logs.baseline_errors_by_type))
        c_err = sum(logs.canary_errors_by_type.values())
        b_err = sum(logs.baseline_errors_by_type.values())
        c_rate = c_err / logs.canary_lines if logs.canary_lines else 0.0
        b_rate = b_err / logs.baseline_lines if logs.baseline_lines else 0.0
        spike = bool(logs.canary_lines) and c_rate > 2 * b_rate and c_err >= 5
        volume: Literal["normal", "elevated", "reduced"] = "elevated" if spike else "normal"
        log_out = Logs(
            measured=True, error_spike=spike, new_error_types=new_types, log_volume=volume
        )
    else:
        log_out = Logs(measured=False, error_spike=None, new_error_types=[], log_volume=None)
    traces = release.observed.traces
    return Monitoring(
        dashboards=[
            Dashboard(name=d.name, url=d.url, key_metrics=d.key_metrics) for d in cfg.dashboards
        ],
        alerts=alerts,
        logs=log_out,
        traces=Traces(
            measured=traces is not None,
            critical_path_latency=round(traces.critical_path_ms, 2) if traces else None,
            dependency_failures=traces.dependency_failures if traces else [],
            bottlenecks=traces.bottlenecks if traces else [],
        ),
    )


def _rollback(release: Release, ctx: ReportContext) -> RollbackStatus:
    rb = release.rollback
    if rb is None:
        reason = {
            "completed": "not required: every guardrail held",
            "failed": "not required: nothing was deployed",
        }.get(release.status, "not required so far: guardrails hold")
        return RollbackStatus(
            required=False, triggered_by=None, reason=reason, started_at=None, completed_at=None,
            duration_minutes=None, success=None, data_loss=False,
        )  # fmt: skip
    duration = (rb.completed_at - rb.started_at).total_seconds() / 60 if rb.completed_at else None
    return RollbackStatus(
        required=True,
        triggered_by=rb.triggered_by,
        reason=rb.reason,
        started_at=iso(rb.started_at),
        completed_at=iso(rb.completed_at) if rb.completed_at else None,
        duration_minutes=round(duration, 2) if duration is not None else None,
        success=rb.success,
        # Rolling back loses data only past a migration that cannot be undone.
        data_loss=any(
            d.kind == "database" and d.migration == "completed" and not d.rollback_possible
            for d in ctx.service_config.dependencies
        ),
    )


def _dependencies(release: Release, ctx: ReportContext) -> Dependencies:
    live = {p.name: p.health for p in ctx.dependencies}
    said = {d.name: d.health for d in release.request.operational_context.dependencies}
    configured = {d.name: d for d in ctx.service_config.dependencies}
    services, databases, apis = [], [], []
    for name in list(configured) + [n for n in said if n not in configured]:
        dep = configured.get(name)
        health = live.get(name) or said.get(name) or "healthy"
        kind = dep.kind if dep else "service"
        if kind == "database":
            databases.append(
                Database(
                    name=name,
                    migration_status=dep.migration if dep else "not_required",
                    rollback_possible=dep.rollback_possible if dep else True,
                )
            )
        elif kind == "external_api":
            status = {"healthy": "available", "degraded": "degraded", "unhealthy": "unavailable"}[
                health
            ]
            apis.append(
                ExternalApi(name=name, status=status, fallback=dep.fallback if dep else "disabled")
            )
        else:
            services.append(
                DependencyService(
                    name=name,
                    version=dep.version if dep else "unknown",
                    compatibility=dep.compatibility if dep else "unknown",
                    health=health,
                )
            )
    return Dependencies(services=services, databases=databases, external_apis=apis)


def rules_changelog(changes: str) -> Changelog:
    items = [c.strip() for c in changes.replace("\n", ";").split(";") if c.strip()]
    fixes = [c for c in items if c.lower().startswith(("fix", "bug"))]
    breaking = [c for c in items if "breaking" in c.lower()]
    deprecations = [c for c in items if "deprecat" in c.lower()]
    features = [c for c in items if c not in fixes + breaking + deprecations]
    return Changelog(
        features=features, fixes=fixes, breaking_changes=breaking, deprecations=deprecations
    )


def _artifacts(
    release: Release, ctx: ReportContext, events: Sequence[Event]
) -> DeploymentArtifacts:
    cfg = ctx.service_config
    return DeploymentArtifacts(
        changelog=(release.narration and release.narration.changelog)
        or rules_changelog(release.request.release_package.changes),
        runbook=cfg.runbook or "",
        rollback_procedure=cfg.rollback_procedure or cfg.runbook or "",
        communication=Communication(
            stakeholders_notified=stakeholders_notified(ctx.deliveries),
            status_page_updated=status_page_updated(ctx.deliveries),
            incident_channel=cfg.incident_channel or "",
            notifications=[
                Notification(
                    where=target_kind(d.target),
                    target=d.target,
                    moment=d.moment,
                    status=d.status,
                    attempts=d.attempts,
                    delivered_at=_iso_or_none(d.delivered_at),
                    error=d.error,
                    reference=d.reference,
                )
                for d in ctx.deliveries
            ],
        ),
    )


def _post(release: Release, ctx: ReportContext, events: Sequence[Event]) -> PostDeployment:
    # Only the checks run after each deployment: CI's pre-deploy tests are gate evidence.
    passed = sum(v.smoke_passed for v in release.observed.verifications)
    failed = sum(v.smoke_failed for v in release.observed.verifications)
    latest = release.observed.verifications[-1] if release.observed.verifications else None
    txs = [
        KeyTransaction(
            name=str(t["name"]),
            success_rate=float(t["success_rate"]),
            latency_ms=float(t["latency_ms"]),
        )
        for t in (latest.transactions if latest else [])
    ]
    verified = bool(release.observed.verifications) and all(
        v.ok for v in release.observed.verifications
    )
    reported = [e for e in events if e.action == ISSUE_REPORTED]
    # People could report a problem once the release reached them (a chat, a channel, a
    # page); a release only a terminal saw had no one to report.
    could_report = bool(reported) or stakeholders_notified(ctx.deliveries)
    return PostDeployment(
        smoke_tests=SmokeTests(passed=passed, failed=failed, critical_paths_verified=verified),
        synthetic_monitoring=SyntheticMonitoring(
            availability=round(fmean([t.success_rate for t in txs]), 4) if txs else 0.0,
            key_transactions=txs,
        ),
        user_feedback=UserFeedback(
            measured=could_report,
            sentiment=sentiment(len(reported)) if could_report else None,
            issues_reported=len(reported) if could_report else None,
        ),
    )


def _risk(release: Release, ctx: ReportContext) -> RiskAssessment:
    pct = max(
        (
            release.plan.steps[i].percentage
            for i, r in enumerate(release.steps)
            if r.status != "pending" and release.plan.steps[i].env == "prod"
        ),
        default=0.0,
    )
    regions_reached = {
        reg
        for i, r in enumerate(release.steps)
        if r.status != "pending" and release.plan.steps[i].env == "prod"
        for reg in release.plan.steps[i].regions
    }
    all_regions = len(release.request.deployment_config.regions)
    blast: Literal["minimal", "limited", "significant", "global"] = (
        "minimal"
        if pct <= 5
        else "limited"
        if pct < 50
        else "global"
        if pct >= 100 and len(regions_reached) == all_regions
        else "significant"
    )
    dbs = [d for d in ctx.service_config.dependencies if d.kind == "database"]
    migrations = [d for d in dbs if d.migration != "not_required"]
    irreversible = [d for d in migrations if not d.rollback_possible]
    complexity: Literal["simple", "moderate", "complex"] = (
        "complex"
        if irreversible
        else "moderate"
        if migrations or release.plan.strategy == "rolling"
        else "simple"
    )
    data_risk: Literal["none", "low", "medium", "high"] = (
        "high" if irreversible else "medium" if migrations else "none"
    )
    warnings = sum(1 for c in release.observed.checks if c.status == "warning")
    failures = sum(1 for c in release.observed.checks if c.status == "fail")
    judged = (
        release.judgement.statistical_confidence
        if release.judgement and release.judgement.recommendation != "rollback"
        else (0.0 if release.judgement else 0.5)
    )
    score = (
        0.0
        if failures or release.rollback
        else max(0.0, min(1.0, 0.5 + 0.5 * judged - 0.05 * warnings))
    )
    rules = RiskAssessment(
        deployment_risk=release.plan.risk,
        blast_radius=blast,
        rollback_complexity=complexity,
        data_risk=data_risk,
        confidence_score=round(score, 3),
    )
    agent = release.narration.assessment if release.narration else None
    if agent is None:
        return rules
    # The agent's judgement may only make the assessment graver, field by field.
    graver = {
        name: max(getattr(rules, name), getattr(agent, name), key=order.index)
        for name, order in SEVERITY.items()
    }
    return rules.model_copy(update=graver)


SEVERITY: dict[str, tuple[str, ...]] = {
    "deployment_risk": ("low", "medium", "high", "critical"),
    "blast_radius": ("minimal", "limited", "significant", "global"),
    "rollback_complexity": ("simple", "moderate", "complex"),
    "data_risk": ("none", "low", "medium", "high"),
}


def _agent_summary(release: Release) -> str | None:
    """The agent's summary, when it was written for the release as it stands."""
    n = release.narration
    return n.summary if n and n.summary and n.summary_status == release.status else None


def _agent_actions(release: Release) -> list[NextAction]:
    n = release.narration
    return list(n.next_actions) if n and _agent_summary(release) else []


def _compliance(release: Release, ctx: ReportContext, events: Sequence[Event]) -> Compliance:
    board: Literal["approved", "pending", "rejected"] = (
        "rejected"
        if any(e.action == "rejected" for e in events)
        else "approved"
        if any(a.gate == "release" for a in release.approvals)
        else "pending"
    )
    return Compliance(
        change_ticket=release.request.release_package.change_ticket or "",
        approval_board=board,
        audit_trail=[
            AuditEntry(action=e.action, actor=e.actor, timestamp=iso(e.at), details=e.details)
            for e in events
        ],
        regulatory_requirements=ctx.service_config.regulatory_requirements,
    )


def _next_actions(release: Release, ctx: ReportContext) -> list[NextAction]:
    owner = ctx.service_config.owner or (
        release.approvers[0] if release.approvers else release.requested_by
    )
    step = release.current_step
    match release.status:
        case "awaiting_approval":
            return [
                NextAction(
                    action=f"approve or reject {release.pending_approval}",
                    trigger="manual",
                    scheduled_for=None,
                    owner=", ".join(release.approvers),
                )
            ]
        case "scheduled":
            return [
                NextAction(
                    action="start the rollout",
                    trigger="time",
                    scheduled_for=iso(release.plan.start),
                    owner="release-bot",
                )
            ]
        case "rolling_out" if step is not None:
            started = release.steps[step.index].started_at
            if release.holding_until is not None:
                return [
                    NextAction(
                        action=f"start {step_label(step)} after peak hours",
                        trigger="time",
                        scheduled_for=iso(release.holding_until),
                        owner="release-bot",
                    )
                ]
            if started is None:
                return []
            due = started + timedelta(minutes=step.bake_minutes)
            return [
                NextAction(
                    action=f"judge {step_label(step)} and promote if guardrails hold",
                    trigger="metric",
                    scheduled_for=iso(due),
                    owner="release-bot",
                )
            ]
        case "paused" if release.held is not None:
            return [
                NextAction(
                    action="extend the bake, promote on an override, or roll back: "
                    f"{release.held.reason}",
                    trigger="manual",
                    scheduled_for=None,
                    owner=", ".join(release.approvers),
                )
            ]
        case "paused":
            return [
                NextAction(
                    action=f"resume or roll back: {release.pause_reason}",
                    trigger="manual",
                    scheduled_for=None,
                    owner=owner,
                )
            ]
        case "rolling_back":
            return [
                NextAction(
                    action="confirm the stable version serves all traffic",
                    trigger="metric",
                    scheduled_for=None,
                    owner="release-bot",
                )
            ]
        case "rolled_back":
            rb = release.rollback
            assert rb is not None
            return [
                NextAction(
                    action=f"investigate: {rb.reason}; fix and release a new version",
                    trigger="manual",
                    scheduled_for=None,
                    owner=owner,
                )
            ]
        case "failed":
            return [
                NextAction(
                    action=f"fix the blockers and request again: {'; '.join(release.blockers)}",
                    trigger="manual",
                    scheduled_for=None,
                    owner=owner,
                )
            ]
        case "completed":
            actions = []
            if release.plan.strategy == "feature_flag":
                actions.append(
                    NextAction(
                        action="remove the release flag once the new path is permanent",
                        trigger="manual",
                        scheduled_for=None,
                        owner=owner,
                    )
                )
            actions.append(
                NextAction(
                    action="watch the dashboards for regressions for 24 hours",
                    trigger="metric",
                    scheduled_for=None,
                    owner=owner,
                )
            )
            return actions
    return []
