"""One contract for the store's ports (the simulated fleet's state and the routers' rows
included), run on the embedded SQLite file and on a real
PostgreSQL: what each port promises, asserted on what is stored. "Another process" is a second
set of adapters on the same database (its own connections). Flags, CI checks and series run
their own cases on both stores too (tests/test_flags_store.py, test_checks_store.py,
test_series.py)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest

from bot.adapters.sqlite.database import Database
from bot.bootstrap import EMBEDDED_MIGRATIONS, Stores, postgres_stores, sqlite_stores
from bot.domain.evidence import EvidenceFile
from bot.domain.observations import Target, TrafficState
from bot.domain.release import Release
from bot.ports.fleet_state import FleetState
from bot.ports.llm import LlmCall
from bot.ports.locks import AlreadyLocked, NotLocked
from bot.ports.notifications import PlannedDelivery
from bot.ports.store import AlreadyActive, DeliveryFailure, ReleaseNotFound, StaleRelease
from bot.ports.target_rows import AbstractTargetRows
from tests.domain_helpers import T0, gated_release, make_request

KEY = b"contract-audit-key"
HANG_GUARD = 60.0  # seconds: a deadlock fails the test instead of hanging it


class Backend:
    """One database and every set of adapters opened on it."""

    def __init__(self, name: str, target: str) -> None:
        self.name, self.target = name, target
        self._closers: list[Callable[[], None]] = []

    def open(self) -> Stores:
        """The store's ports as one more process would open them."""
        if self.name == "postgres":
            stores = postgres_stores(self.target, KEY)
            assert stores.shared is not None
            self._closers.append(stores.shared.close)
            return stores
        database = Database(self.target)
        database.migrate(*EMBEDDED_MIGRATIONS)
        self._closers.append(database.close)
        return sqlite_stores(database, KEY)

    def raw(self, sql: str) -> None:
        """What someone with a database client (not release-bot) runs."""
        if self.name == "postgres":
            with psycopg.connect(self.target, autocommit=True) as conn:
                conn.execute(sql.encode())
        else:
            with sqlite3.connect(self.target) as conn:
                conn.execute(sql)

    def close(self) -> None:
        for close in self._closers:
            close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        target = request.getfixturevalue("postgres_url")
    else:
        target = str(tmp_path / "bot.db")
    opened = Backend(request.param, target)
    yield opened
    opened.close()


@pytest.fixture
def stores(backend: Backend) -> Stores:
    return backend.open()


def release(release_id: str = "rel-1", service: str = "shop") -> Release:
    """A release of ``service`` waiting for approval, with its creation and gate events."""
    made = gated_release(make_request())
    assert made.status == "awaiting_approval"
    request = made.request.model_copy(update={"service": service})
    return made.model_copy(update={"id": release_id, "request": request})


def side_by_side(*work: Callable[[], object]) -> list[object]:
    """Run each at once on its own thread; what each returned or raised."""
    results: list[object] = [None] * len(work)
    start = threading.Barrier(len(work))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_GUARD)
    assert not any(t.is_alive() for t in threads), "a unit of work hung"
    return results


# -- releases --------------------------------------------------------------------------------


def test_a_release_round_trips_with_its_events(stores: Stores) -> None:
    added = release()
    stores.store.add(added)
    got = stores.store.get("rel-1")
    assert got.model_dump() == added.model_dump()
    assert stores.store.active_ids() == ["rel-1"]
    assert stores.store.active_for_service("shop") == ["rel-1"]
    assert stores.store.active_by_status() == {"awaiting_approval": 1}
    assert [r["id"] for r in stores.store.listing()] == ["rel-1"]
    assert [e.action for e in stores.store.events("rel-1")][:1] == ["release_requested"]
    with pytest.raises(ReleaseNotFound, match="no release 'nope'"):
        stores.store.get("nope")


def test_a_stale_save_is_refused_and_writes_nothing(stores: Stores) -> None:
    stores.store.add(release())
    first, second = stores.store.get("rel-1"), stores.store.get("rel-1")
    first.approve("alice", T0)
    stores.store.save(first)
    events = len(stores.store.events("rel-1"))
    second.reject("bob", "not today", T0)
    with pytest.raises(StaleRelease):
        stores.store.save(second)
    assert second.revision == 0  # as read: the caller may reload and redo
    saved = stores.store.get("rel-1")
    assert (saved.revision, saved.status) == (1, first.status)
    assert len(stores.store.events("rel-1")) == events


