"""Leases on SQLite: a row per lease (``name``, ``holder``, ``expires_at``), taken or renewed
by one conditional upsert, as PostgreSQL would run it (``INSERT … ON CONFLICT DO UPDATE …
WHERE``, ``RETURNING``): whichever process's statement commits first holds it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.ports.leases import RELEASE_PREFIX, AbstractLeases, Lease

migrations = Migrations("release-bot.leases")


@migrations()
def create_leases(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at TEXT NOT NULL   -- UTC, fixed width: compares as text in time order
        )
        """
    )


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SqliteLeases(AbstractLeases):
    def __init__(self, database: Database) -> None:
        self.database = database

    def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        with self.database.transaction() as db:
            taken = db.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :until) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_at = excluded.expires_at "
                "WHERE leases.expires_at < :now OR leases.holder = excluded.holder "
                "RETURNING holder",
                {"name": name, "holder": holder, "until": _ts(until), "now": _ts(now)},
            ).fetchall()
        return bool(taken)

    def claim_releases(
        self, holder: str, now: datetime, until: datetime, limit: int, *, due: datetime
    ) -> list[str]:
        # One writer at a time (BEGIN IMMEDIATE): the read and the upsert see the same leases.
        with self.database.transaction() as db:
            taken = db.execute(
                "WITH candidates AS (SELECT id FROM releases r WHERE active = 1 "
                "AND (due_at IS NULL OR due_at <= :due) AND NOT EXISTS "
                "(SELECT 1 FROM leases l WHERE l.name = :prefix || r.id "
                "AND l.expires_at >= :now) ORDER BY id LIMIT :limit) "
                "INSERT INTO leases (name, holder, expires_at) "
                "SELECT :prefix || id, :holder, :until FROM candidates WHERE true "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_at = excluded.expires_at WHERE leases.expires_at < :now "
                "RETURNING name",
                {
                    "prefix": RELEASE_PREFIX,
                    "holder": holder,
                    "now": _ts(now),
                    "due": due.timestamp(),
                    "until": _ts(until),
                    "limit": limit,
                },
            ).fetchall()
        return sorted(row[0].removeprefix(RELEASE_PREFIX) for row in taken)

    def release(self, name: str, holder: str) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", [name, holder])

    def release_claims(self, holder: str, now: datetime) -> None:
        with self.database.transaction() as db:
            db.execute(
                "DELETE FROM leases WHERE name LIKE ? AND (holder = ? OR expires_at < ?)",
                [RELEASE_PREFIX + "%", holder, _ts(now)],
            )

    def release_held(self, holder: str) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM leases WHERE holder = ?", [holder])

    def current(self, name: str) -> Lease | None:
        rows = list(self.database.db.table("leases").rows_where("name = ?", [name]))
        if not rows:
            return None
        expires = datetime.strptime(rows[0]["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        return Lease(name=name, holder=rows[0]["holder"], expires_at=expires.replace(tzinfo=UTC))
