"""``HomeTabs``: who gets the App Home republished, and how often (the end-to-end side is in
test_slack_app.py); who opened it, kept in SQLite or PostgreSQL (shared by the replicas)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bot.adapters.sqlite.database import Database
from bot.slack import home, pg_home
from bot.slack.home import AbstractHomeUsers, HomeTabs, SqliteHomeUsers
from bot.slack.pg_home import PostgresHomeUsers
from tests.conftest import postgres_stores_for
from tests.slack_app_harness import wait_until


@pytest.fixture(params=["sqlite", "postgres"])
def users(request: pytest.FixtureRequest) -> AbstractHomeUsers:
    if request.param == "postgres":
        shared = postgres_stores_for(request).shared
        assert shared is not None
        shared.migrate(pg_home.migrations)
        return PostgresHomeUsers(shared)
    database = Database(":memory:")
    database.migrate(home.migrations)
    request.addfinalizer(database.close)
    return SqliteHomeUsers(database)


class Recorder:
    """A stand-in for views.publish, and a view whose version counts the changes."""

    def __init__(self, fail_for: frozenset[str] = frozenset()) -> None:
        self.version = 0
        self.published: list[tuple[str, int]] = []
        self.fail_for = fail_for
        self._lock = threading.Lock()

    def view(self) -> dict[str, Any]:
        return {"type": "home", "blocks": [], "version": self.version}

    def publish(self, user: str, view: dict[str, Any]) -> None:
        if user in self.fail_for:
            raise RuntimeError("user_not_found")
        with self._lock:
            self.published.append((user, view["version"]))


def test_changes_within_the_interval_make_one_trailing_publish_of_the_last_state(
    users: AbstractHomeUsers,
) -> None:
    seen = Recorder()
    tabs = HomeTabs(seen.publish, seen.view, interval=0.2, users=users)
    tabs.opened("U1")
    assert seen.published == [("U1", 0)]  # opened: at once
    for _ in range(50):  # a busy tick's batches
        seen.version += 1
        tabs.changed()
    assert seen.published == [("U1", 0)]  # too soon after the last publish
    wait_until(lambda: len(seen.published) == 2, what="the trailing publish")
    assert seen.published[-1] == ("U1", 50)  # the last change is in it
    assert not tabs.pending
    tabs.close()


def test_a_change_long_after_the_last_publish_goes_out_at_once(users: AbstractHomeUsers) -> None:
    now = [0.0]
    seen = Recorder()
    tabs = HomeTabs(seen.publish, seen.view, interval=10, users=users, clock=lambda: now[0])
    tabs.opened("U1")
    now[0] = 10.0
    seen.version = 1
    tabs.changed()  # the default submit runs the flush here and now
    assert seen.published == [("U1", 0), ("U1", 1)]
    assert not tabs.pending


def test_users_are_bounded_forgotten_when_stale_or_unreachable(users: AbstractHomeUsers) -> None:
    now = [0.0]
    seen = Recorder(fail_for=frozenset({"U0GONE"}))
    tabs = HomeTabs(
        seen.publish,
        seen.view,
        interval=0,
        users=users,
        max_users=2,
        forget_after=100,
        clock=lambda: now[0],
    )
    for user in ("U1", "U2", "U3"):
        tabs.opened(user)
    assert tabs.users == ["U2", "U3"]  # the least recently opened gives way
    tabs.opened("U0GONE")  # its publish fails: it is not kept
    assert "U0GONE" not in tabs.users
    now[0] = 50.0
    tabs.opened("U2")
    seen.published.clear()
    now[0] = 120.0  # U3 opened 120 s ago, U2 70 s ago
    tabs.changed()
    assert tabs.users == ["U2"] and seen.published == [("U2", 0)]


def test_nothing_is_published_after_close(users: AbstractHomeUsers) -> None:
    seen = Recorder()
    tabs = HomeTabs(seen.publish, seen.view, interval=0, users=users)
    tabs.opened("U1")
    tabs.close()
    tabs.changed()
    tabs.opened("U2")
    assert seen.published == [("U1", 0)]


def test_who_opened_the_home_survives_a_restart_and_is_every_replicas(
    users: AbstractHomeUsers,
) -> None:
    """A process that starts on the same database (a restart, another replica taking over
    the delivery) republishes the tabs the first one knew of."""
    seen = Recorder()
    first = HomeTabs(seen.publish, seen.view, interval=0, users=users)
    first.opened("U1")
    first.close()
    seen.published.clear()
    seen.version = 1
    second = HomeTabs(seen.publish, seen.view, interval=0, users=users)
    assert second.users == ["U1"]
    second.changed()
    assert seen.published == [("U1", 1)]


def test_a_burst_of_changes_reads_who_opened_the_home_once_per_flush(
    users: AbstractHomeUsers,
) -> None:
    class Counted(AbstractHomeUsers):
        def __init__(self) -> None:
            self.reads = 0

        def opened(self, user: str, at: float, keep: int) -> None:
            users.opened(user, at, keep)

        def users(self, since: float) -> list[str]:
            self.reads += 1
            return users.users(since)

        def forget(self, user: str) -> None:
            users.forget(user)

    now = [0.0]
    seen, counted = Recorder(), Counted()
    tabs = HomeTabs(seen.publish, seen.view, interval=10, users=counted, clock=lambda: now[0])
    tabs.opened("U1")
    for version in range(1, 51):  # a busy tick's batches, within the interval
        seen.version = version
        tabs.changed()
    assert counted.reads == 1 and tabs.pending  # the first change read them; a flush waits
    tabs.close()
