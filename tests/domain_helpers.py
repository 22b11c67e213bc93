"""Builders shared by the domain tests: requests, plans, gate evidence, windows, releases.

Everything is built directly from the domain models (no parser, no ports), so the domain
tests do not depend on the adapters or on the /release syntax.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from bot.domain.config import MetricsLossPolicy
from bot.domain.contract import Artifacts, Check
from bot.domain.gates import GateEvidence, run_gates
from bot.domain.observations import (
    ArtifactRecord,
    CheckEvidence,
    CohortSample,
    WindowSample,
)
from bot.domain.observed import VerificationResult
from bot.domain.plan import Plan
from bot.domain.planner import derive_triggers, plan_release
from bot.domain.release import Release
from bot.domain.request import (
    Artifact,
    DependencyStatus,
    DeploymentConfig,
    FlagSpec,
    Guardrail,
    Guardrails,
    OperationalContext,
    ReleasePackage,
    ReleaseRequest,
    TimeRange,
)

T0 = datetime(2025, 3, 4, 14, 0, tzinfo=UTC)  # a Tuesday, 14:00 UTC
MINUTE = timedelta(minutes=1)
SERVICE = "shop"
VERSION = "1.2.0"
STABLE = "1.1.0"
IMAGE = f"ghcr.io/acme/{SERVICE}:{VERSION}"
DIGEST = "sha256:" + "ab12cd34" * 8
BUILD = "8812"
APPROVERS = ["alice", "bob"]
REQUESTER = "dave"
INSTANCES = 10
TICK_SECONDS = 10.0
BUCKET_LABELS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10")


# -- requests and plans -------------------------------------------------------------------------


def rail(
    metric: str,
    comparator: str,
    value: float,
    unit: str,
    kpi: str | None = None,
    relative: bool = False,
) -> Guardrail:
    return Guardrail.model_validate(
        {
            "metric": metric,
            "kpi": kpi,
            "comparator": comparator,
            "value": value,
            "unit": unit,
            "relative": relative,
        }
    )


ERROR_RATE = rail("error_rate", "<", 1.0, "percent")
P95 = rail("latency_p95", "<", 300.0, "ms")
P99 = rail("latency_p99", "<", 800.0, "ms")
AVAILABILITY = rail("availability", ">=", 99.5, "percent")


def kpi_rail(name: str = "conversion", value: float = -2.0) -> Guardrail:
    return rail("kpi", ">=", value, "percent", kpi=name, relative=True)


def tr(start: str, end: str, days: list[str] | None = None) -> TimeRange:
    h1, m1 = (int(x) for x in start.split(":"))
    h2, m2 = (int(x) for x in end.split(":"))
    return TimeRange.model_validate({"start": time(h1, m1), "end": time(h2, m2), "days": days})


def make_request(
    *,
    risk: str = "medium",
    strategy: str = "canary",
    environments: tuple[str, ...] = ("staging", "prod"),
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1"),
    stages: list[float] | None = None,
    flags: list[tuple[str, float]] | None = None,
    kpis: list[Guardrail] | None = None,
    latency: list[Guardrail] | None = None,
    ticket: str | None = "CHG-1234",
    image_hash: str | None = DIGEST,
    build_id: str | None = BUILD,
    peak_hours: list[TimeRange] | None = None,
    maintenance_windows: list[TimeRange] | None = None,
    dependencies: list[tuple[str, str]] | None = None,
) -> ReleaseRequest:
    return ReleaseRequest(
        service=SERVICE,
        release_package=ReleasePackage(
            version=VERSION,
            artifact=Artifact(image=IMAGE, hash=image_hash, build_id=build_id),
            changes="faster checkout; fix refund rounding",
            risk=risk,
            change_ticket=ticket,
        ),
        deployment_config=DeploymentConfig(
            environments=list(environments),
            regions=list(regions),
            strategy=strategy,
            flags=[FlagSpec(name=n, percentage=p) for n, p in (flags or [])],
            stages=stages,
        ),
        guardrails=Guardrails(
            error_rate=ERROR_RATE,
            latency=latency if latency is not None else [P95, P99],
            availability=AVAILABILITY,
            kpis=kpis or [],
        ),
        operational_context=OperationalContext(
            traffic_rps=1200,
            peak_hours=peak_hours or [],
            maintenance_windows=maintenance_windows or [],
            dependencies=[DependencyStatus(name=n, health=h) for n, h in (dependencies or [])],
        ),
    )


def make_plan(request: ReleaseRequest, now: datetime = T0) -> Plan:
    return plan_release(request, now, INSTANCES, TICK_SECONDS)


def on_metrics_loss(release: Release, policy: MetricsLossPolicy) -> Release:
    """``release`` as if planned for a service whose config sets ``on_metrics_loss``."""
    triggers = derive_triggers(release.request, TICK_SECONDS, policy)
    release.plan = release.plan.model_copy(update={"triggers": triggers})
    return release


# -- gate evidence ------------------------------------------------------------------------------


def ci_results(
    now: datetime = T0, skip: tuple[str, ...] = (), **statuses: str
) -> list[CheckEvidence]:
    """One passing CI result per kind, minus ``skip``; ``statuses`` overrides a kind's status."""
    kinds = ("staging_tests", "smoke_tests", "security_scan", "performance_benchmark")
    return [
        CheckEvidence(
            name=kind,
            status=statuses.get(kind, "pass"),
            details=f"{kind}: {statuses.get(kind, 'pass')}",
            passed=40,
            failed=0 if statuses.get(kind, "pass") == "pass" else 3,
            recorded_at=now - timedelta(hours=1),
        )
        for kind in kinds
        if kind not in skip
    ]


