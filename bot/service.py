"""Service functions: the one place where commands and the reconcile tick meet the ports.

Slack handlers, CLI commands and scheduler jobs all call these. Each command and each tick
of a release is one transaction: load, decide (pure domain), save with its events.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bot.agent import flows
from bot.domain import access
from bot.domain.base import Model
from bot.domain.config import Config, ServiceConfig
from bot.domain.contract import Artifacts, Check, InsufficientContext, ReleaseReport
from bot.domain.gates import GateEvidence, run_gates
from bot.domain.histogram import aggregate
from bot.domain.locks import EnvLock, ScopeError, lock_refusal, parse_scope, scopes_for
from bot.domain.observations import ArtifactRecord, Target, WindowSample, latest_by_name
from bot.domain.plan import Plan
from bot.domain.release import ENGINE, CommandRejected, Release, VerificationResult
from bot.domain.report import ReportContext, build_report
from bot.domain.request import EnvName, ReleaseRequest
from bot.ports.chat import AbstractChat
from bot.ports.checks import AbstractChecks
from bot.ports.ci import AbstractCI
from bot.ports.clock import AbstractClock
from bot.ports.flags import AbstractFlags
from bot.ports.llm import AbstractLLM, LlmCall
from bot.ports.locks import AbstractLocks, LockError
from bot.ports.metrics import AbstractMetrics, MetricsUnavailable
from bot.ports.planner import AbstractPlanner
from bot.ports.series import AbstractSeries
from bot.ports.store import AbstractReleaseStore, ReleaseNotFound, StoredEvent
from bot.ports.traffic import AbstractTrafficRouter

# Synthetic runs are few (a couple of hundred): 95 % keeps a healthy 0.3 % error rate from
# failing by chance, while a broken path (most runs failing) still fails.
SYNTHETIC_MIN_SUCCESS = 0.95


@dataclass
class Services:
    """The ports the service functions work through; ``bot.bootstrap`` fills them."""

    config: Config
    store: AbstractReleaseStore
    clock: AbstractClock
    metrics: AbstractMetrics
    traffic: AbstractTrafficRouter
    flags: AbstractFlags
    checks: AbstractChecks
    chat: AbstractChat
    planner: AbstractPlanner
    locks: AbstractLocks
    series: AbstractSeries  # each judged window, for the thread's charts
    llm: AbstractLLM  # the agent's model; NoLLM: the rules do every agent step
    tick_seconds: float = 10.0
    ci: AbstractCI | None = None  # a CI that builds on request (the embedded environment's)
    delivery_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


# -- commands ---------------------------------------------------------------------------------


def release_id_for(request: ReleaseRequest, now: datetime) -> str:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(f"{request.service}:{request.release_package.version}:{stamp}".encode())
    return f"rel-{request.service}-{request.release_package.version}-{digest.hexdigest()[:6]}"


def start_release(
    services: Services, text: str, requested_by: str, channel: str | None = None
) -> Release | InsufficientContext:
    """Parse a /release line (or plain words, through the agent), plan it and store it; the
    first tick runs the gates. ``channel`` is where it was asked for: the chat keeps the
    release's thread there."""
    spent: list[LlmCall] = []  # every LLM call, recorded even when no release comes of it
    release: Release | InsufficientContext | None = None
    try:
        release = _new_release(services, text, requested_by, channel, spent)
    finally:
        owner = release.id if isinstance(release, Release) else None
        services.store.record_llm_calls(owner, spent)
    if isinstance(release, InsufficientContext):
        return release
    reconcile_one(services, release.id)
    deliver(services)
    return services.store.get(release.id)


