"""The reconcile tick: every active release moves one step, each saved in its own transaction.

Safe to run any number of times: a crash between saving and applying is repaired by the next
tick (``converge`` re-applies the persisted state to the router and the flags), and, for the
save that ended a release (no tick moves it again), by the leader's next tick
(``converge_ended``: the save marks the release unconverged until its converge is done).

The network (the router, metrics, smoke checks, the gates' evidence) is asked outside the
write transaction, so a slow webhook or Prometheus never holds the database's write lock
from other writers (commands, other processes). The transaction only saves what the step
decided, with what it writes beside the release (the judged window, the lock after an
automatic rollback); a command saved meanwhile makes the save stale: the step is dropped,
nothing of it lands, and the next tick redoes it on the command's state."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.gates import run_gates
from bot.domain.histogram import aggregate
from bot.domain.observations import Target, WindowSample
from bot.domain.observed import VerificationResult
from bot.domain.release import ENGINE, Release
from bot.domain.request import EnvName
from bot.domain.rollout import RolloutKey, desired_flags, desired_traffic, rollout_key
from bot.ports.locks import AlreadyLocked
from bot.ports.metrics import MetricsUnavailable
from bot.ports.store import StaleRelease
from bot.ports.traffic import RouterUnavailable
from bot.service.gates import auto_approves, dependency_names, gate_evidence
from bot.service.outbox import deliver
from bot.service.services import Services

log = logging.getLogger(__name__)

# Synthetic runs are few (a couple of hundred): 95 % keeps a healthy 0.3 % error rate from
# failing by chance, while a broken path (most runs failing) still fails.
SYNTHETIC_MIN_SUCCESS = 0.95
# Releases a replica claims at once: small, so the replicas share a tick's work evenly and a
# killed one leaves few releases waiting for their leases to run out.
CLAIM_BATCH = 25
# An ended release whose router did not answer is tried again this much later (the leader's
# tick goes on meanwhile; a router timing out on every tick would hold up every release).
ENDED_RETRY = timedelta(minutes=1)


def reconcile(services: Services) -> list[str]:
    """Move every active release that has work due one step, each on its own: one that
    raises is marked as errored and retried with backoff, and the others go on. Safe to run
    any number of times."""
    ids = services.store.due_ids(services.clock.now())
    for release_id in ids:
        _reconcile_isolated(services, release_id)
    deliver(services)
    return ids


def reconcile_claimed(
    services: Services, claim: Callable[[int], list[str]], still_ours: Callable[[str], bool]
) -> list[str]:
    """Move the releases ``claim`` hands this replica, a batch at a time, until it hands no
    more (the other replicas claimed the rest, or all were moved this tick); each on its
    own, as ``reconcile`` does, once ``still_ours`` says its claim holds (a slow batch may
    outlast it, and another replica then moves it). Delivering is left to the leader."""
    moved: list[str] = []
    while batch := claim(CLAIM_BATCH):
        for release_id in batch:
            if still_ours(release_id):
                _reconcile_isolated(services, release_id)
                moved.append(release_id)
    return moved


def _reconcile_isolated(services: Services, release_id: str) -> None:
    try:
        reconcile_one(services, release_id)
    except Exception as exc:  # one release's bug or bad data must not stop the others
        log.exception("the tick failed for %s; the other releases go on", release_id)
        _record_tick_error(services, release_id, exc)


def _record_tick_error(services: Services, release_id: str, error: Exception) -> None:
    """Mark the release as errored, in a transaction of its own (nothing of the failed step
    was saved). A release that cannot even be loaded stays in the log: nothing can be saved
    on it."""
    now = services.clock.now()
    try:
        with services.store.unit_of_work():
            release = services.store.get(release_id)
            release.record_tick_error(
                type(error).__name__,
                str(error) or "no message",
                now,
                timedelta(seconds=services.tick_seconds),
            )
            services.store.save(release, due_at=release.retry_at)  # not read until then
    except Exception as unrecorded:  # unloadable or unsaveable: the others still go on
        log.error(
            "%s could not be marked as errored (%s: %s); the other releases go on",
            release_id,
            type(unrecorded).__name__,
            unrecorded,
        )


def reconcile_one(services: Services, release_id: str) -> Release:
    """Move one release one step: converge and do the step's network work on the release as
    read, then save it in one short transaction, then converge to what was saved. A command
    saved meanwhile wins: the step is dropped and the next tick redoes it."""
    store = services.store
    release = store.get(release_id)
    now = services.clock.now()
    if not release.is_active or release.backing_off(now):
        return release
    judged: _Judged | None = None
    converged: RolloutKey | None = rollout_key(release)
    try:
        converge(services, release)  # re-apply after a crash between save and apply
        judged = _step(services, release, now)
        release.router_answered()
    except RouterUnavailable as exc:
        # Nothing moves on a router that does not answer; the next tick tries again.
        release.record_router_error(str(exc), now)
    try:
        with store.unit_of_work():  # all of it, or (a stale save) none of it
            _lock_after_automatic_rollback(services, release, now)
            release.tick_recovered(now)
            store.save(release, due_at=_next_work_at(services, release, now))
            if judged is not None:
                services.series.add(release.id, judged.step, judged.window)
    except StaleRelease:
        # The converge above may have re-applied the state as read, after the command's own.
        log.info(
            "%s was saved by a command during the tick; the next tick redoes its step", release_id
        )
        release = store.get(release_id)
        converged = None
    if rollout_key(release) != converged:  # else the converge above applied it already
        converge_saved(services, release)
    return release


def _next_work_at(services: Services, release: Release, now: datetime) -> datetime | None:
    """When the next tick that has work on the release comes (None: the next one). Before
    then, ticks do not even read it: a provider whose windows need 30 s (two Prometheus
    scrapes) has nothing to measure on two ticks in three."""
    shortest = services.metrics.shortest_window(release.request.service)
    return release.next_work_at(now, timedelta(seconds=shortest))


def converge_saved(services: Services, release: Release) -> None:
    """Converge a release just saved, as the store has it now (a command may have changed it
    since: then it is read again). A router that fails now changes nothing saved: the next
    tick's converge tries again and records the failure on the release (for a release this
    save ended, the leader's ``converge_ended``). A release that ended before is history:
    a command on it (a report, a feedback) leaves the router and the flags alone."""
    store = services.store
    saved = release if store.revision(release.id) == release.revision else store.get(release.id)
    with contextlib.suppress(RouterUnavailable):
        if saved.is_active:
            converge(services, saved)
        elif (flags := store.unconverged(services.clock.now()).get(saved.id)) is not None:
            _converge_end(services, saved, flags, guarded=False)


def converge_ended(services: Services) -> list[str]:
    """Finish the converge of each release ended by a save whose converge was never marked
    done: the process that saved it was killed before its router and flags followed, or the
    router did not answer. Run by the leader after each tick's moves; returns the releases
    whose router it changed. A release a newer one of its service followed is left (its end
    is history), and so is a router target changed since to serve another version; its flags
    are written once (a flag a human changed after that is theirs). A router that does not
    answer is tried again ``ENDED_RETRY`` later; a service no longer configured is left."""
    converged: list[str] = []
    now = services.clock.now()
    for release_id, flags in services.store.unconverged(now).items():
        try:
            release = services.store.get(release_id)
            if release.request.service not in services.config.services:
                services.store.mark_converged(release_id)
                log.warning("%s's service is no longer configured: left as it is", release_id)
            elif _converge_end(services, release, flags, guarded=True):
                converged.append(release.id)
                log.info("%s ended before its router followed; it follows now", release.id)
        except RouterUnavailable as exc:
            services.store.defer_converge(release_id, now + ENDED_RETRY)
            log.warning(
                "%s's router was not converged after its end (tried again in %s): %s",
                release_id, ENDED_RETRY, exc,
            )  # fmt: skip
        except Exception:  # one release's bad data must not stop the others, nor the tick
            log.exception("%s could not be converged after its end", release_id)
            with contextlib.suppress(Exception):  # not again at every tick
                services.store.defer_converge(release_id, now + ENDED_RETRY)
    return converged


def _converge_end(services: Services, release: Release, flags: bool, guarded: bool) -> bool:
    """Make the flags (when ``flags``: not yet done) and then the router follow an ended
    release, marking each done; whether the router changed. ``guarded``: only targets still
    serving its version as the new one (the leader's repair, later). Raises RouterUnavailable
    with the flags marked done."""
    store = services.store
    latest = store.listing(service=release.request.service, limit=1)
    if not latest or latest[0]["id"] != release.id:
        store.mark_converged(release.id)  # a newer release of its service followed
        return False
    if flags:
        _converge_flags(services, release)
        store.mark_converged(release.id, flags_only=True)
    changes = {}
    for target, desired in desired_traffic(release).items():
        now = services.traffic.state(target)
        if now != desired and (not guarded or now.new_version == release.version):
            changes[target] = desired
    services.traffic.apply_all(changes)
    store.mark_converged(release.id)
    return bool(changes)


@dataclass(frozen=True, slots=True)
class _Judged:
    """A window the step judged, for the series: written in the save's transaction."""

    step: int
    window: WindowSample


def _step(services: Services, release: Release, now: datetime) -> _Judged | None:
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
            return _observe(services, release, now)
        case "confirm_rollback":
            release.confirm_rollback(_restored(services, release), now)
    return None


def _targets(release: Release, env: EnvName, regions: list[str]) -> list[Target]:
    return [Target(service=release.request.service, env=env, region=r) for r in regions]


def _observe(services: Services, release: Release, now: datetime) -> _Judged | None:
    step = release.current_step
    assert step is not None and release.window_cursor is not None
    start = release.window_cursor
    targets = _targets(release, step.env, step.regions)
    try:
        if (now - start).total_seconds() <= services.metrics.shortest_window(
            release.request.service
        ):
            return None  # too short to measure yet: the window grows until the next tick
        with services.metrics.reading(release.request.service):  # one observation
            samples = services.metrics.windows(targets, start, now)  # the regions side by side
            logs = [g for t in targets if (g := services.metrics.logs(t, start, now)) is not None]
            traces = [
                r for t in targets if (r := services.metrics.traces(t, start, now)) is not None
            ]
    except MetricsUnavailable as exc:
        release.record_metrics_error(str(exc) or "no data", now)  # as its plan's trigger says
        return None
    release.observed.add_telemetry(logs, traces)
    window = WindowSample(
        start=start,
        end=now,
        baseline=aggregate([s.baseline for s in samples]),
        canary=aggregate([s.canary for s in samples]),
    )
    release.observe(window, now)
    if release.status == "rolling_out" and (names := dependency_names(services, release.request)):
        release.check_dependencies(
            services.metrics.dependencies(release.request.service, names), now
        )
    return _Judged(step.index, window)


def _verify(services: Services, release: Release, now: datetime) -> VerificationResult:
    step = release.current_step
    assert step is not None
    svc = services.config.for_service(release.request.service)
    transactions = [c.name for c in svc.smoke] or svc.key_transactions or ["health"]
    budget = min(g.value for g in release.request.guardrails.latency)
    results = []
    for target in _targets(release, step.env, step.regions):
        results += services.metrics.synthetic(target, transactions, now)
    failing = [
        r
        for r in results
        if r.success_rate < SYNTHETIC_MIN_SUCCESS or r.latency_ms > (r.budget_ms or budget)
    ]
    smoke = [
        e
        for e in services.checks.results(release.request.service, release.version)
        if e.name == "smoke_tests"
    ]
    smoke_failed = sum(e.failed for e in smoke)
    where = f"{step.env} {','.join(step.regions)}"
    if not results and not smoke:
        # A provider with no URL for any transaction ran nothing: that verifies nothing.
        return VerificationResult(
            ok=False,
            details=(
                f"nothing verified in {where}: no synthetic transaction ran (set "
                f"smoke checks for {release.request.service}) and no smoke tests recorded"
            ),
            smoke_passed=0,
            smoke_failed=0,
            transactions=[],
        )
    ok = not failing and smoke_failed == 0
    smoke_passed = sum(e.passed for e in smoke)
    if ok:
        details = (
            f"{len(results)} synthetic transactions pass in {where} "
            f"(≥{SYNTHETIC_MIN_SUCCESS:.0%} success, ≤{budget:g}ms)"
            if results
            else f"{smoke_passed} smoke tests pass in {where}"
        )
    else:
        worst = ", ".join(f"{r.name} {r.success_rate:.1%} {r.latency_ms:.0f}ms" for r in failing)
        details = f"synthetic transactions failing in {where}: {worst}" + (
            f"; {smoke_failed} smoke tests failed" if smoke_failed else ""
        )
    if unchecked := sorted(set(transactions) - {r.name for r in results}):
        details += f"; not checked (no smoke check): {', '.join(unchecked)}"
    return VerificationResult(
        ok=ok,
        details=details,
        # the transactions checked here; CI's smoke tests count in the report from its evidence
        smoke_passed=len(results) - len(failing),
        smoke_failed=len(failing),
        transactions=[
            {"name": r.name, "success_rate": r.success_rate, "latency_ms": r.latency_ms}
            for r in results
        ],
    )


def _restored(services: Services, release: Release) -> bool:
    for target, desired in desired_traffic(release).items():
        actual = services.traffic.state(target)
        if actual.new_weight != desired.new_weight or actual.mirror != desired.mirror:
            return False
    for flag in release.request.deployment_config.flags:
        state = services.flags.get(flag.name)
        if state is not None and state.effective_percentage > 0:
            return False
    return True


def _run_gates(services: Services, release: Release, now: datetime) -> None:
    evidence = gate_evidence(services, release.request, release.plan, release.approvers, now)
    checks, artifacts = run_gates(release.request, release.plan, evidence)
    auto = auto_approves(release.plan, checks, release.read_by_agent)
    release.record_gates(checks, artifacts, evidence.stable_version, auto, now)


def converge(services: Services, release: Release) -> None:
    """Make the flags and the router match the release's persisted state (idempotent). The
    flags first: on a feature-flag rollback the kill switch is the rollback, and a router
    that does not answer must not hold it up."""
    _converge_flags(services, release)
    changes = {
        target: desired
        for target, desired in desired_traffic(release).items()
        if services.traffic.state(target) != desired
    }
    services.traffic.apply_all(changes)  # a wave's regions side by side


def _converge_flags(services: Services, release: Release) -> None:
    existing = {f.name: services.flags.get(f.name) for f in release.request.deployment_config.flags}
    svc = services.config.for_service(release.request.service)
    settings = {f.name: f for f in svc.flag_settings}
    for flag in desired_flags(release, existing):
        cfg = settings.get(flag.name)
        if existing.get(flag.name) is None and cfg is not None:
            flag = flag.model_copy(
                update={"type": cfg.type, "kill_switch": cfg.kill_switch, "rules": cfg.rules,
                        "segments": cfg.segments, "overrides": cfg.overrides}
            )  # fmt: skip
        services.flags.put(flag)


def _lock_after_automatic_rollback(services: Services, release: Release, now: datetime) -> None:
    """An automatic rollback locks ``service/env`` of the step that broke, once: the lock
    outlives the release until someone unlocks it, and the thread says so."""
    rb, step = release.rollback, release.current_step
    if rb is None or rb.triggered_by != "automated" or step is None or release.locked_scope:
        return
    scope = f"{release.request.service}/{step.env}"
    existing = services.locks.get(scope)
    if existing is None:
        try:
            lock = services.locks.lock(
                scope, ENGINE, f"automatic rollback of {release.id}: {rb.reason}", now
            )
        except AlreadyLocked as exc:  # another process locked it since the read: that lock holds
            existing = lock = exc.lock
    else:
        lock = existing
    release.record_lock(lock, existing is None, now)
