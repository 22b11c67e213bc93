"""Uploaded evidence files in PostgreSQL: each file's bytes, its sha256, who sent it and
when, and what its parser read (as the SQLite adapter keeps them)."""

from __future__ import annotations

import json

from bot.adapters.postgres.database import PgMigrations, PostgresDatabase
from bot.adapters.sqlite.evidence import _file
from bot.domain.evidence import EvidenceFile
from bot.ports.evidence import AbstractEvidence

migrations = PgMigrations("release-bot.evidence")
migrations.step(
    "m001_evidence_files",
    "CREATE TABLE evidence_files (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " service TEXT NOT NULL, version TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
    " sha256 TEXT NOT NULL, size INTEGER NOT NULL, uploaded_by TEXT NOT NULL,"
    " uploaded_at TEXT NOT NULL, digest TEXT NOT NULL, summary TEXT NOT NULL,"
    " content BYTEA NOT NULL, UNIQUE (service, version, sha256, digest))",
)


class PostgresEvidence(AbstractEvidence):
    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def add(self, file: EvidenceFile, content: bytes) -> EvidenceFile:
        key = [file.service, file.version, file.sha256, file.digest or ""]
        with self.database.transaction() as conn:
            conn.execute(
                "INSERT INTO evidence_files (service, version, kind, name, sha256, size,"
                " uploaded_by, uploaded_at, digest, summary, content)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [file.service, file.version, file.kind, file.name, file.sha256, file.size,
                 file.uploaded_by, file.uploaded_at.isoformat(), file.digest or "",
                 json.dumps(file.summary, sort_keys=True), content],
            )  # fmt: skip
            row = conn.execute(
                "SELECT * FROM evidence_files WHERE service = %s AND version = %s"
                " AND sha256 = %s AND digest = %s",
                key,
            ).fetchone()
        assert row is not None  # inserted, or there already
        return _file(row)

    def files(self, service: str, version: str) -> list[EvidenceFile]:
        rows = self.database.rows(
            "SELECT * FROM evidence_files WHERE service = %s AND version = %s ORDER BY id",
            [service, version],
        )
        return [_file(row) for row in rows]