def _new_release(
    services: Services,
    text: str,
    requested_by: str,
    channel: str | None,
    spent: list[LlmCall],
) -> Release | InsufficientContext:
    parsed, reading = flows.read_request(services, text, spent)
    if isinstance(parsed, InsufficientContext):
        return parsed
    request = parsed
    if why := access.check("start", requested_by, request.service, channel, services.config):
        raise CommandRejected(why)
    now = services.clock.now()
    planned, approvers = _plan(services, request, now, spent)
    refusals = _refusals(services, planned.request, planned.plan)
    if refusals:
        raise CommandRejected(refusals[0])
    release = Release.create(
        release_id_for(request, now), planned.request, planned.plan, approvers, requested_by, now
    )
    release.channel = channel
    release.read_by_agent = flows.Reading.by_agent(reading)
    release.narration = planned.narration
    flows.add_usage(release.narration, spent)
    for action, details in (reading.audit if reading else []) + planned.audit:
        release.record_agent(action, details, now)
    if services.ci is not None:
        services.ci.publish(request.service, release.version, request.release_package.artifact, now)
    services.store.add(release)
    return release


def _plan(
    services: Services, request: ReleaseRequest, now: datetime, spent: list[LlmCall]
) -> tuple[flows.Planned, list[str]]:
    """The plan (the agent's when valid, else the rules'), and the release's effective
    approvers (for its highest environment)."""
    svc = services.config.for_service(request.service)
    planned = flows.plan(services, request, now, svc.instances, spent)
    return planned, svc.approvers_for(e.name for e in planned.plan.environments)


def _refusals(services: Services, request: ReleaseRequest, plan: Plan) -> list[str]:
    """Why a release could not start now: another one active, a locked environment."""
    out = []
    busy = services.store.active_for_service(request.service)
    if busy:
        current = services.store.get(busy[0])
        out.append(
            f"{request.service} already has an active release: {current.id} "
            f"({current.version}, {current.status.replace('_', ' ')}); wait for it or roll it back"
        )
    for scope in scopes_for(request.service, [e.name for e in plan.environments]):
        lock = services.locks.get(scope)
        if lock is not None:
            out.append(lock_refusal(request.service, lock))
    return out


Change = Callable[[Release, datetime], None]


def _change(services: Services, release_id: str, change: Change) -> Release:
    """One command on one release: load, decide, save with its events, converge, deliver."""
    with services.store.unit_of_work():
        release = services.store.get(release_id)
        change(release, services.clock.now())
        services.store.save(release)
    converge(services, release)
    deliver(services)
    return release


def _command(
    services: Services, release_id: str, action: access.Action, user: str, change: Change
) -> Release:
    """A user's command, if the access policy lets them; a refusal is audited, then raised."""
    refusal: list[str] = []

    def decide(release: Release, now: datetime) -> None:
        why = access.check(action, user, release, None, services.config)
        if why is None:
            change(release, now)
        else:
            refusal.append(why)
            release.record_refused(user, action, why, now)

    release = _change(services, release_id, decide)
    if refusal:
        raise CommandRejected(refusal[0])
    return release


def approve(services: Services, release_id: str, user: str) -> Release:
    return _command(services, release_id, "approve", user, lambda r, now: r.approve(user, now))


def reject(services: Services, release_id: str, user: str, reason: str) -> Release:
    return _command(
        services, release_id, "reject", user, lambda r, now: r.reject(user, reason, now)
    )


def rollback(services: Services, release_id: str, user: str, reason: str) -> Release:
    return _command(
        services, release_id, "rollback", user, lambda r, now: r.request_rollback(user, reason, now)
    )


def resume(services: Services, release_id: str, user: str) -> Release:
    return _command(services, release_id, "resume", user, lambda r, now: r.resume(user, now))


def pause(services: Services, release_id: str, user: str, reason: str) -> Release:
    """Hold the rollout where it stands until someone resumes or rolls back."""
    return _command(services, release_id, "pause", user, lambda r, now: r.pause(user, reason, now))


def promote_now(services: Services, release_id: str, user: str) -> Release:
    """End the current step's bake early; refused past any failed check (see the domain)."""
    return _command(services, release_id, "promote", user, lambda r, now: r.promote_now(user, now))