def test_two_processes_saving_one_revision_at_once_store_one(backend: Backend) -> None:
    one, other = backend.open(), backend.open()
    one.store.add(release())
    a, b = one.store.get("rel-1"), other.store.get("rel-1")
    a.approve("alice", T0)
    b.reject("bob", "not today", T0)
    results = side_by_side(lambda: one.store.save(a), lambda: other.store.save(b))
    assert sorted(type(r).__name__ for r in results) == ["NoneType", "StaleRelease"]
    assert one.store.get("rel-1").revision == 1


def test_one_active_release_per_service_even_from_two_processes(backend: Backend) -> None:
    one, other = backend.open(), backend.open()
    results = side_by_side(
        lambda: one.store.add(release("rel-a")), lambda: other.store.add(release("rel-b"))
    )
    assert sorted(type(r).__name__ for r in results) == ["AlreadyActive", "NoneType"]
    assert len(one.store.active_for_service("shop")) == 1
    assert len(one.store.listing()) == 1
    with pytest.raises(AlreadyActive, match="shop already has an active release"):
        one.store.add(release("rel-c"))


def test_an_ended_release_does_not_hold_its_service(stores: Stores) -> None:
    stores.store.add(release("rel-a"))
    ended = stores.store.get("rel-a")
    ended.reject("alice", "not today", T0)
    stores.store.save(ended)
    assert ended.status == "failed"
    stores.store.add(release("rel-b"))
    assert stores.store.active_ids() == ["rel-b"]
    ended.status = "rolling_out"  # as no command can: the database refuses it all the same
    with pytest.raises(AlreadyActive):
        stores.store.save(ended)
    assert stores.store.get("rel-a").status == "failed"


def test_a_unit_of_work_is_one_transaction(stores: Stores) -> None:
    class Undo(Exception):
        pass

    with pytest.raises(Undo), stores.store.unit_of_work():
        stores.store.add(release())
        stores.locks.lock("prod", "alice", "freeze", T0)
        raise Undo
    assert stores.store.listing() == [] and stores.locks.all() == []
    with stores.store.unit_of_work():
        stores.store.add(release())
        with pytest.raises(AlreadyActive):  # a refusal inside the unit leaves it usable
            stores.store.add(release("rel-2"))
        stores.locks.lock("prod", "alice", "freeze", T0)
    assert [r["id"] for r in stores.store.listing()] == ["rel-1"]
    assert [lock.scope for lock in stores.locks.all()] == ["prod"]


# -- the outbox ------------------------------------------------------------------------------


def test_the_outbox_delivers_each_event_once(backend: Backend) -> None:
    one, other = backend.open(), backend.open()
    one.store.add(release("rel-a"))
    pending = one.store.undelivered()
    assert pending and {e.release_id for e in pending} == {"rel-a"}
    assert one.store.undelivered(excluding=["rel-a"]) == []
    assert one.store.undelivered(release_id="rel-x") == []
    ids = [e.id for e in pending]
    side_by_side(
        lambda: one.store.mark_delivered(ids, T0), lambda: other.store.mark_delivered(ids, T0)
    )
    assert one.store.undelivered() == []
    assert one.store.delivered_count("rel-a") == len(ids)


def test_delivery_failures_are_kept_replaced_and_cleared(stores: Stores) -> None:
    failure = DeliveryFailure("rel-a", 1, "channel_not_found", T0 + timedelta(seconds=5))
    stores.store.record_delivery_failure(failure)
    again = DeliveryFailure("rel-a", 2, "ratelimited", T0 + timedelta(seconds=20))
    stores.store.record_delivery_failure(again)
    assert stores.store.delivery_failures() == {"rel-a": again}
    stores.store.clear_delivery_failure("rel-a")
    assert stores.store.delivery_failures() == {}


