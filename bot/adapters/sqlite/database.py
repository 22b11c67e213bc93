"""One SQLite database holds the store, flags, CI evidence and the simulator's state."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations

from bot.ports.store import DatabaseBusy

BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's transaction to end


def _busy(timeout: float, path: str) -> DatabaseBusy:
    return DatabaseBusy(
        f"the database {path} stayed locked by another release-bot process for {timeout:g}s; "
        "try again when its command has finished, or point --db at another file"
    )


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class _Connection(sqlite_utils.Database):
    """sqlite-utils on one connection whose transactions take the write lock up front.

    sqlite-utils' ``atomic()`` opens with a deferred ``BEGIN``: a unit of work that reads and
    then writes has to upgrade its read lock, and SQLite answers that upgrade SQLITE_BUSY at
    once, without waiting on the busy timeout, whenever another process wrote meanwhile
    ("database is locked" between two processes). ``BEGIN IMMEDIATE`` waits for the write
    lock before the first read instead; nested units stay savepoints.
    """

    def __init__(self, conn: sqlite3.Connection, path: str, timeout: float) -> None:
        super().__init__(conn)
        self.path = path
        self.timeout = timeout

    @contextmanager
    def atomic(self) -> Generator[sqlite_utils.Database, None, None]:
        if self.conn.in_transaction:
            with super().atomic() as db:  # a savepoint inside the open transaction
                yield db
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _busy(self.timeout, self.path) from exc
            raise
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise


class Database:
    """A sqlite-utils database shared by the adapters, with one lock for units of work.

    Slack listeners, the background work queue and the scheduler's tick run on different
    threads. A sqlite3 connection keeps one transaction state, so threads sharing it undo
    each other's savepoints: each thread gets its own connection to the file (WAL lets
    readers run beside the writer), and every unit of work holds ``lock`` (re-entrant) so
    writers in this process take turns instead of waiting on SQLite's busy timeout.
    An in-memory database (tests) has a single connection, used from one thread.

    Several processes may open one file (``worker`` or ``serve`` beside CLI commands): every
    transaction begins IMMEDIATE (see ``_Connection``) and waits up to ``busy_timeout`` for
    the others; past that, DatabaseBusy says so in one line.
    """

    def __init__(self, path: str | Path = ":memory:", busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self.lock = threading.RLock()
        self._local = threading.local()
        self._opened: list[sqlite_utils.Database] = []
        self._shared: sqlite_utils.Database | None = None
        if self.path == ":memory:":
            self._shared = self._connect()
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            try:  # the switch to WAL needs the lock for a moment when the file is new
                self.db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise _busy(self.busy_timeout, self.path) from exc
                raise

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
        # IMMEDIATE: the implicit transaction sqlite3 opens before a lone write waits for the
        # write lock too; ``timeout`` is SQLite's busy handler, for every statement.
        conn = sqlite3.connect(
            self.path,
            check_same_thread=False,
            timeout=self.busy_timeout,
            isolation_level="IMMEDIATE",
        )
        db = _Connection(conn, self.path, self.busy_timeout)
        if self.path != ":memory:":
            # WAL with NORMAL: a commit survives a crash of the process (what the reconcile
            # loop needs); only a power cut may lose the last ticks, which the next redoes.
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        with self.lock:
            self._opened.append(db)
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One unit of work: this process's lock, then SQLite's write lock (a savepoint when
        a unit of work is already open on this thread)."""
        with self.lock, self.db.atomic() as db:
            yield db

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """As ``transaction``, but inside an open unit of work no savepoint: for writes that,
        if they raise, leave nothing a caller goes on with (one statement; a save that
        refuses before it writes, whose later failure rolls the open unit back whole). The
        tick writes every release it moves this way: two statements fewer each."""
        with self.lock:
            db = self.db
            if db.conn.in_transaction:
                yield db
                return
            with db.atomic():
                yield db

    def migrate(self, *migrations: Migrations) -> None:
        """Apply the adapters' migrations; safe to call on every start, from several
        processes at once: what is pending is read again under the write lock, so two
        processes never apply the same migration."""
        if not any(each.pending(self.db) for each in migrations):
            return  # the usual start: nothing to write, no lock to wait for
        with self.transaction():
            for each in migrations:
                each.apply(self.db)

    def close(self) -> None:
        with self.lock:
            for db in self._opened:
                db.close()
            self._opened.clear()