def refused(services: Services, release_id: str, user: str, action: str, why: str) -> Release:
    """Audit, on the release, an attempt the access policy refused (a ``refused`` event).
    The command functions above already do this for their own refusals."""
    return _change(services, release_id, lambda r, now: r.record_refused(user, action, why, now))


# -- environment locks --------------------------------------------------------------------------


def _scope(services: Services, action: access.Action, scope: str, user: str) -> str:
    try:
        normal = parse_scope(scope)
    except ScopeError as exc:
        raise CommandRejected(str(exc)) from exc
    if why := access.check(action, user, normal, None, services.config):
        raise CommandRejected(why)
    return normal


def lock_env(services: Services, scope: str, user: str, reason: str) -> EnvLock:
    """Lock ``prod`` or ``payments-api/prod``: releases reaching it are refused until unlocked."""
    normal = _scope(services, "lock", scope, user)
    try:
        return services.locks.lock(normal, user, reason, services.clock.now())
    except LockError as exc:
        raise CommandRejected(str(exc)) from exc


def unlock_env(services: Services, scope: str, user: str) -> EnvLock:
    """Remove a lock (returned); unlocking a scope that is not locked says so."""
    normal = _scope(services, "unlock", scope, user)
    try:
        return services.locks.unlock(normal, user, services.clock.now())
    except LockError as exc:
        raise CommandRejected(str(exc)) from exc


def _lock_after_automatic_rollback(services: Services, release: Release, now: datetime) -> None:
    """An automatic rollback locks ``service/env`` of the step that broke, once: the lock
    outlives the release until someone unlocks it, and the thread says so."""
    rb, step = release.rollback, release.current_step
    if rb is None or rb.triggered_by != "automated" or step is None or release.locked_scope:
        return
    scope = f"{release.request.service}/{step.env}"
    existing = services.locks.get(scope)
    lock = existing or services.locks.lock(
        scope, ENGINE, f"automatic rollback of {release.id}: {rb.reason}", now
    )
    release.record_lock(lock, existing is None, now)


# -- dry run ------------------------------------------------------------------------------------

Outcome = Literal["auto_approved", "needs_approval", "blocked", "refused"]
NOT_REHEARSED = "rollback rehearsal not run in a dry run"


class DryRun(Model):
    """What ``/release LINE`` would do, found without storing, deploying, publishing a
    build or rehearsing a rollback."""

    request: ReleaseRequest
    plan: Plan
    approvers: list[str]
    checks: list[Check]
    artifacts: Artifacts
    stable_version: str | None
    outcome: Outcome
    refusals: list[str]  # why it would not even start: an active release, a lock
    blockers: list[str]  # failing checks: it would stop with nothing deployed
    notes: list[str]

    def lines(self) -> list[str]:
        pkg = self.request.release_package
        head = {
            "auto_approved": "would start at once: low risk and every check passes",
            "needs_approval": f"would wait for approval from {', '.join(self.approvers)}",
            "blocked": "would stop at the gates with nothing deployed",
            "refused": "would be refused",
        }[self.outcome]
        out = [f"dry run of {self.request.service} {pkg.version} ({pkg.risk} risk): {head}"]
        out += [f"  refused: {r}" for r in self.refusals]
        out += [f"  blocker: {b}" for b in self.blockers]
        out.append(f"  plan: {self.plan.strategy}, {len(self.plan.steps)} steps")
        out += [f"    {s.index + 1}. {s.description}" for s in self.plan.steps]
        out += [f"  {c.check}: {c.status}: {c.details}" for c in self.checks]
        out += [f"  note: {n}" for n in self.notes]
        return out


def dry_run(services: Services, text: str) -> DryRun | InsufficientContext:
    """Parse, plan and judge the gates of a /release line; store, deploy and publish nothing."""
    spent: list[LlmCall] = []
    try:
        return _dry_run(services, text, spent)
    finally:
        services.store.record_llm_calls(None, spent)  # no release: counted, not attributed


