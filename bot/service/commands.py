"""Commands: starting a release, and what people do to one (approve, reject, pause, resume,
promote, roll back, report a problem; extend a held step's bake or promote it on an override) or to an environment (lock, unlock). Each is one transaction: load, let
the access policy and the aggregate decide, save with its events, converge, deliver."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

from bot.agent import flows
from bot.domain import access
from bot.domain.contract import InsufficientContext
from bot.domain.locks import EnvLock, ScopeError, lock_refusal, parse_scope, scopes_for
from bot.domain.plan import Plan
from bot.domain.release import CommandRejected, Release
from bot.domain.request import ReleaseRequest
from bot.domain.verdict_time import MeasuredTraffic, Measurement
from bot.parsing import named_service
from bot.ports.llm import LlmCall
from bot.ports.locks import LockError
from bot.ports.metrics import TRAFFIC_MINUTES, MetricsUnavailable
from bot.ports.store import AlreadyActive, ReleaseNotFound
from bot.service.outbox import deliver
from bot.service.services import Services
from bot.service.tick import converge_saved, reconcile_one


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
    parsed, reading = flows.read_request(services.agent(), text, spent)
    refuse_unreleasable(services, text, parsed)
    if isinstance(parsed, InsufficientContext):
        return parsed
    request = parsed
    if why := access.check("start", requested_by, request.service, channel, services.config):
        raise CommandRejected(why)
    now = services.clock.now()
    rps = request.operational_context.traffic_rps
    if rps is None or active_refusal(services, request.service) is not None:
        return _planned_release(services, request, requested_by, channel, spent, reading, now)
    # A simulated fleet serves the line's traffic=, split over its regions, in the history
    # the plan measures too; never under a running release, and a line refused leaves the
    # load it found.
    replaced = services.metrics.set_load(
        request.service, rps / max(1, len(request.deployment_config.regions))
    )
    try:
        return _planned_release(services, request, requested_by, channel, spent, reading, now)
    except Exception:  # refused, or failed: no release serves the line's traffic=
        services.metrics.set_load(request.service, replaced)
        raise


def _planned_release(
    services: Services,
    request: ReleaseRequest,
    requested_by: str,
    channel: str | None,
    spent: list[LlmCall],
    reading: flows.Reading | None,
    now: datetime,
) -> Release:
    planned, approvers = plan_release(services, request, now, spent)
    refusals = start_refusals(services, planned.request, planned.plan)
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
    if (ci := services.ci_for(request.service)) is not None:
        ci.publish(request.service, release.version, request.release_package.artifact, now)
    try:
        services.store.add(release)
    except AlreadyActive as exc:  # another start won the race since start_refusals
        raise CommandRejected(active_refusal(services, request.service) or str(exc)) from exc
    return release


def plan_release(
    services: Services, request: ReleaseRequest, now: datetime, spent: list[LlmCall]
) -> tuple[flows.Planned, list[str]]:
    """The plan (the agent's when valid, else the rules'), and the release's effective
    approvers (for its highest environment)."""
    svc = services.config.for_service(request.service)
    measured = measured_traffic(services, request, now)
    planned = flows.plan(services.agent(), request, now, svc.instances, spent, measured)
    return planned, svc.approvers_for(e.name for e in planned.plan.environments)


def measured_traffic(
    services: Services, request: ReleaseRequest, now: datetime
) -> Measurement | None:
    """The service's recent production traffic and its bad requests, for the plan; why not
    when the provider's data covers too little; None when the provider cannot say (the plan
    says it had no figure either way)."""
    regions = request.deployment_config.regions
    try:
        recent = services.metrics.recent_traffic(request.service, regions, now, TRAFFIC_MINUTES)
    except MetricsUnavailable:
        return None
    if recent is None:
        return None
    return MeasuredTraffic.of(recent, request.guardrails.all())


def refuse_unreleasable(
    services: Services, text: str, parsed: ReleaseRequest | InsufficientContext
) -> None:
    """Refuse a service the config does not know (naming the closest) or cannot release (no
    metrics provider or traffic router), before anything else is asked of the user."""
    service = parsed.service if isinstance(parsed, ReleaseRequest) else named_service(text)
    if service is not None and (why := services.config.refusal(service)):
        raise CommandRejected(why)


def start_refusals(services: Services, request: ReleaseRequest, plan: Plan) -> list[str]:
    """Why a release could not start now: its router cannot run the strategy, another
    release is active, an environment is locked."""
    out = []
    if why := services.traffic.refusal(request.service, plan.strategy):
        out.append(why)
    envs = sorted({e.name for e in plan.environments})
    regions = sorted({e.region for e in plan.environments})
    for adapter in (services.traffic, services.metrics):
        if why := adapter.layout_refusal(request.service, envs, regions):
            out.append(why + " (the /release line reaches more than the config names)")
    if why := active_refusal(services, request.service):
        out.append(why)
    for scope in scopes_for(request.service, [e.name for e in plan.environments]):
        lock = services.locks.get(scope)
        if lock is not None:
            out.append(lock_refusal(request.service, lock))
    return out


def active_refusal(services: Services, service: str) -> str | None:
    """The refusal naming ``service``'s active release, if it has one."""
    busy = services.store.active_for_service(service)
    if not busy:
        return None
    current = services.store.get(busy[0])
    return (
        f"{service} already has an active release: {current.id} "
        f"({current.version}, {current.status.replace('_', ' ')}); wait for it or roll it back"
    )


Change = Callable[[Release, datetime], None]


def _change(services: Services, release_id: str, change: Change) -> Release:
    """One command on one release: load, decide, save with its events, converge, deliver."""
    with services.store.unit_of_work():
        release = services.store.get(release_id)
        change(release, services.clock.now())
        services.store.save(release)
    converge_saved(services, release)
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


def report_issue(services: Services, release_id: str, user: str, text: str) -> Release:
    """A user reports a problem with the release, while it runs or in the days after it ended
    (``bot/domain/feedback.py``): anyone may, so no access policy; audited on the release
    (``issue_reported``: who, what, when), told in its thread, counted by its report."""
    return _change(services, release_id, lambda r, now: r.report_issue(user, text, now))


def extend_bake(
    services: Services, release_id: str, user: str, minutes: float, reason: str = ""
) -> Release:
    """A held step bakes on for ``minutes`` (bounded by the domain), judged as before."""
    return _command(
        services,
        release_id,
        "extend",
        user,
        lambda r, now: r.extend_bake(user, minutes, reason, now),
    )


def promote_on_override(services: Services, release_id: str, user: str, reason: str) -> Release:
    """Promote a held step without the judge's verdict: who and why are recorded."""
    return _command(
        services,
        release_id,
        "override",
        user,
        lambda r, now: r.promote_on_override(user, reason, now),
    )


def refused(services: Services, release_id: str, user: str, action: str, why: str) -> Release:
    """Audit, on the release, an attempt the access policy refused (a ``refused`` event).
    The command functions above already do this for their own refusals."""
    return _change(services, release_id, lambda r, now: r.record_refused(user, action, why, now))


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
