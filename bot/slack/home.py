"""The App Home kept current: republished for the users who opened it when a release moves.

Slack shows a Home tab as it was last published, so a tab opened before a release moved would
go stale. ``HomeTabs`` remembers who opened the tab in the database (``AbstractHomeUsers``:
the table ``slack_home_users``, bounded, on PostgreSQL shared by the replicas, so a restart or
a failover still republishes their tabs); each delivered batch of events marks them due, and
one user's tab is republished at most once per ``interval`` seconds with the last change
always included (a trailing publish), so a busy tick does not flood views.publish. When each
tab is due is this process's own (in memory). Publishing runs on the work pool, never on the
thread that delivers events (it holds the delivery lock).
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.ports.store import AbstractReleaseStore, DatabaseBusy
from bot.slack.views import View, home_view

log = logging.getLogger(__name__)
HOME_INTERVAL = 10.0  # seconds; Slack allows views.publish about 100 times a minute
MAX_USERS = 200  # each change costs one views.publish per remembered user
FORGET_AFTER = 12 * 3600.0  # seconds since the tab was last opened
RECENT = 20

Publish = Callable[[str, View], Any]  # (user ID, view): views.publish
Submit = Callable[[Callable[[], None]], Any]  # an executor's submit
migrations = Migrations("release-bot.slack-home")


@migrations()
def create_home_users(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE slack_home_users (
            user TEXT PRIMARY KEY,
            opened_at REAL NOT NULL  -- Unix seconds: the last time they opened the tab
        )
        """
    )


class AbstractHomeUsers(abc.ABC):
    """Who opened the App Home, and when (Unix seconds)."""

    @abc.abstractmethod
    def opened(self, user: str, at: float, keep: int) -> None:
        """Record the user's latest opening; keep only the ``keep`` latest users."""

    @abc.abstractmethod
    def users(self, since: float) -> list[str]:
        """Forget those who last opened it before ``since``; the others, least recent first."""

    @abc.abstractmethod
    def forget(self, user: str) -> None: ...


# Ties (the same second) go to the later opening: SQLite's rowid, PostgreSQL's identity.
LATEST_FIRST = "ORDER BY opened_at DESC, {0} DESC"


class SqliteHomeUsers(AbstractHomeUsers):
    def __init__(self, database: Database) -> None:
        self.database = database

    def opened(self, user: str, at: float, keep: int) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM slack_home_users WHERE user = ?", [user])  # a new rowid
            db.execute("INSERT INTO slack_home_users (user, opened_at) VALUES (?, ?)", [user, at])
            db.execute(
                "DELETE FROM slack_home_users WHERE rowid NOT IN (SELECT rowid FROM"
                f" slack_home_users {LATEST_FIRST.format('rowid')} LIMIT ?)",
                [keep],
            )

    def users(self, since: float) -> list[str]:
        with self.database.transaction() as db:
            db.execute("DELETE FROM slack_home_users WHERE opened_at < ?", [since])
            rows = db.execute(
                f"SELECT user FROM slack_home_users {LATEST_FIRST.format('rowid')}"
            ).fetchall()
        return [str(user) for (user,) in reversed(rows)]

    def forget(self, user: str) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM slack_home_users WHERE user = ?", [user])


def current_home(store: AbstractReleaseStore) -> View:
    """The App Home as the store has it now: active releases, then the recent ones."""
    active = [store.get(i) for i in store.active_ids()]
    return home_view(active, store.listing(limit=RECENT))


