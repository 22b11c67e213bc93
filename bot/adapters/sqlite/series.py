"""Per-window metric series of each release, kept so a stage can be charted after the fact.

The judge only keeps what it needs to decide; the thread wants to show how a stage went. One
row per judged window: counts for both cohorts and each cohort's p95, computed from the
window's own latency buckets when it is recorded (the buckets themselves are not kept).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.domain.histogram import quantile_ms
from bot.domain.observations import CohortSample, WindowSample
from bot.ports.series import AbstractSeries, SeriesPoint

migrations = Migrations("release-bot.series")


@migrations()
def m001_series(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE series (
            release_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            "start" TEXT NOT NULL,    -- ISO 8601, UTC, fixed width so text order is time order
            "end" TEXT NOT NULL,
            canary_requests INTEGER NOT NULL,
            canary_errors INTEGER NOT NULL,
            baseline_requests INTEGER NOT NULL,
            baseline_errors INTEGER NOT NULL,
            canary_p95_ms REAL,       -- NULL: no canary requests in the window
            baseline_p95_ms REAL      -- NULL: no baseline requests in the window
        )
        """
    )
    db.execute("CREATE INDEX series_release_step ON series (release_id, step)")
    # A tick redone after a crash records the same window again: keep it once.
    db.execute('CREATE UNIQUE INDEX series_release_end ON series (release_id, "end")')


def _ts(moment: datetime) -> str:
    """Fixed-width ISO UTC, so equal instants give equal keys and text order is time order.

    A naive datetime is taken as UTC (the bot's clocks are UTC), not as local time.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _p95(cohort: CohortSample) -> float | None:
    if cohort.requests == 0:
        return None
    return quantile_ms(cohort.latency_buckets, 0.95)


def _point(row: dict[str, Any]) -> SeriesPoint:
    return SeriesPoint(
        step=row["step"],
        start=datetime.fromisoformat(row["start"]),
        end=datetime.fromisoformat(row["end"]),
        canary_requests=row["canary_requests"],
        canary_errors=row["canary_errors"],
        baseline_requests=row["baseline_requests"],
        baseline_errors=row["baseline_errors"],
        canary_p95_ms=row["canary_p95_ms"],
        baseline_p95_ms=row["baseline_p95_ms"],
    )


def series_row(release_id: str, step: int, sample: WindowSample) -> dict[str, object]:
    """One judged window's row (the PostgreSQL series writes the same)."""
    return {
        "release_id": release_id,
        "step": step,
        "start": _ts(sample.start),
        "end": _ts(sample.end),
        "canary_requests": sample.canary.requests,
        "canary_errors": sample.canary.errors,
        "baseline_requests": sample.baseline.requests,
        "baseline_errors": sample.baseline.errors,
        "canary_p95_ms": _p95(sample.canary),
        "baseline_p95_ms": _p95(sample.baseline),
    }


class SqliteSeries(AbstractSeries):
    """The ``series`` table in the shared database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, release_id: str, step: int, sample: WindowSample) -> None:
        """Record one judged window; a window already recorded (same end) is left as it is."""
        row = series_row(release_id, step, sample)
        columns = ", ".join(f'"{name}"' for name in row)
        marks = ", ".join("?" for _ in row)
        with self.database.write() as db:
            db.execute(
                f"INSERT OR IGNORE INTO series ({columns}) VALUES ({marks})", list(row.values())
            )

    def points(self, release_id: str, step: int | None = None) -> list[SeriesPoint]:
        """The release's windows in time order, all steps or only ``step``."""
        sql = "SELECT * FROM series WHERE release_id = ?"
        params: list[object] = [release_id]
        if step is not None:
            sql += " AND step = ?"
            params.append(step)
        sql += ' ORDER BY "start", "end"'
        with self.database.lock:
            rows = list(self.database.db.query(sql, params))
        return [_point(row) for row in rows]
