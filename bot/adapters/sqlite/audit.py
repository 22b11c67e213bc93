"""The audit trail's hash chain on SQLite: the columns and the chain head, the append the
store calls inside its transaction, and the verification and export.

The ``events`` triggers refuse UPDATE and DELETE, but anyone with the file can drop them or
insert a row; the chain (``bot.domain.audit``) is what makes such changes visible.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
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

migrations = Migrations("release-bot.audit")


@migrations()
def chain_events(db: sqlite_utils.Database) -> None:
    """Add the links to ``events`` and hash the events already there (no key: the next
    event written with one signs the chain)."""
    events = db.table("events")
    for column in ("prev_hash", "hash", "mac"):
        events.add_column(column, str)
    db.table("audit_head").create({"id": int, "last_id": int, "hash": str, "mac": str}, pk="id")
    rows = [dict(r) for r in db.query("SELECT * FROM events ORDER BY id")]
    if not rows:
        return
    # The append-only triggers refuse the backfill's UPDATE: set them aside in this
    # transaction and put the same ones back.
    triggers = [
        (str(t["name"]), str(t["sql"]))
        for t in db.query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
        )
    ]
    for name, _ in triggers:
        db.execute(f'DROP TRIGGER "{name}"')
    links = chain([_parsed(r) for r in rows], GENESIS, None)
    for row, (prev_hash, hash_, _mac) in zip(rows, links, strict=True):
        db.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?", [prev_hash, hash_, row["id"]]
        )
    for _, sql in triggers:
        db.execute(sql)
    _write_head(db, int(rows[-1]["id"]), links[-1][1], None)


def append_chained(
    db: sqlite_utils.Database, rows: list[dict[str, Any]], key: bytes | None
) -> None:
    """Insert ``rows`` (the stored columns) linked after the chain head, and move the head;
    the caller's transaction (which already holds the write lock) makes it one step."""
    head = db.execute("SELECT hash FROM audit_head WHERE id = 1").fetchone()
    links = chain([_parsed(r) for r in rows], head[0] if head else GENESIS, key)
    last_id = 0
    for row, (prev_hash, hash_, mac) in zip(rows, links, strict=True):
        cursor = db.execute(
            "INSERT INTO events (release_id, at, actor, action, details, data, prev_hash, "
            "hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row["release_id"], row["at"], row["actor"], row["action"], row["details"],
             row["data"], prev_hash, hash_, mac],
        )  # fmt: skip
        last_id = int(cursor.lastrowid or 0)
    if links:
        _write_head(db, last_id, links[-1][1], key)


def _write_head(db: sqlite_utils.Database, last_id: int, hash_: str, key: bytes | None) -> None:
    mac = head_mac(key, last_id, hash_) if key else None
    db.execute(
        "INSERT INTO audit_head (id, last_id, hash, mac) VALUES (1, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash, "
        "mac = excluded.mac",
        [last_id, hash_, mac],
    )


def _parsed(row: dict[str, Any]) -> dict[str, Any]:
    """The row with ``data`` read back from its stored JSON (hashed canonically)."""
    return {**row, "data": _data(row["data"])}


def _data(text: object) -> Any:
    try:
        return json.loads(str(text))
    except ValueError:  # not written by release-bot: hashed as the text it is
        return text


def audit_records(rows: list[dict[str, Any]]) -> list[AuditRecord]:
    """The stored events as the chain's records (the PostgreSQL trail reads the same rows)."""
    return [
        AuditRecord(
            id=int(r["id"]),
            release_id=str(r["release_id"]),
            at=str(r["at"]),
            actor=str(r["actor"]),
            action=str(r["action"]),
            details=str(r["details"]),
            data=_data(r["data"]),
            prev_hash=r["prev_hash"],
            hash=r["hash"],
            mac=r["mac"],
        )
        for r in rows
    ]


class SqliteAuditTrail(AbstractAuditTrail):
    def __init__(self, database: Database, key: bytes | None) -> None:
        self.database = database
        self.key = key

    def _records(self) -> tuple[list[AuditRecord], ChainHead | None]:
        db = self.database.db
        with self.database.lock, db.atomic():  # the events and their head as of one moment
            rows = list(db.query("SELECT * FROM events ORDER BY id"))
            heads = list(db.query("SELECT last_id, hash, mac FROM audit_head WHERE id = 1"))
        return audit_records(rows), ChainHead.model_validate(heads[0]) if heads else None

    def verify(self, release_id: str | None = None) -> AuditVerdict:
        records, head = self._records()
        return verify_chain(records, head, self.key, release_id)

    def export(self, release_id: str | None = None) -> list[AuditRecord]:
        records, _ = self._records()
        return [r for r in records if release_id is None or r.release_id == release_id]