def test_llm_calls_and_the_clock_are_kept(stores: Stores) -> None:
    call = LlmCall("narrate", "claude", "req-1", 100, 20, 80, 0, "end_turn", 900, T0)
    stores.store.record_llm_calls(None, [call])
    stores.store.record_llm_calls("rel-a", [call, call])
    assert len(stores.store.llm_calls()) == 3
    assert [c["request_id"] for c in stores.store.llm_calls("rel-a")] == ["req-1", "req-1"]
    assert stores.store.load_clock() is None
    stores.store.save_clock(T0)
    stores.store.save_clock(T0 + timedelta(minutes=5))
    assert stores.store.load_clock() == T0 + timedelta(minutes=5)


# -- the audit trail -------------------------------------------------------------------------


def test_the_audit_chain_verifies_and_names_a_forged_row(backend: Backend, stores: Stores) -> None:
    stores.store.add(release())
    approved = stores.store.get("rel-1")
    approved.approve("alice", T0)
    stores.store.save(approved)
    verdict = stores.audit.verify()
    assert verdict.ok and verdict.keyed and verdict.count == len(stores.store.events("rel-1"))
    exported = stores.audit.export("rel-1")
    assert [r.hash for r in exported][-1] == verdict.head
    backend.raw(
        "INSERT INTO events (release_id, at, actor, action, details, data) VALUES "
        "('rel-1', '2025-03-04T14:05:00+00:00', 'mallory', 'approved', 'forged', '{}')"
    )
    broken = stores.audit.verify()
    assert broken.broken is not None
    assert broken.broken.event_id == max(r.id for r in stores.audit.export())


def test_the_audit_trail_is_append_only(backend: Backend, stores: Stores) -> None:
    stores.store.add(release())
    for sql in ("UPDATE events SET actor = 'bob'", "DELETE FROM events"):
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
            backend.raw(sql)
    assert stores.audit.verify().ok


def test_appends_from_two_processes_keep_one_chain(backend: Backend) -> None:
    one, other = backend.open(), backend.open()
    for n in range(4):
        one.store.add(release(f"rel-{n}", service=f"svc-{n}"))

    def approve_all(stores: Stores, ids: list[str]) -> None:
        for release_id in ids:
            moved = stores.store.get(release_id)
            moved.approve("alice", T0)
            stores.store.save(moved)

    results = side_by_side(
        lambda: approve_all(one, ["rel-0", "rel-1"]), lambda: approve_all(other, ["rel-2", "rel-3"])
    )
    assert results == [None, None]
    assert one.audit.verify().ok


# -- leases, seen requests, locks, notifications, evidence -----------------------------------


def test_a_lease_is_held_renewed_expires_and_is_taken_over(stores: Stores) -> None:
    leases, later = stores.leases, T0 + timedelta(seconds=30)
    assert leases.acquire("ticker", "a", T0, later)
    assert not leases.acquire("ticker", "b", T0 + timedelta(seconds=29), later)
    assert leases.acquire("ticker", "a", T0 + timedelta(seconds=29), later + timedelta(seconds=29))
    assert not leases.acquire("ticker", "b", later, later)  # renewed: not expired yet
    assert leases.acquire("ticker", "b", later + timedelta(seconds=30), later + timedelta(60))
    current = leases.current("ticker")
    assert current is not None and (current.holder, current.expires_at) == (
        "b",
        later + timedelta(60),
    )
    leases.release("ticker", "a")  # not a's any more: left alone
    assert (held := leases.current("ticker")) is not None and held.holder == "b"
    leases.release("ticker", "b")
    assert leases.current("ticker") is None


def test_of_two_processes_taking_one_lease_one_holds_it(backend: Backend) -> None:
    one, other = backend.open(), backend.open()
    until = T0 + timedelta(seconds=30)
    results = side_by_side(
        lambda: one.leases.acquire("ticker", "a", T0, until),
        lambda: other.leases.acquire("ticker", "b", T0, until),
    )
    assert sorted(results, key=str) == [False, True]
    held = one.leases.current("ticker")
    assert held is not None and held.holder == ("a" if results[0] else "b")


