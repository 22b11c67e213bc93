"""Environment locks on SQLite: a locked scope (``prod``, ``payments-api/prod``) refuses
every release reaching it until someone unlocks it.

``locks`` holds the scopes locked now, one row each, with who locked it, why and when;
``lock_history`` is the append-only record of every lock and unlock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.domain.locks import EnvLock, parse_scope
from bot.ports.locks import AbstractLocks, AlreadyLocked, LockChange, NotLocked

migrations = Migrations("release-bot.locks")


@migrations()
def m001_locks(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE locks (
            scope TEXT PRIMARY KEY,   -- "prod" or "payments-api/prod"
            locked_by TEXT NOT NULL,
            reason TEXT NOT NULL,
            locked_at TEXT NOT NULL   -- ISO 8601, UTC
        )
        """
    )
    db.execute(
        """
        CREATE TABLE lock_history (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL,
            action TEXT NOT NULL,     -- locked | unlocked
            actor TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        )
        """
    )
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER lock_history_append_only_{op.lower()} BEFORE {op} ON lock_history "
            "BEGIN SELECT RAISE(ABORT, 'the lock history is append-only'); END"
        )


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _lock(row: dict[str, Any]) -> EnvLock:
    return EnvLock(
        scope=row["scope"],
        by=row["locked_by"],
        reason=row["reason"],
        at=datetime.fromisoformat(row["locked_at"]),
    )


def _change(row: dict[str, Any]) -> LockChange:
    return LockChange(
        scope=row["scope"],
        action=row["action"],
        actor=row["actor"],
        reason=row["reason"],
        at=datetime.fromisoformat(row["at"]),
    )


class SqliteLocks(AbstractLocks):
    def __init__(self, database: Database) -> None:
        self.database = database

    @property
    def db(self) -> sqlite_utils.Database:
        return self.database.db

    def lock(self, scope: str, by: str, reason: str, at: datetime) -> EnvLock:
        """Lock ``scope``; AlreadyLocked (naming who, why, when) if it is locked already."""
        scope = parse_scope(scope)
        with self.database.lock, self.db.atomic():
            existing = self.get(scope)
            if existing is not None:
                raise AlreadyLocked(existing)
            lock = EnvLock(scope=scope, by=by, reason=reason or "no reason given", at=at)
            self.db.execute(
                "INSERT INTO locks (scope, locked_by, reason, locked_at) VALUES (?, ?, ?, ?)",
                [scope, by, lock.reason, _ts(at)],
            )
            self._history(scope, "locked", by, lock.reason, at)
        return lock

    def unlock(self, scope: str, by: str, at: datetime) -> EnvLock:
        """Remove the lock on ``scope`` and return it; NotLocked if there is none."""
        scope = parse_scope(scope)
        with self.database.lock, self.db.atomic():
            existing = self.get(scope)
            if existing is None:
                others = ", ".join(lock.scope for lock in self.all())
                raise NotLocked(
                    f"{scope} is not locked: nothing to unlock"
                    + (f" (locked now: {others})" if others else " (nothing is locked)")
                )
            self.db.execute("DELETE FROM locks WHERE scope = ?", [scope])
            self._history(scope, "unlocked", by, f"was locked by {existing.by}", at)
        return existing

    def get(self, scope: str) -> EnvLock | None:
        with self.database.lock:
            rows = list(self.db.query("SELECT * FROM locks WHERE scope = ?", [parse_scope(scope)]))
        return _lock(rows[0]) if rows else None

    def all(self) -> list[EnvLock]:
        """Every locked scope, oldest lock first."""
        with self.database.lock:
            rows = list(self.db.query("SELECT * FROM locks ORDER BY locked_at, scope"))
        return [_lock(r) for r in rows]

    def history(self, scope: str | None = None) -> list[LockChange]:
        where, args = ("WHERE scope = ?", [parse_scope(scope)]) if scope else ("", [])
        with self.database.lock:
            rows = list(self.db.query(f"SELECT * FROM lock_history {where} ORDER BY id", args))
        return [_change(r) for r in rows]

    def _history(self, scope: str, action: str, actor: str, reason: str, at: datetime) -> None:
        self.db.execute(
            "INSERT INTO lock_history (scope, action, actor, reason, at) VALUES (?, ?, ?, ?, ?)",
            [scope, action, actor, reason, _ts(at)],
        )
