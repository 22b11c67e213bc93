"""One PostgreSQL database shared by every release-bot process: a psycopg 3 connection pool,
units of work as on SQLite, and the migrations each adapter module lists.

A unit of work is one transaction on one pooled connection, held by the thread that opened
it; a unit opened inside it joins it (a savepoint, as on SQLite). Reads outside a unit run on
any pooled connection, each statement on its own. Waiting on another transaction's row lock
past ``busy_timeout`` (``lock_timeout``), a serialization failure or a deadlock is the same
one-line ``DatabaseBusy`` as SQLite's locked file.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.ports.store import DatabaseBusy, StoreUnavailable

BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's transaction to end
CONNECT_TIMEOUT = 10  # seconds to reach the server at start-up
POOL_SIZE = 8  # the Slack listeners, the background queue and the tick, side by side
Row = dict[str, Any]
Params = Sequence[Any] | dict[str, Any] | None

_BUSY = (errors.LockNotAvailable, errors.SerializationFailure, errors.DeadlockDetected)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


@dataclass
class PgMigrations:
    """An adapter module's named schema steps, in order, as its SQLite ``Migrations`` lists
    them (same names): each step's statements run once, in one transaction with its record
    in ``_migrations`` (the set, the name, when)."""

    name: str
    steps: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def step(self, name: str, *statements: str) -> None:
        self.steps.append((name, statements))


class PostgresDatabase:
    def __init__(
        self, url: str, busy_timeout: float = BUSY_TIMEOUT, pool_size: int = POOL_SIZE
    ) -> None:
        self.url = url
        self.where = _safe(url)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        try:  # one direct connection first: its error says why far better than the pool's
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT).close()
        except (psycopg.Error, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreUnavailable(
                f"cannot open the PostgreSQL database {self.where}: {reason}; check the URL "
                "(postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE) and that the server runs"
            ) from exc
        millis = int(busy_timeout * 1000)
        self.pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            url,
            connection_class=psycopg.Connection[Row],
            min_size=1,
            max_size=pool_size,
            timeout=busy_timeout,
            open=True,
            kwargs={
                "autocommit": True,  # a unit of work opens its own transaction
                "row_factory": dict_row,
                "options": f"-c lock_timeout={millis} -c timezone=UTC",
                "connect_timeout": CONNECT_TIMEOUT,
            },
        )

    @contextmanager
    def _errors(self) -> Generator[None, None, None]:
        try:
            yield
        except (*_BUSY, PoolTimeout) as exc:
            raise DatabaseBusy(
                f"the PostgreSQL database {self.where} stayed locked by another release-bot "
                f"process for {self.busy_timeout:g}s ({type(exc).__name__}); try again when its "
                "work has finished"
            ) from exc

    @contextmanager
    def transaction(self, snapshot: bool = False) -> Iterator[psycopg.Connection[Row]]:
        """One unit of work: a transaction on a pooled connection held by this thread (a
        savepoint when a unit of work is already open on this thread). ``snapshot``: every
        read of a new transaction sees the database as of one moment (REPEATABLE READ)."""
        current: psycopg.Connection[Row] | None = getattr(self._local, "conn", None)
        if current is not None:
            with current.transaction():
                yield current
            return
        with self._errors(), self.pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    if snapshot:
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    yield conn
            finally:
                self._local.conn = None

    @contextmanager
    def write(self) -> Iterator[psycopg.Connection[Row]]:
        """As ``transaction``, but inside an open unit of work no savepoint (two round trips
        to the server): for writes that, if they raise, leave nothing a caller goes on with
        (one statement; a save that refuses before it writes). The tick writes every
        release it moves this way."""
        current: psycopg.Connection[Row] | None = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self.transaction() as conn:
            yield conn

    def rows(self, sql: str, params: Params = None) -> list[Row]:
        """The rows of one query: in this thread's unit of work, or on its own."""
        current: psycopg.Connection[Row] | None = getattr(self._local, "conn", None)
        if current is not None:
            return current.execute(sql, params).fetchall()
        with self._errors(), self.pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Params = None) -> int:
        """Run one statement (in this thread's unit of work, as a savepoint, or on its own:
        one statement on an autocommit connection is its own transaction, one round trip
        instead of three); rows changed."""
        if getattr(self._local, "conn", None) is not None:
            with self.transaction() as conn:
                return conn.execute(sql, params).rowcount
        with self._errors(), self.pool.connection() as conn:
            return conn.execute(sql, params).rowcount

    def migrate(self, *migrations: PgMigrations) -> None:
        """Apply the pending steps of each set, in order; safe from several processes at once:
        an advisory lock makes them take turns, and what is pending is read under it."""
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('release-bot migrations'))")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (migration_set TEXT NOT NULL, "
                "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
                "PRIMARY KEY (migration_set, name))"
            )
            applied = {
                (r["migration_set"], r["name"])
                for r in conn.execute("SELECT migration_set, name FROM _migrations").fetchall()
            }
            for each in migrations:
                for name, statements in each.steps:
                    if (each.name, name) in applied:
                        continue
                    for statement in statements:
                        conn.execute(statement.encode())  # DDL: no parameters
                    conn.execute(
                        "INSERT INTO _migrations (migration_set, name) VALUES (%s, %s)",
                        [each.name, name],
                    )

    def applied(self) -> list[tuple[str, str]]:
        return [
            (r["migration_set"], r["name"])
            for r in self.rows("SELECT migration_set, name FROM _migrations ORDER BY applied_at")
        ]

    def close(self) -> None:
        self.pool.close()


def append_only(table: str, what: str) -> tuple[str, ...]:
    """The statements that make ``table`` refuse UPDATE and DELETE, as SQLite's triggers do."""
    return (
        f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{what} is append-only'; END $$",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
    )


class AdvisoryLock:
    """One holder at a time across every process on the database: a session advisory lock,
    taken on a pooled connection kept while it is held (a killed holder's session ends, and
    its lock with it); re-entrant within a thread, and one thread of this process at a time."""

    def __init__(self, database: PostgresDatabase, name: str) -> None:
        self.database = database
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._local = threading.RLock()
        self._depth = 0
        self._held: AbstractContextManager[psycopg.Connection[Row]] | None = None
        self._conn: psycopg.Connection[Row] | None = None

    def __enter__(self) -> None:
        self._local.acquire()
        try:
            if self._depth == 0:
                held = self.database.pool.connection()
                conn = held.__enter__()
                try:
                    with self.database._errors():
                        conn.execute("SELECT pg_advisory_lock(%s)", [self.key])
                        conn.commit()
                except BaseException:
                    held.__exit__(None, None, None)
                    raise
                self._held, self._conn = held, conn
            self._depth += 1
        except BaseException:
            self._local.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._held is not None and self._conn is not None:
                held, conn, self._held, self._conn = self._held, self._conn, None, None
                try:
                    conn.execute("SELECT pg_advisory_unlock(%s)", [self.key])
                    conn.commit()
                finally:
                    held.__exit__(None, None, None)
        finally:
            self._local.release()