def good_evidence(request: ReleaseRequest, now: datetime = T0, **overrides: Any) -> GateEvidence:
    """Evidence under which every gate passes; ``overrides`` replaces fields."""
    fields: dict[str, Any] = {
        "artifact": ArtifactRecord(
            image=request.release_package.artifact.image,
            digest=request.release_package.artifact.hash or DIGEST,
            build_id=request.release_package.artifact.build_id or BUILD,
            signed=True,
            sbom_attached=True,
        ),
        "results": ci_results(now),
        "stable_version": STABLE,
        "rehearsal_ok": True,
        "metrics_answering": [
            "requests",
            "errors",
            "latency",
            *(f"kpi:{g.kpi}" for g in request.guardrails.kpis),
        ],
        "dependencies": [],
        "flags": {f.name: None for f in request.deployment_config.flags},
        "flag_kill_switch": {},
        "approvers": list(APPROVERS),
        "now": now,
    }
    fields.update(overrides)
    return GateEvidence(**fields)


def gates_for(
    request: ReleaseRequest, plan: Plan, now: datetime = T0, **overrides: Any
) -> tuple[list[Check], Artifacts]:
    return run_gates(request, plan, good_evidence(request, now, **overrides))


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.check: c for c in checks}


# -- metric windows -----------------------------------------------------------------------------


def buckets(
    requests: int, slow_share: float = 0.0, fast_s: float = 0.05, slow_s: float = 0.5
) -> dict[str, int]:
    """Cumulative ``le`` buckets: ``requests`` at ``fast_s``, a ``slow_share`` of them at
    ``slow_s`` (seconds; a bucket bound, or above 10 for the +Inf bucket)."""
    slow = round(requests * slow_share)
    fast = requests - slow
    out: dict[str, int] = {}
    for label in BUCKET_LABELS:
        le = float(label)
        out[label] = (fast if fast_s <= le else 0) + (slow if slow_s <= le else 0)
    out["+Inf"] = requests
    return out


def cohort(
    requests: int,
    error_pct: float = 0.1,
    slow_share: float = 0.0,
    kpis: dict[str, float] | None = None,
) -> CohortSample:
    return CohortSample(
        requests=requests,
        errors=round(requests * error_pct / 100),
        latency_buckets=buckets(requests, slow_share) if requests else {},
        kpis=kpis or {},
    )


