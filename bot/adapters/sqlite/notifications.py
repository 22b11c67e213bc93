"""The record of notifications in SQLite: one row per release moment and target (unique, so a
moment planned twice is told once), with its outcome, last error and next attempt."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.domain.notify import Delivery, DeliveryStatus
from bot.ports.notifications import AbstractNotificationLog, PlannedDelivery

migrations = Migrations("release-bot.notifications")


@migrations()
def m001_notifications(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            release_id TEXT NOT NULL,
            event_id INTEGER NOT NULL,   -- the audit trail's event that is the moment
            moment TEXT NOT NULL,        -- started, completed, rolled_back, failed
            target TEXT NOT NULL,        -- who is told
            status TEXT NOT NULL,        -- pending, delivered, failed (given up)
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            next_attempt_at TEXT,
            delivered_at TEXT,
            reference TEXT,
            UNIQUE (event_id, target)
        )
        """
    )
    db.execute("CREATE INDEX notifications_due ON notifications (status, next_attempt_at)")
    db.execute("CREATE INDEX notifications_release ON notifications (release_id)")


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _delivery(row: dict[str, Any]) -> Delivery:
    return Delivery.model_validate(
        row
        | {"next_attempt_at": _at(row["next_attempt_at"]), "delivered_at": _at(row["delivered_at"])}
    )


class SqliteNotificationLog(AbstractNotificationLog):
    def __init__(self, database: Database) -> None:
        self.database = database

    def plan(self, planned: Iterable[PlannedDelivery], now: datetime) -> None:
        rows = [[p.release_id, p.event_id, p.moment, p.target, now.isoformat()] for p in planned]
        if not rows:
            return
        with self.database.transaction() as db:
            for row in rows:
                db.execute(
                    "INSERT OR IGNORE INTO notifications (release_id, event_id, moment, target,"
                    " status, next_attempt_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                    row,
                )

    def due(self, now: datetime, limit: int = 100) -> list[Delivery]:
        with self.database.lock:
            rows = self.database.db.query(
                "SELECT * FROM notifications WHERE status = 'pending' AND next_attempt_at <= ?"
                " ORDER BY id LIMIT ?",
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
        with self.database.transaction() as db:
            db.execute(
                "UPDATE notifications SET status = ?, attempts = ?, error = ?,"
                " next_attempt_at = ?, delivered_at = ?, reference = ? WHERE id = ?",
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
        with self.database.lock:
            rows = self.database.db.query(
                "SELECT * FROM notifications WHERE release_id = ? ORDER BY id", [release_id]
            )
            return [_delivery(r) for r in rows]
