"""Environment locks on PostgreSQL: ``locks`` holds the scopes locked now, ``lock_history``
the append-only record of every lock and unlock (as on SQLite)."""

from __future__ import annotations

from datetime import datetime

from bot.adapters.postgres.database import PgMigrations, PostgresDatabase, append_only
from bot.adapters.sqlite.locks import _change, _lock, _ts
from bot.domain.locks import EnvLock, parse_scope
from bot.ports.locks import AbstractLocks, AlreadyLocked, LockChange, NotLocked
from bot.ports.store import DatabaseBusy

migrations = PgMigrations("release-bot.locks")
migrations.step(
    "m001_locks",
    # COLLATE "C": ISO 8601 text sorts in time order, as in SQLite, whatever the server's locale
    "CREATE TABLE locks (scope TEXT PRIMARY KEY, locked_by TEXT NOT NULL, reason TEXT NOT NULL,"
    ' locked_at TEXT COLLATE "C" NOT NULL)',
    "CREATE TABLE lock_history (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " scope TEXT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL,"
    " at TEXT NOT NULL)",
    *append_only("lock_history", "the lock history"),
)


class PostgresLocks(AbstractLocks):
    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def lock(self, scope: str, by: str, reason: str, at: datetime) -> EnvLock:
        scope = parse_scope(scope)
        lock = EnvLock(scope=scope, by=by, reason=reason or "no reason given", at=at)
        with self.database.transaction() as conn:
            for _ in range(3):  # the other process's lock may be gone by the time it is read
                inserted = conn.execute(
                    "INSERT INTO locks (scope, locked_by, reason, locked_at)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (scope) DO NOTHING",
                    [scope, by, lock.reason, _ts(at)],
                ).rowcount
                if inserted == 1:
                    break
                if (existing := self.get(scope)) is not None:
                    raise AlreadyLocked(existing)
            else:
                raise DatabaseBusy(
                    f"{scope} was locked and unlocked by others three times; try again"
                )
            self._history(scope, "locked", by, lock.reason, at)
        return lock

    def unlock(self, scope: str, by: str, at: datetime) -> EnvLock:
        scope = parse_scope(scope)
        with self.database.transaction() as conn:
            removed = conn.execute("DELETE FROM locks WHERE scope = %s RETURNING *", [scope])
            rows = removed.fetchall()
            if not rows:
                others = ", ".join(lock.scope for lock in self.all())
                raise NotLocked(
                    f"{scope} is not locked: nothing to unlock"
                    + (f" (locked now: {others})" if others else " (nothing is locked)")
                )
            existing = _lock(rows[0])
            self._history(scope, "unlocked", by, f"was locked by {existing.by}", at)
        return existing

    def get(self, scope: str) -> EnvLock | None:
        rows = self.database.rows("SELECT * FROM locks WHERE scope = %s", [parse_scope(scope)])
        return _lock(rows[0]) if rows else None

    def all(self) -> list[EnvLock]:
        return [
            _lock(r) for r in self.database.rows("SELECT * FROM locks ORDER BY locked_at, scope")
        ]

    def history(self, scope: str | None = None) -> list[LockChange]:
        where, args = ("WHERE scope = %s", [parse_scope(scope)]) if scope else ("", [])
        rows = self.database.rows(f"SELECT * FROM lock_history {where} ORDER BY id", args)
        return [_change(r) for r in rows]

    def _history(self, scope: str, action: str, actor: str, reason: str, at: datetime) -> None:
        self.database.execute(
            "INSERT INTO lock_history (scope, action, actor, reason, at) VALUES (%s, %s, %s, %s, %s)",
            [scope, action, actor, reason, _ts(at)],
        )