class HomeTabs:
    """Who has the App Home open, and when each of their tabs is due a republish."""

    def __init__(
        self,
        publish: Publish,
        view: Callable[[], View],
        interval: float = HOME_INTERVAL,
        *,
        users: AbstractHomeUsers,
        submit: Submit | None = None,
        max_users: int = MAX_USERS,
        forget_after: float = FORGET_AFTER,
        clock: Callable[[], float] = time.time,  # stored: every process reads the same time
    ) -> None:
        self.publish = publish
        self.view = view
        self.interval = interval
        self.submit: Submit = submit or (lambda work: work())
        self.max_users = max_users
        self.forget_after = forget_after
        self.clock = clock
        self.stored = users
        self._lock = threading.Lock()  # the state below; never held across a database call
        self._publishing = threading.Lock()  # one flush at a time: a late one never overwrites
        self._published: dict[str, float] = {}
        self._due: set[str] = set()
        self._timer: threading.Timer | None = None
        self._scheduled = False  # a flush is waiting on the timer or in the pool
        self._stale = False  # a release moved since who opened the tab was last read
        self._closed = False

    @property
    def users(self) -> list[str]:
        """Who opened the tab within ``forget_after``, least recent first."""
        return self.stored.users(self.clock() - self.forget_after)

    @property
    def pending(self) -> bool:
        """Some tab is due, or a flush is waiting to run."""
        with self._lock:
            return bool(self._due) or self._scheduled

    def opened(self, user: str) -> None:
        """The user opened the tab: remember them and publish now (they are looking)."""
        with self._lock:
            if self._closed:
                return
            self._due.discard(user)
        self.stored.opened(user, self.clock(), self.max_users)
        self._publish([user])

    def changed(self) -> None:
        """A release moved: every remembered tab is due; never blocks on Slack. Who opened it
        is read from the database here, or by the pending flush when one is scheduled."""
        with self._lock:
            if self._closed:
                return
            self._stale = True
            if self._scheduled:
                return  # the pending flush reads who is due
        self._refresh()
        with self._lock:
            now_due = self._schedule(self.clock())
        if now_due:
            self._hand_over()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()

    # -- internals ------------------------------------------------------------------------

    def _refresh(self) -> None:
        """After a change, every user who opened the tab is due; read outside the lock (the
        database may wait on another thread)."""
        with self._lock:
            if not self._stale:
                return
            self._stale = False
        try:
            users = self.users
        except DatabaseBusy as exc:  # the next change or flush reads it again
            with self._lock:
                self._stale = True
            log.warning("who opened the App Home could not be read (%s); read again later", exc)
            return
        with self._lock:
            for user in set(self._published) - set(users):
                self._published.pop(user)  # forgotten: stale, or bounded out
            self._due.update(users)

    def _forget(self, user: str) -> None:
        self.stored.forget(user)
        with self._lock:
            self._published.pop(user, None)
            self._due.discard(user)

    def _ready_at(self, user: str) -> float:
        return self._published.get(user, float("-inf")) + self.interval

    def _schedule(self, now: float) -> bool:
        """One pending flush at a time, at the earliest moment a due tab may be published.
        Called under the lock; True when the flush is due now (the caller hands it over
        after releasing the lock: a synchronous ``submit`` takes it again)."""
        if self._scheduled or not self._due or self._closed:
            return False
        self._scheduled = True
        wait = min(self._ready_at(u) for u in self._due) - now
        if wait <= 0:
            return True
        self._timer = threading.Timer(wait, self._on_timer)
        self._timer.daemon = True
        self._timer.start()
        return False

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        self._hand_over()

    def _hand_over(self) -> None:
        # Flushed on the work pool: its threads keep their SQLite connections, where a timer
        # thread would open a new one for every flush.
        try:
            self.submit(self._flush)
        except RuntimeError:  # the pool is shut down: the app is stopping
            with self._lock:
                self._scheduled = False

    def _flush(self) -> None:
        with self._lock:
            self._scheduled = False  # a change from here on schedules its own flush
        self._refresh()
        with self._lock:
            now = self.clock()
            ready = [u for u in self._due if self._ready_at(u) <= now]
            self._due.difference_update(ready)  # before the view is built: it includes them
        self._publish(ready)
        with self._lock:
            now_due = self._schedule(self.clock())
        if now_due:
            self._hand_over()

    def _publish(self, users: list[str]) -> None:
        if not users:
            return
        with self._publishing:
            try:
                view = self.view()
            except Exception:
                log.exception("cannot build the App Home")
                return
            for user in users:
                with self._lock:
                    if self._closed:
                        return
                    self._published[user] = self.clock()
                try:
                    self.publish(user, view)
                except Exception as exc:  # an uninstalled user, Slack down: they reopen it
                    log.warning("App Home of %s not published (%s); forgotten", user, exc)
                    self._forget(user)