def window(
    end: datetime,
    canary: CohortSample,
    baseline: CohortSample | None = None,
    minutes: float = 1.0,
) -> WindowSample:
    return WindowSample(
        start=end - timedelta(minutes=minutes),
        end=end,
        baseline=baseline if baseline is not None else cohort(20_000, 0.1),
        canary=canary,
    )


def healthy_window(start: datetime, end: datetime) -> WindowSample:
    return WindowSample(
        start=start, end=end, baseline=cohort(20_000, 0.1), canary=cohort(5_000, 0.1)
    )


def bad_window(start: datetime, end: datetime) -> WindowSample:
    """Errors at 5 %: error_rate<1 % and availability>=99.5 % both break."""
    return WindowSample(
        start=start, end=end, baseline=cohort(20_000, 0.1), canary=cohort(5_000, 5.0)
    )


OK_VERIFICATION = VerificationResult(
    ok=True, details="3 synthetic transactions pass", smoke_passed=3, smoke_failed=0
)
FAILED_VERIFICATION = VerificationResult(
    ok=False, details="synthetic transactions failing: checkout 40%", smoke_passed=1,
    smoke_failed=2,
)  # fmt: skip


# -- releases -------------------------------------------------------------------------------


def new_release(
    request: ReleaseRequest, now: datetime = T0, requested_by: str = REQUESTER
) -> Release:
    return Release.create("rel-1", request, make_plan(request, now), APPROVERS, requested_by, now)


def gated_release(
    request: ReleaseRequest,
    now: datetime = T0,
    auto_approve: bool | None = None,
    **overrides: Any,
) -> Release:
    """Created, gates recorded (all passing unless ``overrides`` say otherwise)."""
    release = new_release(request, now)
    checks, artifacts = run_gates(request, release.plan, good_evidence(request, now, **overrides))
    auto = (
        auto_approve
        if auto_approve is not None
        else request.release_package.risk == "low" and all(c.status == "pass" for c in checks)
    )
    release.record_gates(checks, artifacts, overrides.get("stable_version", STABLE), auto, now)
    return release


def started_release(
    request: ReleaseRequest, now: datetime = T0, approver: str = "alice"
) -> Release:
    """Gated, approved when needed, and rolling out from step 0."""
    release = gated_release(request, now)
    if release.status == "awaiting_approval":
        release.approve(approver, now)
    release.begin_if_due(now)
    assert release.status == "rolling_out", release.status
    return release


WindowFn = Callable[[datetime, datetime], WindowSample]


def tick(
    release: Release,
    now: datetime,
    window_fn: WindowFn = healthy_window,
    verification: VerificationResult = OK_VERIFICATION,
) -> None:
    """One reconcile tick, the way ``bot.service._step`` drives the aggregate."""
    match release.next_work(now):
        case "begin":
            release.begin_if_due(now)
        case "release_hold":
            release.release_hold(now)
        case "verify":
            release.record_verification(verification, now)
        case "observe":
            assert release.window_cursor is not None
            start = release.window_cursor
            if now > start:
                release.observe(window_fn(start, now), now)
        case "confirm_rollback":
            release.confirm_rollback(True, now)


def run(
    release: Release,
    now: datetime,
    window_fn: WindowFn = healthy_window,
    approver: str = "alice",
    max_minutes: int = 600,
    stop: Callable[[Release], bool] | None = None,
) -> datetime:
    """Tick once a minute until the release ends (approving manual gates with ``approver``,
    when given) or ``stop`` says so; returns the time it stopped."""
    for _ in range(max_minutes):
        if not release.is_active or (stop is not None and stop(release)):
            return now
        if release.status == "awaiting_approval":
            if not approver:
                return now
            release.approve(approver, now)
        now += MINUTE
        tick(release, now, window_fn)
    return now
