"""Feature flags in PostgreSQL, one row per flag name, stored as the SQLite adapter stores them."""

from __future__ import annotations

from bot.adapters.postgres.database import PgMigrations, PostgresDatabase
from bot.adapters.sqlite.flags import _flag, _row
from bot.domain.flags import FlagState
from bot.ports.flags import AbstractFlags

migrations = PgMigrations("release-bot.flags")
migrations.step(
    "m001_flags",
    "CREATE TABLE flags (name TEXT PRIMARY KEY, service TEXT NOT NULL, type TEXT NOT NULL,"
    " percentage DOUBLE PRECISION NOT NULL, kill_switch INTEGER NOT NULL,"
    " killed INTEGER NOT NULL, rules TEXT NOT NULL, segments TEXT NOT NULL,"
    " overrides TEXT NOT NULL)",
)


class PostgresFlags(AbstractFlags):
    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def get(self, name: str) -> FlagState | None:
        rows = self.database.rows("SELECT * FROM flags WHERE name = %s", [name])
        return _flag(rows[0]) if rows else None

    def put(self, flag: FlagState) -> None:
        row = _row(flag)
        columns = ", ".join(row)
        values = ", ".join(f"%({name})s" for name in row)
        updates = ", ".join(f"{name} = excluded.{name}" for name in row if name != "name")
        self.database.execute(
            f"INSERT INTO flags ({columns}) VALUES ({values})"
            f" ON CONFLICT (name) DO UPDATE SET {updates}",
            row,
        )
