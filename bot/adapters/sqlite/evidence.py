"""Uploaded evidence files in the shared SQLite database: each file's bytes, its sha256, who
sent it and when, and the figures its parser read."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.domain.evidence import EvidenceFile
from bot.ports.evidence import AbstractEvidence

migrations = Migrations("release-bot.evidence")


@migrations()
def m001_evidence_files(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE evidence_files (
            id INTEGER PRIMARY KEY,
            service TEXT NOT NULL,
            version TEXT NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            uploaded_by TEXT NOT NULL,
            uploaded_at TEXT NOT NULL,  -- ISO 8601
            digest TEXT NOT NULL,       -- the artifact digest it is bound to; '' for none
            summary TEXT NOT NULL,      -- JSON: what the parser read
            content BLOB NOT NULL,
            UNIQUE (service, version, sha256, digest)
        )
        """
    )


class SqliteEvidence(AbstractEvidence):
    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, file: EvidenceFile, content: bytes) -> EvidenceFile:
        with self.database.lock, self.database.db.atomic():
            self.database.db.execute(
                "INSERT OR IGNORE INTO evidence_files (service, version, kind, name, sha256, size,"
                " uploaded_by, uploaded_at, digest, summary, content)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    file.service,
                    file.version,
                    file.kind,
                    file.name,
                    file.sha256,
                    file.size,
                    file.uploaded_by,
                    file.uploaded_at.isoformat(),
                    file.digest or "",  # '' not NULL: UNIQUE treats NULLs as all different
                    json.dumps(file.summary, sort_keys=True),
                    content,
                ],
            )
            row = next(
                self.database.db.query(
                    "SELECT * FROM evidence_files WHERE service = ? AND version = ?"
                    " AND sha256 = ? AND digest = ?",
                    [file.service, file.version, file.sha256, file.digest or ""],
                )
            )
        return _file(row)

    def files(self, service: str, version: str) -> list[EvidenceFile]:
        with self.database.lock:
            rows = list(
                self.database.db.query(
                    "SELECT * FROM evidence_files WHERE service = ? AND version = ? ORDER BY id",
                    [service, version],
                )
            )
        return [_file(row) for row in rows]


def _file(row: dict[str, Any]) -> EvidenceFile:
    return EvidenceFile(
        id=row["id"],
        service=row["service"],
        version=row["version"],
        kind=row["kind"],
        name=row["name"],
        sha256=row["sha256"],
        size=row["size"],
        uploaded_by=row["uploaded_by"],
        uploaded_at=datetime.fromisoformat(row["uploaded_at"]),
        digest=row["digest"] or None,
        summary=json.loads(row["summary"]),
    )
