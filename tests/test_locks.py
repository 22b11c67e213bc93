"""Environment locks: the SQLite adapter, start refused while locked, the lock an automatic
rollback takes; and the dry run, which stores, deploys and publishes nothing.

Service tests run the real bootstrap (in-memory SQLite, simulator, virtual clock)."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.sqlite import locks as sqlite_locks
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.locks import SqliteLocks
from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.config import DEFAULT_CONFIG
from bot.domain.contract import InsufficientContext
from bot.domain.locks import EnvLock, ScopeError
from bot.domain.observations import Target
from bot.domain.release import CommandRejected, Release
from bot.ports.locks import AbstractLocks, AlreadyLocked, LockChange, NotLocked
from bot.service import (
    DryRun,
    approve,
    dry_run,
    lock_env,
    reconcile,
    rollback,
    start_release,
    unlock_env,
)
from tests.conftest import migrated_db

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # outside payments-api's peak hours
LINE = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout"'
SCOPE = "payments-api/prod"


# -- helpers, shared with tests/test_access.py ---------------------------------------------------


def wired(tmp_path: Path | None = None, edit: Callable[[str], str] | None = None) -> Wiring:
    """The real bootstrap on an in-memory database; ``edit`` rewrites data/services.toml."""
    config_path = None
    if edit is not None:
        assert tmp_path is not None
        config_path = tmp_path / "services.toml"
        config_path.write_text(edit(DEFAULT_CONFIG.read_text()))
    return bootstrap(
        ":memory:", clock_start=START, chat=TerminalChat(io.StringIO()), config_path=config_path
    )


def tick_until(wiring: Wiring, release_id: str, done: Callable[[Release], bool]) -> Release:
    services, clock = wiring.services, wiring.virtual_clock
    assert clock is not None
    for _ in range(3000):
        release = services.store.get(release_id)
        if done(release):
            return release
        clock.advance(services.tick_seconds)
        reconcile(services)
    raise AssertionError(f"{release_id} never got there: {services.store.get(release_id).status}")


def started(wiring: Wiring, line: str = LINE, by: str = "dave") -> Release:
    release = start_release(wiring.services, line, by)
    assert isinstance(release, Release), release
    if release.status == "awaiting_approval":
        release = approve(wiring.services, release.id, "alice")
    return release


def actions(wiring: Wiring, release_id: str) -> list[str]:
    return [e.action for e in wiring.services.store.events(release_id)]


# -- the adapter ----------------------------------------------------------------------------------


@pytest.fixture
def locks() -> SqliteLocks:
    return SqliteLocks(migrated_db())


def test_a_lock_records_who_why_and_when(locks: SqliteLocks) -> None:
    lock = locks.lock("PROD", "alice", "code freeze", START)
    assert (lock.scope, lock.by, lock.reason, lock.at) == ("prod", "alice", "code freeze", START)
    assert locks.get("prod") == lock
    assert locks.get("staging") is None
    assert locks.all() == [lock]
    assert lock.describe() == "prod locked by alice at 2026-11-24 14:00 UTC: code freeze"


def test_locking_twice_says_who_holds_it(locks: SqliteLocks) -> None:
    locks.lock(SCOPE, "alice", "incident INC-7", START)
    with pytest.raises(AlreadyLocked, match=r"already locked: .*by alice .*INC-7") as exc:
        locks.lock(SCOPE, "bob", "me too", START + timedelta(minutes=1))
    assert exc.value.lock.by == "alice"
    assert locks.get(SCOPE) is not None and locks.get(SCOPE).by == "alice"  # type: ignore[union-attr]


def test_unlocking_returns_the_lock_and_keeps_the_history(locks: SqliteLocks) -> None:
    locks.lock("prod", "alice", "", START)
    assert locks.get("prod").reason == "no reason given"  # type: ignore[union-attr]
    removed = locks.unlock("prod", "bob", START + timedelta(hours=1))
    assert removed.by == "alice"
    assert locks.all() == []
    assert [(h.action, h.actor) for h in locks.history("prod")] == [
        ("locked", "alice"),
        ("unlocked", "bob"),
    ]


def test_unlocking_what_is_not_locked_says_so(locks: SqliteLocks) -> None:
    with pytest.raises(NotLocked, match=r"prod is not locked: nothing to unlock \(nothing is"):
        locks.unlock("prod", "alice", START)
    locks.lock(SCOPE, "alice", "x", START)
    with pytest.raises(NotLocked, match=r"\(locked now: payments-api/prod\)"):
        locks.unlock("prod", "alice", START)


def test_a_scope_is_an_environment_or_service_slash_environment(locks: SqliteLocks) -> None:
    for bad in ("qa", "payments-api/qa", "Payments/prod", "/prod", ""):
        with pytest.raises(ScopeError, match="not a lock scope"):
            locks.lock(bad, "alice", "x", START)


def test_migrations_are_idempotent_and_the_history_append_only() -> None:
    database = Database(":memory:")
    database.migrate(sqlite_locks.migrations)
    database.migrate(sqlite_locks.migrations)
    locks = SqliteLocks(database)
    locks.lock("prod", "alice", "x", START)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        database.db.execute("DELETE FROM lock_history")


# -- start refused while locked -------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["prod", SCOPE])
def test_a_release_reaching_a_locked_scope_is_refused_naming_who_why_and_how(scope: str) -> None:
    wiring = wired()
    services = wiring.services
    lock_env(services, scope, "alice", "code freeze until Monday")
    with pytest.raises(CommandRejected) as exc:
        start_release(services, LINE, "dave")
    message = str(exc.value)
    for part in (
        f"{scope} is locked by alice since 2026-11-24 14:00 UTC",
        "code freeze until Monday",
        f"`/release unlock {scope}`",
        "payments-api cannot be released to prod",
    ):
        assert part in message, message
    assert services.store.listing() == []
    unlock_env(services, scope, "bob")
    assert isinstance(start_release(services, LINE, "dave"), Release)


def test_a_service_lock_does_not_stop_other_services() -> None:
    wiring = wired()
    lock_env(wiring.services, SCOPE, "alice", "incident")
    other = start_release(
        wiring.services, 'search-api 3.1.0 risk=low ticket=CHG-2 changes="x"', "dave"
    )
    assert isinstance(other, Release)


def test_lock_and_unlock_refusals_name_the_problem() -> None:
    services = wired().services
    with pytest.raises(CommandRejected, match="'qa' is not a lock scope"):
        lock_env(services, "qa", "alice", "x")
    with pytest.raises(CommandRejected, match="mallory cannot lock prod"):
        lock_env(services, "prod", "mallory", "x")
    lock_env(services, "prod", "alice", "freeze")
    with pytest.raises(CommandRejected, match="prod is already locked: prod locked by alice"):
        lock_env(services, "prod", "bob", "freeze")  # the double click
    with pytest.raises(CommandRejected, match="payments-api/prod is not locked"):
        unlock_env(services, SCOPE, "alice")
    lock_env(services, SCOPE, "alice", "incident")
    with pytest.raises(CommandRejected, match="carol cannot unlock payments-api/prod"):
        unlock_env(services, SCOPE, "carol")  # an approver, but of search-api


# -- the lock an automatic rollback takes ---------------------------------------------------------


def faulty(wiring: Wiring, version: str = "2.4.1") -> Release:
    wiring.fleet.inject("payments-api", version, ["errors:3x@25"])
    return started(wiring, LINE.replace("2.4.1", version))


def test_an_automatic_rollback_locks_the_service_environment_once() -> None:
    wiring = wired()
    services = wiring.services
    release = faulty(wiring)
    rolling_back = tick_until(wiring, release.id, lambda r: r.status == "rolling_back")
    assert rolling_back.rollback is not None and rolling_back.rollback.triggered_by == "automated"
    lock = services.locks.get(SCOPE)
    assert lock is not None and lock.by == "release-bot"
    assert f"automatic rollback of {release.id}" in lock.reason
    assert rolling_back.locked_scope == SCOPE
    # Unlocked while the rollback still runs: later ticks do not lock it again.
    unlock_env(services, SCOPE, "alice")
    done = tick_until(wiring, release.id, lambda r: not r.is_active)
    assert done.status == "rolled_back"
    for _ in range(5):
        reconcile(services)
    assert services.locks.get(SCOPE) is None
    assert actions(wiring, release.id).count("environment_locked") == 1
    event = next(e for e in services.store.events(release.id) if e.action == "environment_locked")
    assert event.data == {"scope": SCOPE}
    assert f"until someone runs `/release unlock {SCOPE}`" in event.details
    posted = [text for _, text in services.chat.posted]  # type: ignore[attr-defined]
    assert any("environment locked" in t and SCOPE in t for t in posted)


class LockedMeanwhile(AbstractLocks):
    """The real locks, where another process (a replica) locks a scope between this one's
    read and its lock."""

    def __init__(self, inner: AbstractLocks) -> None:
        self.inner = inner

    def lock(self, scope: str, by: str, reason: str, at: datetime) -> EnvLock:
        self.inner.lock(scope, "carol", "locked from another replica", at)
        return self.inner.lock(scope, by, reason, at)

    def unlock(self, scope: str, by: str, at: datetime) -> EnvLock:
        return self.inner.unlock(scope, by, at)

    def get(self, scope: str) -> EnvLock | None:
        return self.inner.get(scope)

    def all(self) -> list[EnvLock]:
        return self.inner.all()

    def history(self, scope: str | None = None) -> list[LockChange]:
        return self.inner.history(scope)


def test_a_lock_taken_by_another_process_meanwhile_is_kept_and_the_rollback_goes_on() -> None:
    """Repro: a replica locked the scope between the tick's read and its lock, and the tick
    failed with AlreadyLocked on every try (seen in tests/test_replicas.py)."""
    wiring = wired()
    release = faulty(wiring)
    wiring = dataclasses.replace(
        wiring,
        services=dataclasses.replace(wiring.services, locks=LockedMeanwhile(wiring.services.locks)),
    )
    done = tick_until(wiring, release.id, lambda r: not r.is_active)
    assert done.status == "rolled_back"
    lock = wiring.services.locks.get(SCOPE)
    assert lock is not None and (lock.by, lock.reason) == ("carol", "locked from another replica")
    assert "tick_failed" not in actions(wiring, release.id)
    event = next(
        e for e in wiring.services.store.events(release.id) if e.action == "environment_locked"
    )
    assert event.details.startswith(f"{SCOPE} stays locked")


def test_the_lock_outlives_the_release_until_someone_unlocks_it() -> None:
    wiring = wired()
    services = wiring.services
    release = faulty(wiring)
    tick_until(wiring, release.id, lambda r: not r.is_active)
    with pytest.raises(CommandRejected, match=f"{SCOPE} is locked by release-bot .*automatic"):
        start_release(services, LINE.replace("2.4.1", "2.4.2"), "dave")
    unlock_env(services, SCOPE, "bob")
    assert isinstance(start_release(services, LINE.replace("2.4.1", "2.4.2"), "dave"), Release)


def test_an_existing_lock_is_kept_and_the_thread_says_so() -> None:
    wiring = wired()
    services = wiring.services
    release = faulty(wiring)
    tick_until(wiring, release.id, lambda r: r.step_index >= 2)
    lock_env(services, SCOPE, "alice", "looking into INC-9")
    tick_until(wiring, release.id, lambda r: not r.is_active)
    lock = services.locks.get(SCOPE)
    assert lock is not None and (lock.by, lock.reason) == ("alice", "looking into INC-9")
    event = next(e for e in services.store.events(release.id) if e.action == "environment_locked")
    assert event.details.startswith(f"{SCOPE} stays locked")


def test_a_manual_rollback_does_not_lock() -> None:
    wiring = wired()
    release = started(wiring)
    tick_until(wiring, release.id, lambda r: r.step_index >= 2)
    rollback(wiring.services, release.id, "alice", "customer reports")
    done = tick_until(wiring, release.id, lambda r: not r.is_active)
    assert done.status == "rolled_back"
    assert wiring.services.locks.all() == []
    assert "environment_locked" not in actions(wiring, release.id)


# -- dry run --------------------------------------------------------------------------------------


def test_a_dry_run_stores_deploys_and_publishes_nothing() -> None:
    wiring = wired()
    services = wiring.services
    result = dry_run(services, LINE)
    assert isinstance(result, DryRun)
    assert result.outcome == "needs_approval"
    assert result.approvers == ["alice", "bob"]
    assert result.refusals == [] and result.blockers == []
    assert len(result.checks) == 12 and all(c.status == "pass" for c in result.checks)
    rollback_plan = next(c for c in result.checks if c.check == "rollback_plan")
    assert "rollback rehearsal not run in a dry run" in rollback_plan.details
    assert any("not run in a dry run" in n for n in result.notes)
    # Nothing stored, applied or published:
    assert services.store.listing() == []
    assert services.store.undelivered() == []
    assert services.checks.artifact("ghcr.io/acme/payments-api:2.4.1") is None
    assert services.checks.results("payments-api", "2.4.1") == []
    for env in ("dev", "staging", "prod"):
        state = services.traffic.state(Target(service="payments-api", env=env, region="us-east-1"))
        assert state.new_version is None and state.new_weight == 0
    assert wiring.database.db["sim_traffic"].count == 0
    assert "would wait for approval from alice, bob" in "\n".join(result.lines())


def test_a_dry_run_says_what_would_stop_the_release() -> None:
    wiring = wired()
    services = wiring.services
    low = dry_run(services, LINE.replace("risk=medium", "risk=low"))
    assert isinstance(low, DryRun) and low.outcome == "auto_approved"
    blocked = dry_run(services, LINE + " deps=payments-db:unhealthy")
    assert isinstance(blocked, DryRun) and blocked.outcome == "blocked"
    assert blocked.blockers[0].startswith("dependency_health: unhealthy: payments-db")
    lock_env(services, "prod", "alice", "freeze")
    refused = dry_run(services, LINE)
    assert isinstance(refused, DryRun) and refused.outcome == "refused"
    assert "prod is locked by alice" in refused.refusals[0]
    incomplete = dry_run(services, "payments-api")
    assert isinstance(incomplete, InsufficientContext)
    assert services.store.listing() == []


def test_a_dry_run_names_the_active_release_it_would_wait_for() -> None:
    wiring = wired()
    release = started(wiring)
    result = dry_run(wiring.services, LINE.replace("2.4.1", "2.4.2"))
    assert isinstance(result, DryRun) and result.outcome == "refused"
    assert f"already has an active release: {release.id}" in result.refusals[0]
    assert len(wiring.services.store.listing()) == 1
