"""One bad release stops nothing else: each release is reconciled on its own; one that
raises is marked as errored (audited, counted, alerted once in its thread), retried with
backoff, and says so when it recovers; one whose state cannot be loaded is skipped.

The real bootstrap (in-memory SQLite, simulator, virtual clock); the bug is a router double
that raises for one service only (``tests/fakes.py``)."""

from __future__ import annotations

import dataclasses
import io
import itertools
from datetime import UTC, datetime
from pathlib import Path

from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.domain.release import Release
from bot.service import Services, approve, reconcile, start_release
from tests.conftest import cli
from tests.fakes import BrokenForServices

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # outside payments-api's peak hours
PAYMENTS = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout"'
SEARCH = 'search-api 3.1.0 risk=low ticket=CHG-2 changes="better ranking"'


def wired(db: str = ":memory:") -> tuple[Wiring, Services, BrokenForServices, TerminalChat]:
    chat = TerminalChat(io.StringIO())
    wiring = bootstrap(db, clock_start=START, chat=chat)
    router = BrokenForServices(wiring.services.traffic)
    return wiring, dataclasses.replace(wiring.services, traffic=router), router, chat


def started(services: Services, line: str, approver: str) -> Release:
    release = start_release(services, line, "dave")
    assert isinstance(release, Release), release
    if release.status == "awaiting_approval":
        release = approve(services, release.id, approver)
    return release


def ticks(wiring: Wiring, services: Services, n: int) -> None:
    assert wiring.virtual_clock is not None
    for _ in range(n):
        wiring.virtual_clock.advance(services.tick_seconds)
        reconcile(services)


def actions(services: Services, release_id: str) -> list[str]:
    return [e.action for e in services.store.events(release_id)]


def thread(chat: TerminalChat, release_id: str) -> list[str]:
    return [text for rid, text in chat.posted if rid == release_id]


def test_a_release_that_raises_stops_no_other_release() -> None:
    wiring, services, router, chat = wired()
    broken = started(services, PAYMENTS, "alice")  # first in the tick's order
    healthy = started(services, SEARCH, "carol")
    router.broken.add("payments-api")

    ticks(wiring, services, 60)  # ten minutes

    moved = services.store.get(healthy.id)
    assert moved.step_index >= 1 or not moved.is_active, moved.status
    errored = services.store.get(broken.id)
    assert errored.errored and errored.is_active
    failures = [e for e in services.store.events(broken.id) if e.action == "tick_failed"]
    assert failures[0].data["error_type"] == "ValueError"
    assert "instances must be positive, not -3" in failures[0].data["message"]
    assert [e.data["count"] for e in failures] == list(range(1, len(failures) + 1))
    assert errored.failed_ticks == len(failures)
    # Backoff: 10 s, 20 s, 40 s… (capped at 5 min) over 60 ticks is a handful of tries.
    assert 3 <= len(failures) <= 8
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(failures)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]
    # The thread is alerted once, not at every failed tick.
    said = thread(chat, broken.id)
    assert sum("tick failed" in line for line in said) == 1
    assert any("instances must be positive" in line for line in said)


def test_an_automatic_rollback_happens_beside_a_broken_release() -> None:
    wiring, services, router, _ = wired()
    started(services, PAYMENTS, "alice")
    faulty = started(services, SEARCH, "carol")
    wiring.fleet.inject("search-api", faulty.version, ["errors:8x"])
    router.broken.add("payments-api")

    ticks(wiring, services, 120)

    rolled = services.store.get(faulty.id)
    assert rolled.status == "rolled_back", rolled.status
    assert rolled.rollback is not None and rolled.rollback.triggered_by == "automated"


def test_a_release_that_recovers_says_so_and_moves_again() -> None:
    wiring, services, router, chat = wired()
    broken = started(services, PAYMENTS, "alice")
    router.broken.add("payments-api")
    ticks(wiring, services, 5)
    assert services.store.get(broken.id).errored

    router.broken.clear()
    ticks(wiring, services, 40)  # past the backoff

    release = services.store.get(broken.id)
    assert not release.errored and release.retry_at is None
    assert "tick_recovered" in actions(services, broken.id)
    assert any("tick recovered" in line for line in thread(chat, broken.id))


def test_a_release_whose_state_cannot_be_loaded_stops_no_other() -> None:
    wiring, services, _, _ = wired()
    unreadable = started(services, PAYMENTS, "alice")
    healthy = started(services, SEARCH, "carol")
    with wiring.database.lock:
        wiring.database.db.execute(
            "UPDATE releases SET state = '{not json' WHERE id = ?", [unreadable.id]
        )

    ticks(wiring, services, 60)

    moved = services.store.get(healthy.id)
    assert moved.step_index >= 1 or not moved.is_active, moved.status


def test_status_says_how_an_errored_release_backs_off(tmp_path: Path) -> None:
    db = str(tmp_path / "errored.db")
    wiring, services, router, _ = wired(db)
    broken = started(services, PAYMENTS, "alice")
    router.broken.add("payments-api")
    ticks(wiring, services, 5)
    errored = services.store.get(broken.id)
    assert errored.failed_ticks >= 2 and errored.retry_at is not None

    shown = cli("status", "--db", db)

    assert shown.returncode == 0, shown.stderr
    assert f"backing off after {errored.failed_ticks} failed ticks in a row" in shown.stdout
    assert "(last: ValueError: payments-api: instances must be positive, not -3)" in shown.stdout
    assert f"next try at {errored.retry_at:%H:%M:%S} UTC" in shown.stdout