def _dry_run(services: Services, text: str, spent: list[LlmCall]) -> DryRun | InsufficientContext:
    parsed, reading = flows.read_request(services, text, spent)
    if isinstance(parsed, InsufficientContext):
        return parsed
    now = services.clock.now()
    planned, approvers = _plan(services, parsed, now, spent)
    request, plan = planned.request, planned.plan
    evidence = _gate_evidence(services, request, plan, approvers, now, dry=True)
    checks, artifacts = run_gates(request, plan, evidence)
    checks = [
        c.model_copy(update={"details": c.details.replace("rehearsed in staging", NOT_REHEARSED)})
        if c.check == "rollback_plan"
        else c
        for c in checks
    ]
    refusals = _refusals(services, request, plan)
    blockers = [f"{c.check}: {c.details}" for c in checks if c.status == "fail"]
    auto = auto_approves(plan, checks, flows.Reading.by_agent(reading))
    outcome: Outcome = (
        "refused"
        if refusals
        else "blocked"
        if blockers
        else "auto_approved"
        if auto
        else "needs_approval"
    )
    notes = [f"{NOT_REHEARSED}: a real start rehearses it in staging first"]
    notes += [details for _, details in planned.audit]
    if services.ci is not None:
        notes.append("build evidence is what the embedded CI would publish at the start")
    return DryRun(
        request=request,
        plan=plan,
        approvers=approvers,
        checks=checks,
        artifacts=artifacts,
        stable_version=evidence.stable_version,
        outcome=outcome,
        refusals=refusals,
        blockers=blockers,
        notes=notes,
    )


# -- the reconcile tick -----------------------------------------------------------------------


def reconcile(services: Services) -> list[str]:
    """Move every active release one step. Safe to run any number of times."""
    ids = services.store.active_ids()
    for release_id in ids:
        reconcile_one(services, release_id)
    deliver(services)
    return ids


def narrate(services: Services) -> int:
    """The agent explains the stage boundaries, anomalies and ends the tick recorded. A job
    of its own, on its own thread in a real process, so no tick (and no rollback) ever waits
    for the LLM. Without a model (say, restarted without the key) the due moments still
    clear, as audited fallbacks."""
    done = flows.narrate(services)
    if done:
        deliver(services)
    return done


def reconcile_and_narrate(services: Services) -> list[str]:
    """One reconcile, then the narration, in turn: for virtual time, the CLI and tests,
    where nothing runs in parallel and the order must be the same on every run."""
    ids = reconcile(services)
    narrate(services)
    return ids


def reconcile_one(services: Services, release_id: str) -> Release:
    store = services.store
    with store.unit_of_work():
        release = store.get(release_id)
        if not release.is_active:
            return release
        now = services.clock.now()
        converge(services, release)  # re-apply after a crash between save and apply
        _step(services, release, now)
        _lock_after_automatic_rollback(services, release, now)
        store.save(release)
    converge(services, release)
    return release


def _step(services: Services, release: Release, now: datetime) -> None:
    match release.next_work(now):
        case "gates":
            _run_gates(services, release, now)
        case "begin":
            release.begin_if_due(now)
        case "release_hold":
            release.release_hold(now)
        case "verify":
            release.record_verification(_verify(services, release, now), now)
        case "observe":
            _observe(services, release, now)
        case "confirm_rollback":
            release.confirm_rollback(_restored(services, release), now)


def _targets(release: Release, env: EnvName, regions: list[str]) -> list[Target]:
    return [Target(service=release.request.service, env=env, region=r) for r in regions]


