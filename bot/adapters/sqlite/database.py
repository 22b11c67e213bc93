"""One SQLite database holds the store, flags, CI evidence and the simulator's state."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations


class Database:
    """A sqlite-utils database shared by the adapters, with one lock for units of work.

    Slack listeners, the background work queue and the scheduler's tick run on different
    threads. A sqlite3 connection keeps one transaction state, so threads sharing it undo
    each other's savepoints: each thread gets its own connection to the file (WAL lets
    readers run beside the writer), and every unit of work holds ``lock`` (re-entrant) so
    writers in this process take turns instead of waiting on SQLite's busy timeout.
    An in-memory database (tests) has a single connection, used from one thread.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self.lock = threading.RLock()
        self._local = threading.local()
        self._opened: list[sqlite_utils.Database] = []
        self._shared: sqlite_utils.Database | None = None
        if self.path == ":memory:":
            self._shared = self._connect()
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.db.execute("PRAGMA journal_mode=WAL")

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection."""
        if self._shared is not None:
            return self._shared
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def _connect(self) -> sqlite_utils.Database:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        db = sqlite_utils.Database(conn)
        if self.path != ":memory:":
            # WAL with NORMAL: a commit survives a crash of the process (what the reconcile
            # loop needs); only a power cut may lose the last ticks, which the next redoes.
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        with self.lock:
            self._opened.append(db)
        return db

    def migrate(self, *migrations: Migrations) -> None:
        """Apply the adapters' migrations under the lock; safe to call on every start."""
        with self.lock:
            for each in migrations:
                each.apply(self.db)

    def close(self) -> None:
        with self.lock:
            for db in self._opened:
                db.close()
            self._opened.clear()
