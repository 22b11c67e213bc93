"""Evidence from CI and the registry, kept in the shared SQLite database (the embedded
default, fed by ``SimulatedCI`` or a CI webhook)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.domain.observations import ArtifactRecord, CheckEvidence, latest_by_name
from bot.ports.checks import AbstractChecks

migrations = Migrations("release-bot.checks")


@migrations()
def m001_artifacts_and_check_results(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE artifacts (
            image TEXT PRIMARY KEY,
            digest TEXT NOT NULL,
            build_id TEXT NOT NULL,
            signed INTEGER NOT NULL,
            sbom_attached INTEGER NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE check_results (
            id INTEGER PRIMARY KEY,
            service TEXT NOT NULL,
            version TEXT NOT NULL,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            details TEXT NOT NULL,
            passed INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            recorded_at TEXT NOT NULL  -- ISO 8601
        )
        """
    )
    db.execute("CREATE INDEX check_results_version ON check_results (service, version, name)")


class SqliteChecks(AbstractChecks):
    def __init__(self, database: Database) -> None:
        self.database = database

    def artifact(self, image: str) -> ArtifactRecord | None:
        with self.database.lock:
            rows = list(self.database.db.query("SELECT * FROM artifacts WHERE image = ?", [image]))
        return _artifact(rows[0]) if rows else None

    def record_artifact(self, record: ArtifactRecord) -> None:
        with self.database.lock, self.database.db.atomic():
            self.database.db.execute(
                "INSERT OR REPLACE INTO artifacts (image, digest, build_id, signed, sbom_attached)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    record.image,
                    record.digest,
                    record.build_id,
                    int(record.signed),
                    int(record.sbom_attached),
                ],
            )

    def results(self, service: str, version: str) -> list[CheckEvidence]:
        with self.database.lock:
            rows = list(
                self.database.db.query(
                    "SELECT * FROM check_results WHERE service = ? AND version = ? ORDER BY id",
                    [service, version],
                )
            )
        return latest_by_name([_evidence(row) for row in rows])

    def record(self, service: str, version: str, evidence: CheckEvidence) -> None:
        with self.database.lock, self.database.db.atomic():
            self.database.db.execute(
                "INSERT INTO check_results (service, version, name, status, details, passed,"
                " failed, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    service,
                    version,
                    evidence.name,
                    evidence.status,
                    evidence.details,
                    evidence.passed,
                    evidence.failed,
                    evidence.recorded_at.isoformat(),
                ],
            )


def _artifact(row: dict[str, Any]) -> ArtifactRecord:
    return ArtifactRecord(
        image=row["image"],
        digest=row["digest"],
        build_id=row["build_id"],
        signed=bool(row["signed"]),
        sbom_attached=bool(row["sbom_attached"]),
    )


def _evidence(row: dict[str, Any]) -> CheckEvidence:
    return CheckEvidence(
        name=row["name"],
        status=row["status"],
        details=row["details"],
        passed=row["passed"],
        failed=row["failed"],
        recorded_at=datetime.fromisoformat(row["recorded_at"]),
    )