def _observe(services: Services, release: Release, now: datetime) -> None:
    step = release.current_step
    assert step is not None and release.window_cursor is not None
    start = release.window_cursor
    if now <= start:
        return
    targets = _targets(release, step.env, step.regions)
    try:
        samples = [services.metrics.window(t, start, now) for t in targets]
        logs = [services.metrics.logs(t, start, now) for t in targets]
        traces = [services.metrics.traces(t, start, now) for t in targets]
    except MetricsUnavailable as exc:
        release.record_metrics_error(str(exc) or "no data", now)
        return
    release.record_telemetry(logs, traces)
    window = WindowSample(
        start=start,
        end=now,
        baseline=aggregate([s.baseline for s in samples]),
        canary=aggregate([s.canary for s in samples]),
    )
    release.observe(window, now)
    services.series.add(release.id, step.index, window)  # same unit of work as the state


def _verify(services: Services, release: Release, now: datetime) -> VerificationResult:
    step = release.current_step
    assert step is not None
    svc = services.config.for_service(release.request.service)
    transactions = svc.key_transactions or ["health"]
    budget = min(g.value for g in release.request.guardrails.latency)
    results = []
    for target in _targets(release, step.env, step.regions):
        results += services.metrics.synthetic(target, transactions, now)
    failing = [
        r for r in results if r.success_rate < SYNTHETIC_MIN_SUCCESS or r.latency_ms > budget
    ]
    smoke = [
        e
        for e in services.checks.results(release.request.service, release.version)
        if e.name == "smoke_tests"
    ]
    smoke_failed = sum(e.failed for e in smoke)
    ok = not failing and smoke_failed == 0
    where = f"{step.env} {','.join(step.regions)}"
    if ok:
        details = (
            f"{len(results)} synthetic transactions pass in {where} "
            f"(≥{SYNTHETIC_MIN_SUCCESS:.0%} success, ≤{budget:g}ms)"
        )
    else:
        worst = ", ".join(f"{r.name} {r.success_rate:.1%} {r.latency_ms:.0f}ms" for r in failing)
        details = f"synthetic transactions failing in {where}: {worst}" + (
            f"; {smoke_failed} smoke tests failed" if smoke_failed else ""
        )
    return VerificationResult(
        ok=ok,
        details=details,
        smoke_passed=len(results) - len(failing),
        smoke_failed=len(failing),
        transactions=[
            {"name": r.name, "success_rate": r.success_rate, "latency_ms": r.latency_ms}
            for r in results
        ],
    )


def _restored(services: Services, release: Release) -> bool:
    for target, desired in release.desired_traffic().items():
        actual = services.traffic.state(target)
        if actual.new_weight != desired.new_weight or actual.mirror != desired.mirror:
            return False
    for flag in release.request.deployment_config.flags:
        state = services.flags.get(flag.name)
        if state is not None and state.effective_percentage > 0:
            return False
    return True


def _run_gates(services: Services, release: Release, now: datetime) -> None:
    evidence = _gate_evidence(services, release.request, release.plan, release.approvers, now)
    checks, artifacts = run_gates(release.request, release.plan, evidence)
    auto = auto_approves(release.plan, checks, release.read_by_agent)
    release.record_gates(checks, artifacts, evidence.stable_version, auto, now)


def auto_approves(plan: Plan, checks: list[Check], read_by_agent: bool) -> bool:
    """Low risk with every check passing starts without a person, unless the agent read the
    request from plain words: then a person confirms what it read."""
    return plan.risk == "low" and all(c.status == "pass" for c in checks) and not read_by_agent


