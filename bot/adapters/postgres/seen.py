"""Requests already acted on, in PostgreSQL: one row per key, the first insert wins (across
every replica); rows past their time are purged by the next insert."""

from __future__ import annotations

from datetime import datetime

from bot.adapters.postgres.database import PgMigrations, PostgresDatabase
from bot.ports.seen import AbstractSeenRequests

migrations = PgMigrations("release-bot.seen")
migrations.step(
    "m001_seen_requests",
    "CREATE TABLE seen_requests (key TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL,"
    " expires_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX seen_requests_expires_at ON seen_requests (expires_at)",
)


class PostgresSeenRequests(AbstractSeenRequests):
    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def first(self, key: str, now: datetime, until: datetime) -> bool:
        with self.database.transaction() as conn:
            conn.execute("DELETE FROM seen_requests WHERE expires_at <= %s", [now.timestamp()])
            inserted = conn.execute(
                "INSERT INTO seen_requests (key, seen_at, expires_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (key) DO NOTHING",
                [key, now.timestamp(), until.timestamp()],
            )
            return inserted.rowcount == 1
