"""The record of notifications in PostgreSQL: one row per release moment and target (unique,
so a moment planned twice, by any replica, is told once), with its outcome and next attempt."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.adapters.postgres.database import PgMigrations, PostgresDatabase
from bot.adapters.sqlite.notifications import _delivery
from bot.domain.notify import Delivery, DeliveryStatus
from bot.ports.notifications import AbstractNotificationLog, PlannedDelivery

migrations = PgMigrations("release-bot.notifications")
migrations.step(
    "m001_notifications",
    "CREATE TABLE notifications (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " release_id TEXT NOT NULL, event_id BIGINT NOT NULL, moment TEXT NOT NULL,"
    " target TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    ' error TEXT, next_attempt_at TEXT COLLATE "C", delivered_at TEXT, reference TEXT,'
    " UNIQUE (event_id, target))",
    "CREATE INDEX notifications_due ON notifications (status, next_attempt_at)",
    "CREATE INDEX notifications_release ON notifications (release_id)",
)


class PostgresNotificationLog(AbstractNotificationLog):
    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def plan(self, planned: Iterable[PlannedDelivery], now: datetime) -> None:
        rows = [[p.release_id, p.event_id, p.moment, p.target, now.isoformat()] for p in planned]
        if not rows:
            return
        with self.database.transaction() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO notifications (release_id, event_id, moment, target, status,"
                " next_attempt_at) VALUES (%s, %s, %s, %s, 'pending', %s)"
                " ON CONFLICT (event_id, target) DO NOTHING",
                rows,
            )

    def due(self, now: datetime, limit: int = 100) -> list[Delivery]:
        rows = self.database.rows(
            "SELECT * FROM notifications WHERE status = 'pending' AND next_attempt_at <= %s"
            " ORDER BY id LIMIT %s",
            [now.isoformat(), limit],
        )
        return [_delivery(r) for r in rows]

    def record(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        attempts: int,
        error: str | None,
        next_attempt_at: datetime | None,
        delivered_at: datetime | None,
        reference: str | None,
    ) -> None:
        self.database.execute(
            "UPDATE notifications SET status = %s, attempts = %s, error = %s,"
            " next_attempt_at = %s, delivered_at = %s, reference = %s WHERE id = %s",
            [
                status,
                attempts,
                error,
                next_attempt_at.isoformat() if next_attempt_at else None,
                delivered_at.isoformat() if delivered_at else None,
                reference,
                delivery_id,
            ],
        )

    def for_release(self, release_id: str) -> list[Delivery]:
        rows = self.database.rows(
            "SELECT * FROM notifications WHERE release_id = %s ORDER BY id", [release_id]
        )
        return [_delivery(r) for r in rows]