def test_a_claimed_release_is_not_claimed_again_until_its_lease_runs_out(stores: Stores) -> None:
    for i in range(3):
        stores.store.add(release(f"rel-{i}", f"svc-{i}"))
    leases, until = stores.leases, T0 + timedelta(seconds=9)
    assert leases.claim_releases("a", T0, until, 2, due=T0) == ["rel-0", "rel-1"]
    assert leases.claim_releases("b", T0, until, 2, due=T0) == ["rel-2"]
    assert leases.claim_releases("a", T0, until, 2, due=T0) == []  # a's own too: moved this tick
    ended = stores.store.get("rel-1")
    ended.status = "failed"
    stores.store.save(ended)  # an ended release is never claimed
    later = until + timedelta(seconds=1)
    assert leases.claim_releases("b", later, later + timedelta(seconds=9), 5, due=later) == [
        "rel-0",
        "rel-2",
    ]


def test_a_release_not_due_is_neither_listed_for_the_tick_nor_claimed(stores: Stores) -> None:
    for i in range(3):
        stores.store.add(release(f"rel-{i}", f"svc-{i}"))
    waiting = stores.store.get("rel-1")
    stores.store.save(waiting, due_at=T0 + timedelta(seconds=30))  # its window needs 30 s
    assert sorted(stores.store.due_ids(T0)) == ["rel-0", "rel-2"]  # (created at once)
    until = T0 + timedelta(seconds=9)
    assert stores.leases.claim_releases("a", T0, until, 5, due=T0) == ["rel-0", "rel-2"]
    later = T0 + timedelta(seconds=30)
    assert sorted(stores.store.due_ids(later)) == ["rel-0", "rel-1", "rel-2"]
    leased = until + timedelta(seconds=1)  # the leases' clock, apart from the releases'
    assert stores.leases.claim_releases(
        "b", leased, leased + timedelta(seconds=9), 5, due=later
    ) == [
        "rel-0",
        "rel-1",
        "rel-2",
    ]
    commanded = stores.store.get("rel-1")
    stores.store.save(commanded, due_at=T0 + timedelta(hours=1))
    stores.store.save(stores.store.get("rel-1"))  # a command's save: due at once
    assert sorted(stores.store.due_ids(T0)) == ["rel-0", "rel-1", "rel-2"]


def test_the_save_that_ends_a_release_marks_it_unconverged_until_marked(
    stores: Stores,
) -> None:
    store = stores.store
    store.add(release("rel-e", "svc-e"))
    store.save(store.get("rel-e"))  # still active: nothing to finish
    assert store.unconverged(T0) == {}
    ended = store.get("rel-e")
    ended.status = "failed"
    store.save(ended)
    assert store.unconverged(T0) == {"rel-e": True}  # its flags and its router
    store.mark_converged("rel-e", flags_only=True)
    assert store.unconverged(T0) == {"rel-e": False}  # its router only
    store.defer_converge("rel-e", T0 + timedelta(minutes=1))  # the router did not answer
    assert store.unconverged(T0) == {}
    assert store.unconverged(T0 + timedelta(minutes=1)) == {"rel-e": False}
    store.mark_converged("rel-e", flags_only=True)  # never back to its flags
    assert store.unconverged(T0 + timedelta(minutes=1)) == {"rel-e": False}
    store.mark_converged("rel-e")
    assert store.unconverged(T0 + timedelta(minutes=1)) == {}
    store.mark_converged("rel-e", flags_only=True)  # done stays done
    store.save(store.get("rel-e"))  # saved again once ended: still done
    assert store.unconverged(T0 + timedelta(days=1)) == {}


def test_a_new_tick_gives_up_its_claims_and_drops_those_run_out(stores: Stores) -> None:
    for i in range(3):
        stores.store.add(release(f"rel-{i}", f"svc-{i}"))
    leases, until = stores.leases, T0 + timedelta(seconds=9)
    assert leases.claim_releases("dead", T0, until, 1, due=T0) == ["rel-0"]  # then killed
    assert leases.claim_releases("a", T0, until, 1, due=T0) == ["rel-1"]
    assert leases.claim_releases("b", T0, until, 1, due=T0) == ["rel-2"]
    ended = stores.store.get("rel-0")
    ended.status = "failed"
    stores.store.save(ended)  # never claimed again: only the cleanup removes its claim
    later = until + timedelta(seconds=1)
    leases.release_claims("a", T0)  # a's own go; b's and the dead one's still count
    assert [leases.current(f"release:rel-{i}") is None for i in range(3)] == [False, True, False]
    leases.release_claims("a", later)  # now the dead replica's and b's have run out
    assert all(leases.current(f"release:rel-{i}") is None for i in range(3))


