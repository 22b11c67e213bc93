"""Per-window metric series of each release in PostgreSQL, as the SQLite adapter keeps them."""

from __future__ import annotations

from bot.adapters.postgres.database import PgMigrations, PostgresDatabase
from bot.adapters.sqlite.series import _point, series_row
from bot.domain.observations import WindowSample
from bot.ports.series import AbstractSeries, SeriesPoint

migrations = PgMigrations("release-bot.series")
migrations.step(
    "m001_series",
    # COLLATE "C": the fixed-width ISO 8601 text sorts in time order, as in SQLite
    'CREATE TABLE series (release_id TEXT NOT NULL, step INTEGER NOT NULL, "start" TEXT COLLATE'
    ' "C" NOT NULL, "end" TEXT COLLATE "C" NOT NULL, canary_requests INTEGER NOT NULL,'
    " canary_errors INTEGER NOT NULL, baseline_requests INTEGER NOT NULL,"
    " baseline_errors INTEGER NOT NULL, canary_p95_ms DOUBLE PRECISION,"
    " baseline_p95_ms DOUBLE PRECISION)",
    "CREATE INDEX series_release_step ON series (release_id, step)",
    'CREATE UNIQUE INDEX series_release_end ON series (release_id, "end")',
)


class PostgresSeries(AbstractSeries):
    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def add(self, release_id: str, step: int, sample: WindowSample) -> None:
        """Record one judged window; a window already recorded (same end) is left as it is."""
        row = series_row(release_id, step, sample)
        columns = ", ".join(f'"{name}"' for name in row)
        values = ", ".join(f"%({name})s" for name in row)
        with self.database.write() as conn:  # beside the tick's save, in its transaction
            conn.execute(
                f"INSERT INTO series ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING", row
            )

    def points(self, release_id: str, step: int | None = None) -> list[SeriesPoint]:
        sql = "SELECT * FROM series WHERE release_id = %s"
        params: list[object] = [release_id]
        if step is not None:
            sql += " AND step = %s"
            params.append(step)
        return [_point(r) for r in self.database.rows(sql + ' ORDER BY "start", "end"', params)]
