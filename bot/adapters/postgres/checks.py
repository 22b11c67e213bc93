"""Evidence from CI and the registry in PostgreSQL, as the SQLite adapter keeps it."""

from __future__ import annotations

from bot.adapters.postgres.database import PgMigrations, PostgresDatabase
from bot.adapters.sqlite.checks import _artifact, _evidence
from bot.domain.observations import ArtifactRecord, CheckEvidence, latest_by_name
from bot.ports.checks import AbstractChecks

migrations = PgMigrations("release-bot.checks")
migrations.step(
    "m001_artifacts_and_check_results",
    "CREATE TABLE artifacts (image TEXT PRIMARY KEY, digest TEXT NOT NULL,"
    " build_id TEXT NOT NULL, signed INTEGER NOT NULL, sbom_attached INTEGER NOT NULL)",
    "CREATE TABLE check_results (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " service TEXT NOT NULL, version TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,"
    " details TEXT NOT NULL, passed INTEGER NOT NULL, failed INTEGER NOT NULL,"
    " recorded_at TEXT NOT NULL)",
    "CREATE INDEX check_results_version ON check_results (service, version, name)",
)


class PostgresChecks(AbstractChecks):
    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def artifact(self, image: str) -> ArtifactRecord | None:
        rows = self.database.rows("SELECT * FROM artifacts WHERE image = %s", [image])
        return _artifact(rows[0]) if rows else None

    def record_artifact(self, record: ArtifactRecord) -> None:
        self.database.execute(
            "INSERT INTO artifacts (image, digest, build_id, signed, sbom_attached)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (image) DO UPDATE SET"
            " digest = excluded.digest, build_id = excluded.build_id, signed = excluded.signed,"
            " sbom_attached = excluded.sbom_attached",
            [record.image, record.digest, record.build_id, int(record.signed),
             int(record.sbom_attached)],
        )  # fmt: skip

    def results(self, service: str, version: str) -> list[CheckEvidence]:
        rows = self.database.rows(
            "SELECT * FROM check_results WHERE service = %s AND version = %s ORDER BY id",
            [service, version],
        )
        return latest_by_name([_evidence(row) for row in rows])

    def record(self, service: str, version: str, evidence: CheckEvidence) -> None:
        self.database.execute(
            "INSERT INTO check_results (service, version, name, status, details, passed,"
            " failed, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [service, version, evidence.name, evidence.status, evidence.details,
             evidence.passed, evidence.failed, evidence.recorded_at.isoformat()],
        )  # fmt: skip