def test_replicas_claiming_at_once_share_the_releases_without_overlap(backend: Backend) -> None:
    first = backend.open()
    for i in range(30):
        first.store.add(release(f"rel-{i:02}", f"svc-{i}"))
    replicas = [first, backend.open(), backend.open()]
    until = T0 + timedelta(seconds=9)

    def claim_all(stores: Stores, holder: str) -> list[str]:
        claimed: list[str] = []
        while batch := stores.leases.claim_releases(holder, T0, until, 4, due=T0):
            claimed += batch
        return claimed

    results = side_by_side(
        *(lambda s=s, h=h: claim_all(s, h) for h, s in zip("abc", replicas, strict=True))
    )
    claimed = [rid for each in results for rid in cast(list[str], each)]
    assert sorted(claimed) == [f"rel-{i:02}" for i in range(30)]  # each once, none left out


def test_the_first_process_to_see_a_request_wins_until_it_is_forgotten(backend: Backend) -> None:
    one, other = backend.open(), backend.open()
    until = T0 + timedelta(minutes=5)
    results = side_by_side(
        *[lambda s=s: s.seen.first("event:Ev1", T0, until) for s in (one, other, one, other)]
    )
    assert sorted(results, key=str) == [False, False, False, True]
    assert not other.seen.first("event:Ev1", T0 + timedelta(minutes=4), until)
    assert one.seen.first("event:Ev1", until + timedelta(seconds=1), until + timedelta(minutes=5))


def test_locks_name_their_holder_and_keep_their_history(stores: Stores) -> None:
    locks = stores.locks
    locks.lock("prod", "alice", "freeze", T0)
    with pytest.raises(AlreadyLocked) as held:
        locks.lock("prod", "bob", "mine", T0)
    assert held.value.lock.by == "alice"
    locks.lock("shop/staging", "bob", "", T0 + timedelta(seconds=1))
    assert [lock.scope for lock in locks.all()] == ["prod", "shop/staging"]
    unlocked = locks.unlock("prod", "carol", T0 + timedelta(minutes=1))
    assert (unlocked.by, unlocked.reason) == ("alice", "freeze")
    with pytest.raises(NotLocked, match="prod is not locked: nothing to unlock"):
        locks.unlock("prod", "carol", T0)
    assert [(c.action, c.actor) for c in locks.history("prod")] == [
        ("locked", "alice"),
        ("unlocked", "carol"),
    ]
    assert len(locks.history()) == 3


def test_a_moment_planned_twice_is_told_once(stores: Stores) -> None:
    log = stores.notifications
    planned = [PlannedDelivery("rel-1", 7, "started", "pagerduty")]
    log.plan(planned, T0)
    log.plan(planned, T0)
    due = log.due(T0)
    assert [(d.target, d.status) for d in due] == [("pagerduty", "pending")]
    assert log.due(T0 - timedelta(seconds=1)) == []
    log.record(due[0].id, "delivered", 1, None, None, T0, "PD-1")
    assert log.due(T0 + timedelta(hours=1)) == []
    [told] = log.for_release("rel-1")
    assert (told.status, told.attempts, told.reference, told.delivered_at) == (
        "delivered",
        1,
        "PD-1",
        T0,
    )


def test_an_evidence_file_is_kept_once_with_its_bytes_summary(stores: Stores) -> None:
    file = EvidenceFile(
        service="shop",
        version="1.2.0",
        kind="junit",
        name="tests.xml",
        sha256="ab" * 32,
        size=5,
        uploaded_by="ci",
        uploaded_at=T0,
        summary={"tests": 3, "failures": 0},
    )
    first = stores.evidence.add(file, b"<xml>")
    again = stores.evidence.add(file.model_copy(update={"uploaded_by": "someone"}), b"<xml>")
    assert first == again and first.id > 0 and first.uploaded_by == "ci"
    assert stores.evidence.files("shop", "1.2.0") == [first]
    assert stores.evidence.files("shop", "9.9.9") == []


def test_migrations_apply_once(backend: Backend) -> None:
    first = backend.open()
    first.store.add(release())
    again: Any = backend.open()  # applies nothing, loses nothing
    assert [r["id"] for r in again.store.listing()] == ["rel-1"]


