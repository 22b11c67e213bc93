"""Quality gates: one check per gate of the brief, each pass, fail or warning with details.

The service gathers the evidence through the ports; this module only judges it. Any ``fail``
is critical: the release stops with nothing deployed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain.base import Model
from bot.domain.contract import Artifacts, Check, CheckStatus
from bot.domain.flags import FlagState
from bot.domain.observations import ArtifactRecord, CheckEvidence, DependencyProbe
from bot.domain.plan import EXTRA_CHECK_LABELS, Plan
from bot.domain.planner import in_ranges
from bot.domain.request import DependencyHealth, ReleaseRequest

CORE_METRICS = ("requests", "errors", "latency")


class GateEvidence(Model):
    artifact: ArtifactRecord | None
    results: list[CheckEvidence]
    stable_version: str | None
    rehearsal_ok: bool | None  # None: nothing to rehearse against
    rehearsal: str = "not rehearsed"  # what was rehearsed, where, through what, and when
    router_error: str | None = None  # the traffic router did not answer the gates
    artifact_missing: str | None = None  # why no artifact record, and what to upload
    unsigned_hint: str = ""  # what to upload when no signature verified
    artifact_cites: str = ""  # the evidence files that showed the artifact
    metrics_answering: list[str]
    dependencies: list[DependencyProbe]
    flags: dict[str, FlagState | None]
    flag_kill_switch: dict[str, bool]  # from the service's flag settings
    approvers: list[str]
    now: datetime
    config_file: str = "data/services.toml"  # the config read, named where approvers are set


def _check(name: str, status: CheckStatus, details: str) -> Check:
    return Check(check=name, status=status, details=details)


def run_gates(
    request: ReleaseRequest, plan: Plan, ev: GateEvidence
) -> tuple[list[Check], Artifacts]:
    checks = [
        _artifacts(request, ev),
        _evidence(ev.results, "staging_tests", "tests passing in staging"),
        _evidence(ev.results, "smoke_tests", "smoke tests"),
        _evidence(ev.results, "security_scan", "security scans"),
        _evidence(ev.results, "performance_benchmark", "performance benchmarks"),
        *[_evidence(ev.results, kind, EXTRA_CHECK_LABELS[kind]) for kind in plan.extra_checks],
        _rollback_plan(request, ev),
        _monitoring(request, ev),
        _flags(request, ev),
        _change_approval(request, ev),
        _dependencies(request, ev.dependencies),
        _window(request, plan, ev.now),
        _rollout_plan(plan),
    ]
    record = ev.artifact
    pkg = request.release_package
    artifacts = Artifacts(
        build_id=pkg.artifact.build_id or (record.build_id if record else ""),
        image=pkg.artifact.image,
        hash=record.digest if record else (pkg.artifact.hash or ""),
        signed=record.signed if record else False,
        sbom_attached=record.sbom_attached if record else False,
    )
    return checks, artifacts


def _artifacts(request: ReleaseRequest, ev: GateEvidence) -> Check:
    name = "build_artifacts"
    art = request.release_package.artifact
    record = ev.artifact
    if record is None:
        why = ev.artifact_missing or f"{art.image} is not in the registry: nothing to deploy"
        return _check(name, "fail", why)
    if art.hash and art.hash != record.digest:
        return _check(
            name,
            "fail",
            f"digest mismatch: the request says {art.hash}, the registry has {record.digest}",
        )
    if art.build_id and art.build_id != record.build_id:
        return _check(
            name,
            "fail",
            f"build mismatch: requested {art.build_id}, registry has {record.build_id}",
        )
    if not record.signed:
        return _check(name, "fail", f"{art.image} is not signed" + ev.unsigned_hint)
    build = f" build {record.build_id}" if record.build_id else ""
    summary = f"{art.image} {record.digest[:19]}…{build}, signed"
    if not record.sbom_attached:
        status: CheckStatus = (
            "fail" if request.release_package.risk in ("high", "critical") else "warning"
        )
        return _check(name, status, summary + ", no SBOM attached" + _cited(ev))
    return _check(name, "pass", summary + ", SBOM attached" + _cited(ev))


def _cited(ev: GateEvidence) -> str:
    return f" ({ev.artifact_cites})" if ev.artifact_cites else ""


def _evidence(results: Sequence[CheckEvidence], kind: str, label: str) -> Check:
    found = [r for r in results if r.name == kind]
    if not found:
        return _check(kind, "fail", f"no {label} recorded for this version")
    latest = max(found, key=lambda r: r.recorded_at)
    return _check(kind, latest.status, latest.details)


def _rollback_plan(request: ReleaseRequest, ev: GateEvidence) -> Check:
    name = "rollback_plan"
    strategy = request.deployment_config.strategy
    if ev.router_error is not None:
        return _check(name, "fail", f"the traffic router failed: {ev.router_error}")
    if ev.stable_version is None:
        status: CheckStatus = (
            "fail" if request.release_package.risk in ("high", "critical") else "warning"
        )
        return _check(
            name, status, "no previous version is running: a rollback can only scale to zero"
        )
    if ev.stable_version == request.release_package.version:
        return _check(name, "fail", f"{ev.stable_version} is already the stable version")
    if ev.rehearsal_ok is False:
        return _check(
            name,
            "fail",
            f"rollback rehearsal failed ({ev.rehearsal}): {ev.stable_version} did not take "
            "all traffic back",
        )
    how = {
        "feature_flag": "kill switch turns the flag off",
        "blue_green": "switch back to blue, kept for the rollback window",
        "rolling": "batches replaced back",
    }.get(strategy, "traffic back to the stable version")
    return _check(
        name, "pass", f"previous version {ev.stable_version} available; {ev.rehearsal}; {how}"
    )


def _monitoring(request: ReleaseRequest, ev: GateEvidence) -> Check:
    name = "monitoring"
    answering = set(ev.metrics_answering)
    missing_core = [m for m in CORE_METRICS if m not in answering]
    if missing_core:
        return _check(
            name,
            "fail",
            f"metrics do not answer: {', '.join(missing_core)}; the canary cannot be judged",
        )
    kpis = [f"kpi:{g.kpi}" for g in request.guardrails.kpis]
    missing_kpis = [k for k in kpis if k not in answering]
    if missing_kpis:
        return _check(name, "warning", f"KPI metrics missing: {', '.join(missing_kpis)}")
    n = len(request.guardrails.all())
    return _check(
        name,
        "pass",
        f"requests, errors, latency{''.join(', ' + k for k in kpis)} answer; {n} guardrails set",
    )


def _flags(request: ReleaseRequest, ev: GateEvidence) -> Check:
    name = "feature_flags"
    specs = request.deployment_config.flags
    if not specs:
        return _check(name, "pass", "no feature flags in this release")
    problems, notes = [], []
    for spec in specs:
        state = ev.flags.get(spec.name)
        kill = state.kill_switch if state is not None else ev.flag_kill_switch.get(spec.name, True)
        if not kill:
            problems.append(f"{spec.name} has no kill switch")
        elif state is None:
            notes.append(f"{spec.name} will be created off, with a kill switch")
        else:
            notes.append(f"{spec.name} at {state.effective_percentage:g}%, kill switch ready")
    if problems:
        return _check(name, "fail", "; ".join(problems))
    return _check(name, "pass", "; ".join(notes))


def _change_approval(request: ReleaseRequest, ev: GateEvidence) -> Check:
    name = "change_approval"
    ticket = request.release_package.change_ticket
    risk = request.release_package.risk
    if not ev.approvers:
        return _check(
            name, "fail", f"no approvers configured for {request.service} in {ev.config_file}"
        )
    who = ", ".join(ev.approvers)
    if ticket is None:
        status: CheckStatus = "fail" if risk in ("high", "critical") else "warning"
        return _check(name, status, f"no change ticket (add ticket=CHG-…); approvers: {who}")
    return _check(name, "pass", f"change ticket {ticket}; approvers: {who}")


_SEVERITY: dict[DependencyHealth, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def _dependencies(request: ReleaseRequest, probes: Sequence[DependencyProbe]) -> Check:
    """The worse of what the request reports and what the live probe sees counts: a human
    saying a dependency is down blocks even if the probe still answers."""
    name = "dependency_health"
    reported = {d.name: d.health for d in request.operational_context.dependencies}
    live = {p.name: p.health for p in probes}
    health: dict[str, DependencyHealth] = {}
    for dep in [*live, *(n for n in reported if n not in live)]:
        seen = [h for h in (live.get(dep), reported.get(dep)) if h is not None]
        health[dep] = max(seen, key=_SEVERITY.__getitem__)
    if not health:
        return _check(name, "pass", "no dependencies declared")
    unhealthy = [n for n, h in health.items() if h == "unhealthy"]
    degraded = [n for n, h in health.items() if h == "degraded"]

    def source(dep: str) -> str:
        if dep in reported and (dep not in live or reported[dep] != live[dep]):
            return f" (reported{'; probe: ' + live[dep] if dep in live else ''})"
        return ""

    listing = ", ".join(f"{n} {h}{source(n)}" for n, h in health.items())
    if unhealthy:
        return _check(name, "fail", f"unhealthy: {', '.join(unhealthy)} ({listing})")
    if degraded:
        return _check(name, "warning", f"degraded: {', '.join(degraded)} ({listing})")
    return _check(name, "pass", listing)


def _window(request: ReleaseRequest, plan: Plan, now: datetime) -> Check:
    name = "deployment_window"
    ctx = request.operational_context
    parts = []
    status: CheckStatus = "pass"
    if plan.start > now:
        parts.append(f"outside the maintenance window: start delayed to {plan.start:%a %H:%M} UTC")
    elif ctx.maintenance_windows:
        parts.append("inside the maintenance window")
    if ctx.peak_hours and in_ranges(ctx.peak_hours, now):
        if plan.hold_in_peak_hours:
            status = "warning"
            parts.append("peak hours now: prod steps wait until they end")
        else:
            parts.append(f"peak hours now; {plan.risk} risk may proceed")
    return _check(name, status, "; ".join(parts) or "no maintenance window or peak hours in force")


def _rollout_plan(plan: Plan) -> Check:
    name = "rollout_plan"
    prod = plan.prod_steps()
    if not prod:
        return _check(name, "pass", "no prod environment in this release")
    traffic = [s for s in prod if s.kind in ("traffic", "batch", "flag")]
    if (
        plan.risk in ("high", "critical")
        and traffic
        and (traffic[0].percentage > 10 or len(traffic) < 3)
    ):
        return _check(
            name,
            "fail",
            f"{plan.risk}-risk change rolled out in {len(traffic)} step(s) starting at "
            f"{traffic[0].percentage:g}%: use at least 3 steps starting at 10% or less",
        )
    return _check(name, "pass", f"{len(prod)} prod steps, {plan.velocity} velocity")
