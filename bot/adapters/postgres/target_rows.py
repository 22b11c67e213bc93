"""The routers' rows per target in PostgreSQL, shared by the replicas: HAProxy's server roles
and last applied state, a webhook CD's last acknowledged state; the same tables and step
names as their SQLite migrations (in the router modules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.adapters.postgres.database import AdvisoryLock, PgMigrations, PostgresDatabase
from bot.adapters.sqlite.target_rows import KEY, key_of
from bot.domain.observations import Target
from bot.ports.target_rows import AbstractTargetRows

haproxy_migrations = PgMigrations("release-bot.haproxy")
haproxy_migrations.step(
    "m001_haproxy_targets",
    "CREATE TABLE haproxy_targets (service TEXT NOT NULL, env TEXT NOT NULL,"
    " region TEXT NOT NULL, stable_server TEXT NOT NULL, versions TEXT NOT NULL,"
    " applied TEXT NOT NULL, PRIMARY KEY (service, env, region))",
)
webhook_migrations = PgMigrations("release-bot.webhook")
webhook_migrations.step(
    "m001_webhook_state",
    "CREATE TABLE webhook_state (service TEXT NOT NULL, env TEXT NOT NULL,"
    " region TEXT NOT NULL, state TEXT NOT NULL, acknowledged_at TEXT NOT NULL,"
    " PRIMARY KEY (service, env, region))",
)


class PostgresTargetRows(AbstractTargetRows):
    def __init__(self, database: PostgresDatabase, table: str, columns: Sequence[str]) -> None:
        self.database = database
        self.lock = AdvisoryLock(database, f"release-bot.{table}")
        self.table, self.columns = table, tuple(columns)

    def get(self, target: Target) -> dict[str, str] | None:
        rows = self.database.rows(
            f"SELECT {', '.join(self.columns)} FROM {self.table}"
            " WHERE service = %s AND env = %s AND region = %s",
            key_of(target),
        )
        return {c: str(rows[0][c]) for c in self.columns} if rows else None

    def put(self, target: Target, values: Mapping[str, str]) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns)
        self.database.execute(
            f"INSERT INTO {self.table} ({', '.join((*KEY, *self.columns))})"
            f" VALUES ({', '.join(['%s'] * (len(KEY) + len(self.columns)))})"
            f" ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {updates}",
            [*key_of(target), *(values[c] for c in self.columns)],
        )