def test_the_same_history_hashes_the_same_on_both_stores(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A trail exported from one store verifies as the other's: the same rows, the same bytes."""
    chains = []
    for backend in (
        Backend("sqlite", str(tmp_path / "same.db")),
        Backend("postgres", request.getfixturevalue("postgres_url")),
    ):
        stores = backend.open()
        stores.store.add(release())
        moved = stores.store.get("rel-1")
        moved.approve("alice", T0)
        stores.store.save(moved)
        chains.append([(r.id, r.prev_hash, r.hash, r.mac) for r in stores.audit.export()])
        backend.close()
    assert chains[0] == chains[1] and len(chains[0]) > 2


def test_a_revision_is_read_without_the_state(stores: Stores) -> None:
    stores.store.add(release("rel-r", "svc-r"))
    first = stores.store.revision("rel-r")
    assert first == stores.store.get("rel-r").revision
    moved = stores.store.get("rel-r")
    stores.store.save(moved)
    assert stores.store.revision("rel-r") == first + 1 == moved.revision
    with pytest.raises(ReleaseNotFound):
        stores.store.revision("rel-none")


# -- the simulated fleet and the routers' rows: shared by every process --------------------

PAY_EU = Target(service="pay", env="prod", region="eu")


def test_the_fleet_state_one_process_writes_is_what_another_reads(backend: Backend) -> None:
    one, other = backend.open().fleet, backend.open().fleet
    assert other.snapshot("pay") == FleetState()
    canary = TrafficState(stable_version="1.0", new_version="1.1", new_weight=5)
    one.put_traffic(PAY_EU, canary)
    one.add_faults("pay", "1.1", ["errors:3x@25", "latency:2x"])
    one.add_faults("pay", "1.1", ["errors:3x@25"])  # kept once, in its first place
    one.add_faults("pay", "1.0", ["dep:db=degraded"])
    one.add_faults("shop", "1.1", ["errors:2x"])
    assert one.set_load("pay", 40.0) is None  # it replaced the profile's
    assert other.traffic(PAY_EU) == canary  # one target's row alone, as converge reads it
    assert other.traffic(PAY_EU.model_copy(update={"region": "us"})) is None
    assert other.snapshot("pay") == FleetState(
        {("prod", "eu"): canary},
        (("1.1", "errors:3x@25"), ("1.1", "latency:2x"), ("1.0", "dep:db=degraded")),
        40.0,
    )
    other.clear_faults("pay", "1.1")
    assert other.set_load("pay", 10.0) == 40.0
    assert one.snapshot("pay").faults == (("1.0", "dep:db=degraded"),)
    assert one.snapshot("pay").rps == 10.0
    other.clear_faults("pay")
    other.forget_traffic(PAY_EU)
    assert one.snapshot("pay") == FleetState(rps=10.0)
    assert one.traffic(PAY_EU) is None
    assert one.snapshot("shop").faults == (("1.1", "errors:2x"),)
    assert one.set_load("pay", None) == 10.0  # the profile's traffic again
    assert other.snapshot("pay").rps is None


@pytest.mark.parametrize(
    ("table", "row"),
    [
        ("haproxy_targets", {"stable_server": "blue", "versions": '{"blue": "1.0"}'}),
        ("webhook_state", {"acknowledged_at": "2026-12-04T10:00:00+00:00"}),
    ],
)
def test_a_routers_row_per_target_is_shared(
    backend: Backend, table: str, row: dict[str, str]
) -> None:
    one, other = (
        cast(AbstractTargetRows, getattr(s, table)) for s in (backend.open(), backend.open())
    )
    state = "applied" if table == "haproxy_targets" else "state"
    first = {**row, state: TrafficState(stable_version="1.0").model_dump_json()}
    assert other.get(PAY_EU) is None
    one.put(PAY_EU, first)
    assert other.get(PAY_EU) == first
    second = {**first, state: TrafficState(stable_version="1.1").model_dump_json()}
    other.put(PAY_EU, second)  # replaced, not added
    assert one.get(PAY_EU) == second
    assert one.get(PAY_EU.model_copy(update={"region": "us"})) is None
