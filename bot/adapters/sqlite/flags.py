"""Feature flags kept in the shared SQLite database (the embedded default)."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.domain.flags import FlagState
from bot.ports.flags import AbstractFlags

migrations = Migrations("release-bot.flags")


@migrations()
def m001_flags(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE flags (
            name TEXT PRIMARY KEY,
            service TEXT NOT NULL,
            type TEXT NOT NULL,
            percentage REAL NOT NULL,
            kill_switch INTEGER NOT NULL,
            killed INTEGER NOT NULL,
            rules TEXT NOT NULL,      -- JSON list
            segments TEXT NOT NULL,   -- JSON list
            overrides TEXT NOT NULL   -- JSON list
        )
        """
    )


def _row(flag: FlagState) -> dict[str, Any]:
    return {
        "name": flag.name,
        "service": flag.service,
        "type": flag.type,
        "percentage": flag.percentage,
        "kill_switch": int(flag.kill_switch),
        "killed": int(flag.killed),
        "rules": json.dumps(flag.rules),
        "segments": json.dumps(flag.segments),
        "overrides": json.dumps(flag.overrides),
    }


def _flag(row: dict[str, Any]) -> FlagState:
    return FlagState(
        name=row["name"],
        service=row["service"],
        type=row["type"],
        percentage=row["percentage"],
        kill_switch=bool(row["kill_switch"]),
        killed=bool(row["killed"]),
        rules=json.loads(row["rules"]),
        segments=json.loads(row["segments"]),
        overrides=json.loads(row["overrides"]),
    )


class SqliteFlags(AbstractFlags):
    """Flags in the ``flags`` table, one row per flag name (names are global, not per service)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self, name: str) -> FlagState | None:
        with self.database.lock:
            rows = list(self.database.db.query("SELECT * FROM flags WHERE name = ?", [name]))
        return _flag(rows[0]) if rows else None

    def put(self, flag: FlagState) -> None:
        row = _row(flag)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.database.lock, self.database.db.atomic():
            self.database.db.execute(
                f"INSERT OR REPLACE INTO flags ({columns}) VALUES ({marks})", list(row.values())
            )
