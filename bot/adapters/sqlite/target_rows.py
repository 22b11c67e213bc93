"""A router's rows per target in SQLite (``haproxy_targets``, ``webhook_state``): the router
module migrates its table; this reads and writes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.adapters.sqlite.database import Database
from bot.domain.observations import Target
from bot.ports.target_rows import AbstractTargetRows

KEY = ("service", "env", "region")


def key_of(target: Target) -> list[str]:
    return [target.service, target.env, target.region]


class SqliteTargetRows(AbstractTargetRows):
    def __init__(self, database: Database, table: str, columns: Sequence[str]) -> None:
        self.database = database
        self.lock = database.lock
        self.table, self.columns = table, tuple(columns)

    def get(self, target: Target) -> dict[str, str] | None:
        with self.database.lock:
            row = self.database.db.execute(
                f"SELECT {', '.join(self.columns)} FROM {self.table}"
                " WHERE service = ? AND env = ? AND region = ?",
                key_of(target),
            ).fetchone()
        return None if row is None else dict(zip(self.columns, row, strict=True))

    def put(self, target: Target, values: Mapping[str, str]) -> None:
        with self.database.transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO {self.table} ({', '.join((*KEY, *self.columns))})"
                f" VALUES ({', '.join('?' * (len(KEY) + len(self.columns)))})",
                [*key_of(target), *(values[c] for c in self.columns)],
            )
