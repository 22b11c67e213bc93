"""Requests already acted on, in SQLite: one row per key (a Slack signature, an event ID),
inserted atomically so the first process to record it wins; rows past their time are
purged by the next insert."""

from __future__ import annotations

from datetime import datetime

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.ports.seen import AbstractSeenRequests

migrations = Migrations("release-bot.seen")


@migrations()
def m001_seen_requests(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE seen_requests (
            key TEXT PRIMARY KEY,     -- "signature:v0=…", "event:Ev…", "payload:…"
            seen_at REAL NOT NULL,    -- Unix seconds
            expires_at REAL NOT NULL  -- Unix seconds: forgotten after this
        )
        """
    )
    db.execute("CREATE INDEX seen_requests_expires_at ON seen_requests (expires_at)")


class SqliteSeenRequests(AbstractSeenRequests):
    def __init__(self, database: Database) -> None:
        self.database = database

    def first(self, key: str, now: datetime, until: datetime) -> bool:
        # Under the lock like every writer here: a commit between another unit of work's
        # read and its write would fail that one at once (SQLite's stale WAL snapshot).
        with self.database.lock, self.database.db.atomic():
            db = self.database.db
            db.execute("DELETE FROM seen_requests WHERE expires_at <= ?", [now.timestamp()])
            inserted = db.execute(
                "INSERT OR IGNORE INTO seen_requests (key, seen_at, expires_at) VALUES (?, ?, ?)",
                [key, now.timestamp(), until.timestamp()],
            )
            return inserted.rowcount == 1
