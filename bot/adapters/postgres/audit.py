"""The audit trail's hash chain on PostgreSQL: the same columns, links and head as on SQLite
(``bot.domain.audit`` hashes the same text), appended under a transaction-scoped advisory
lock so two replicas never link two events to the same head."""

from __future__ import annotations

from typing import Any

import psycopg

from bot.adapters.postgres.database import PgMigrations, PostgresDatabase, Row
from bot.adapters.sqlite.audit import _parsed, audit_records
from bot.domain.audit import (
    GENESIS,
    AuditRecord,
    AuditVerdict,
    ChainHead,
    chain,
    head_mac,
    verify_chain,
)
from bot.ports.audit import AbstractAuditTrail

migrations = PgMigrations("release-bot.audit")
# On PostgreSQL every event is written by a chaining release-bot: nothing to hash afterwards.
migrations.step(
    "chain_events",
    "ALTER TABLE events ADD COLUMN prev_hash TEXT, ADD COLUMN hash TEXT, ADD COLUMN mac TEXT",
    "CREATE TABLE audit_head (id INTEGER PRIMARY KEY, last_id BIGINT, hash TEXT, mac TEXT)",
)

CHAIN_LOCK = "release-bot audit chain"  # the advisory lock every append takes


def append_chained(
    conn: psycopg.Connection[Row], rows: list[dict[str, Any]], key: bytes | None
) -> None:
    """Insert ``rows`` linked after the chain head and move the head, in the caller's
    transaction; the advisory lock (held to its end) makes appends take turns."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [CHAIN_LOCK])
    head = conn.execute("SELECT hash FROM audit_head WHERE id = 1").fetchone()
    links = chain([_parsed(r) for r in rows], head["hash"] if head else GENESIS, key)
    last_id = 0
    for row, (prev_hash, hash_, mac) in zip(rows, links, strict=True):
        inserted = conn.execute(
            "INSERT INTO events (release_id, at, actor, action, details, data, prev_hash,"
            " hash, mac) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [row["release_id"], row["at"], row["actor"], row["action"], row["details"],
             row["data"], prev_hash, hash_, mac],
        ).fetchone()  # fmt: skip
        last_id = int(inserted["id"]) if inserted else 0
    if links:
        mac = head_mac(key, last_id, links[-1][1]) if key else None
        conn.execute(
            "INSERT INTO audit_head (id, last_id, hash, mac) VALUES (1, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id,"
            " hash = excluded.hash, mac = excluded.mac",
            [last_id, links[-1][1], mac],
        )


class PostgresAuditTrail(AbstractAuditTrail):
    def __init__(self, database: PostgresDatabase, key: bytes | None) -> None:
        self.database = database
        self.key = key

    def _records(self) -> tuple[list[AuditRecord], ChainHead | None]:
        with self.database.transaction(snapshot=True) as conn:  # events and head of one moment
            rows = conn.execute("SELECT * FROM events ORDER BY id").fetchall()
            heads = conn.execute(
                "SELECT last_id, hash, mac FROM audit_head WHERE id = 1"
            ).fetchall()
        return audit_records(rows), ChainHead.model_validate(heads[0]) if heads else None

    def verify(self, release_id: str | None = None) -> AuditVerdict:
        records, head = self._records()
        return verify_chain(records, head, self.key, release_id)

    def export(self, release_id: str | None = None) -> list[AuditRecord]:
        records, _ = self._records()
        return [r for r in records if release_id is None or r.release_id == release_id]