def _gate_evidence(
    services: Services,
    request: ReleaseRequest,
    plan: Plan,
    approvers: list[str],
    now: datetime,
    dry: bool = False,
) -> GateEvidence:
    """What the gates judge, gathered through the ports. ``dry``: change nothing, so no
    rollback rehearsal (it deploys to staging) and no build published (the embedded CI's
    evidence is computed in memory)."""
    svc = services.config.for_service(request.service)
    version = request.release_package.version
    prod = [e for e in plan.environments if e.name == "prod"] or plan.environments
    first = Target(service=request.service, env=prod[0].name, region=prod[0].region)
    stable = services.traffic.state(first).stable_version
    rehearsal_env = next((e for e in plan.environments if e.name == "staging"), prod[0])
    rehearsal = (
        services.traffic.rehearse_rollback(
            Target(service=request.service, env=rehearsal_env.name, region=rehearsal_env.region),
            version,
        )
        if stable is not None and not dry
        else None
    )
    art = request.release_package.artifact
    artifact: ArtifactRecord | None
    if dry and services.ci is not None:  # what the build would publish, recorded nowhere
        build = services.ci.build(request.service, version, art, now)
        artifact, results = build.artifact, latest_by_name(build.evidence)
    else:
        artifact = services.checks.artifact(art.image)
        results = services.checks.results(request.service, version)
    dep_names = [d.name for d in svc.dependencies] + [
        d.name
        for d in request.operational_context.dependencies
        if d.name not in {x.name for x in svc.dependencies}
    ]
    return GateEvidence(
        artifact=artifact,
        results=results,
        stable_version=stable,
        rehearsal_ok=rehearsal,
        metrics_answering=services.metrics.probe(request.service),
        dependencies=services.metrics.dependencies(request.service, dep_names),
        flags={f.name: services.flags.get(f.name) for f in request.deployment_config.flags},
        flag_kill_switch={f.name: f.kill_switch for f in svc.flag_settings},
        approvers=approvers,
        now=now,
    )


def converge(services: Services, release: Release) -> None:
    """Make the router and the flags match the release's persisted state (idempotent)."""
    for target, desired in release.desired_traffic().items():
        if services.traffic.state(target) != desired:
            services.traffic.apply(target, desired)
    existing = {f.name: services.flags.get(f.name) for f in release.request.deployment_config.flags}
    svc = services.config.for_service(release.request.service)
    settings = {f.name: f for f in svc.flag_settings}
    for flag in release.desired_flags(existing):
        cfg = settings.get(flag.name)
        if existing.get(flag.name) is None and cfg is not None:
            flag = flag.model_copy(
                update={"type": cfg.type, "kill_switch": cfg.kill_switch, "rules": cfg.rules,
                        "segments": cfg.segments, "overrides": cfg.overrides}
            )  # fmt: skip
        services.flags.put(flag)


# -- the outbox: chat updates ------------------------------------------------------------------


def deliver(services: Services) -> int:
    """Post undelivered events to the chat, then mark them; at-least-once after a crash."""
    with services.delivery_lock:  # the tick and a Slack handler may deliver at once
        events = services.store.undelivered()
        by_release: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_release.setdefault(event.release_id, []).append(event)
        for release_id, batch in by_release.items():
            services.chat.post(services.store.get(release_id), batch)
            services.store.mark_delivered([e.id for e in batch], services.clock.now())
        return len(events)


# -- reports ------------------------------------------------------------------------------------


def report(services: Services, release_id: str) -> ReleaseReport:
    release = services.store.get(release_id)
    events = services.store.events(release_id)
    svc: ServiceConfig = services.config.for_service(release.request.service)
    now = services.clock.now()
    dep_names = [d.name for d in svc.dependencies] + [
        d.name for d in release.request.operational_context.dependencies
    ]
    ctx = ReportContext(
        service_config=svc,
        flags={f.name: services.flags.get(f.name) for f in release.request.deployment_config.flags},
        dependencies=services.metrics.dependencies(release.request.service, dep_names),
        evidence=services.checks.results(release.request.service, release.version),
        notified=services.store.delivered_count(release_id) > 0,
        now=now,
    )
    return build_report(release, events, ctx)


def find(services: Services, release_id: str) -> Release:
    try:
        return services.store.get(release_id)
    except ReleaseNotFound:
        matches = [
            r["id"]
            for r in services.store.listing(limit=1000)
            if str(r["id"]).startswith(release_id)
        ]
        if len(matches) == 1:
            return services.store.get(str(matches[0]))
        raise
