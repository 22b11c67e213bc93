"""The release store on SQLite: release state, the append-only audit trail, the chat outbox.

A release row holds its state as JSON with a ``revision``; ``save`` refuses a stale write, so
two ticks (or a tick and a button) can never both move the same release. Events are appended
in the same transaction as the state, and triggers refuse to change or delete them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import sqlite_utils
from pydantic import ValidationError
from sqlite_utils import Migrations

from bot.adapters.sqlite.audit import append_chained
from bot.adapters.sqlite.database import Database
from bot.domain.release import ACTIVE, Event, Release
from bot.ports.llm import LlmCall
from bot.ports.store import (
    AbstractReleaseStore,
    AlreadyActive,
    DeliveryFailure,
    ReleaseNotFound,
    StaleRelease,
    StoredEvent,
)

migrations = Migrations("release-bot.store")


@migrations()
def create_releases(db: sqlite_utils.Database) -> None:
    db.table("releases").create(
        {
            "id": str,
            "service": str,
            "version": str,
            "status": str,
            "active": int,
            "revision": int,
            "created_at": str,
            "updated_at": str,
            "state": str,
        },
        pk="id",
    )
    db.table("releases").create_index(["service", "active"])
    db.table("events").create(
        {
            "id": int,
            "release_id": str,
            "at": str,
            "actor": str,
            "action": str,
            "details": str,
            "data": str,
        },
        pk="id",
        foreign_keys=[("release_id", "releases", "id")],
    )
    db.table("events").create_index(["release_id", "id"])
    db.execute(
        "CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
    )
    db.table("deliveries").create({"event_id": int, "delivered_at": str}, pk="event_id")
    db.table("clock").create({"id": int, "now": str}, pk="id")


@migrations()
def add_narration(db: sqlite_utils.Database) -> None:
    # Releases whose agent explanation is due (a stage boundary, an anomaly, the end), and
    # every LLM call with what it cost, per release.
    db.table("releases").add_column("narrate", int, not_null_default=0)
    db.table("releases").create_index(["narrate"])
    db.table("llm_calls").create(
        {
            "id": int,
            "release_id": str,
            "purpose": str,
            "model": str,
            "request_id": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "stop_reason": str,
            "milliseconds": int,
            "at": str,
        },
        pk="id",
    )
    db.table("llm_calls").create_index(["release_id"])


# Release state before ``observed_apart``: what a release saw (gate verdicts, windows,
# logs…) and its pause were top-level fields; three running sums nothing read, and
# ``rejected`` (the audit trail says it), are gone.
_OBSERVED = ("checks", "artifacts", "windows", "user_requests", "baseline_history",
             "canary_error_rates", "logs", "traces", "verifications")  # fmt: skip
_DROPPED = ("step_canary", "step_baseline", "release_canary", "rejected", "pause_reason",
            "paused_by", "paused_at")  # fmt: skip


def observed_apart_state(state: dict[str, object]) -> dict[str, object]:
    """A stored release state as ``observed_apart`` rewrites it; a new one as it is."""
    if "observed" in state:
        return state
    out = {k: v for k, v in state.items() if k not in _OBSERVED + _DROPPED}
    out["observed"] = {k: state[k] for k in _OBSERVED if k in state}
    # A step's requests now add up window by window from its start; before, they were copied
    # from the step's running sum, which a resumed step had reset to zero already.
    index, steps, sums = state.get("step_index"), state.get("steps"), state.get("step_canary")
    if isinstance(index, int) and isinstance(steps, list) and 0 <= index < len(steps):
        requests = sums.get("requests", 0) if isinstance(sums, dict) else 0
        out["steps"] = [
            {**step, "requests": requests} if i == index else step for i, step in enumerate(steps)
        ]
    reason = state.get("pause_reason")
    out["paused"] = (
        {
            "reason": reason,
            "by": state.get("paused_by") or "release-bot",
            "at": state.get("paused_at") or state["created_at"],
        }
        if reason is not None
        else None
    )
    return out


@migrations()
def observed_apart(db: sqlite_utils.Database) -> None:
    for row in list(db.query("SELECT id, state FROM releases")):
        state = observed_apart_state(json.loads(row["state"]))
        db.execute("UPDATE releases SET state = ? WHERE id = ?", [json.dumps(state), row["id"]])


ONE_ACTIVE_INDEX = "releases_one_active_per_service"


@migrations()
def one_active_per_service(db: sqlite_utils.Database) -> None:
    """At most one active release per service, held by the database itself (a check before
    the insert let two commands sent together both start).

    A database from before may already hold two active releases of one service: all but
    the oldest are marked ``duplicate_active`` and left out of the index, so the file still
    opens and they finish as they are; the mark lapses when they end (``save``).
    """
    db.table("releases").add_column("duplicate_active", int, not_null_default=0)
    db.execute(
        "UPDATE releases SET duplicate_active = 1 WHERE active = 1 AND EXISTS ("
        " SELECT 1 FROM releases AS older WHERE older.service = releases.service"
        " AND older.active = 1 AND (older.created_at, older.id) < (releases.created_at, releases.id))"
    )
    db.execute(
        f"CREATE UNIQUE INDEX {ONE_ACTIVE_INDEX} ON releases(service) "
        "WHERE active = 1 AND duplicate_active = 0"
    )


def _one_active_refused(exc: sqlite3.IntegrityError) -> bool:
    return ONE_ACTIVE_INDEX in str(exc) or "releases.service" in str(exc)


@migrations()
def add_delivery_failures(db: sqlite_utils.Database) -> None:
    # The threads the chat refused: the outbox retries each with backoff, the others go on.
    db.table("delivery_failures").create(
        {"release_id": str, "failures": int, "error": str, "retry_at": str}, pk="release_id"
    )


@migrations()
def add_due_at(db: sqlite_utils.Database) -> None:
    # When the tick next has work on a release (unix seconds; NULL: at every tick): a tick
    # reads only the releases due, not every active one.
    db.execute("ALTER TABLE releases ADD COLUMN due_at REAL")
    db.execute("CREATE INDEX releases_active_due ON releases (active, due_at)")


# ``releases.unconverged``: 0 once an ended release's router and flags follow it.
UNCONVERGED = 1  # from the save that ends it: its flags and router still to follow
FLAGS_CONVERGED = 2  # its flags follow it; its router not yet


@migrations()
def add_unconverged(db: sqlite_utils.Database) -> None:
    # Set by the save that ends a release until its router and flags follow it: what a
    # process killed in between leaves for the leader to finish (the rows before count as done).
    db.execute("ALTER TABLE releases ADD COLUMN unconverged INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX releases_unconverged ON releases (unconverged)")


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def release_row(release: Release, due_at: datetime | None = None) -> dict[str, object]:
    """A release's row (the PostgreSQL store writes the same)."""
    return {
        "id": release.id,
        "service": release.request.service,
        "version": release.version,
        "status": release.status,
        "active": int(release.status in ACTIVE),
        "narrate": int(bool(release.narration and release.narration.due)),
        "revision": release.revision,
        "created_at": _ts(release.created_at),
        "updated_at": _ts(datetime.now(UTC)),
        "state": release.model_dump_json(),
        "due_at": None if due_at is None else due_at.timestamp(),
    }


def event_rows(release_id: str, events: list[Event]) -> list[dict[str, Any]]:
    """New events as the stored columns the chain hashes."""
    return [
        {
            "release_id": release_id,
            "at": _ts(e.at),
            "actor": e.actor,
            "action": e.action,
            "details": e.details,
            "data": json.dumps(e.data, default=str),
        }
        for e in events
    ]


class SqliteReleaseStore(AbstractReleaseStore):
    def __init__(self, database: Database, audit_key: bytes | None = None) -> None:
        self.database = database
        self.audit_key = audit_key  # signs the audit chain (RELEASE_BOT_AUDIT_KEY)

    @property
    def db(self) -> sqlite_utils.Database:
        return self.database.db  # this thread's connection

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        with self.database.transaction():  # BEGIN IMMEDIATE: waits for other processes
            yield

    # -- releases -------------------------------------------------------------------------------

    def add(self, release: Release) -> None:
        service = release.request.service
        with self.unit_of_work():
            row = self._row(release)
            # An earlier active release left out of the index (``one_active_per_service``)
            # refuses too; under the write lock nothing can start between this and the insert.
            if row["active"] and self.active_for_service(service):
                raise AlreadyActive(service)
            try:
                self.db.table("releases").insert(row)
            except sqlite3.IntegrityError as exc:
                if _one_active_refused(exc):
                    raise AlreadyActive(service) from exc
                raise
            self._append(release)

    def get(self, release_id: str) -> Release:
        # A plain SELECT: the tick reads every active release, and sqlite-utils' rows_where
        # builds its query and a dict of every column on each call.
        row = self.db.execute("SELECT state FROM releases WHERE id = ?", [release_id]).fetchone()
        if row is None:
            raise ReleaseNotFound(f"no release {release_id!r}; `release-bot list` shows them")
        try:
            return Release.model_validate_json(row[0])
        except ValidationError:  # written by a process of the version before observed_apart
            return Release.model_validate(observed_apart_state(json.loads(row[0])))

    def revision(self, release_id: str) -> int:
        row = self.db.execute("SELECT revision FROM releases WHERE id = ?", [release_id]).fetchone()
        if row is None:
            raise ReleaseNotFound(f"no release {release_id!r}; `release-bot list` shows them")
        return int(row[0])

    def save(self, release: Release, due_at: datetime | None = None) -> None:
        """Write the new state and its events; refuse if someone else saved in between."""
        with self.database.write():  # StaleRelease and AlreadyActive refuse before any write
            expected = release.revision
            release.revision = expected + 1
            row = release_row(release, due_at)
            try:
                # an ended release loses its ``duplicate_active`` mark: never active again beside another
                cursor = self.db.execute(
                    "UPDATE releases SET status=?, active=?, narrate=?, revision=?, updated_at=?, "
                    "state=?, due_at=?, duplicate_active = duplicate_active * ?, "
                    "unconverged = CASE WHEN active = 1 AND ? = 0 THEN 1 ELSE unconverged END "
                    "WHERE id=? AND revision=?",
                    [row["status"], row["active"], row["narrate"], row["revision"],
                     row["updated_at"], row["state"], row["due_at"], row["active"],
                     row["active"], release.id, expected],
                )  # fmt: skip
            except sqlite3.IntegrityError as exc:
                release.revision = expected
                if _one_active_refused(exc):
                    raise AlreadyActive(release.request.service) from exc
                raise
            if cursor.rowcount != 1:
                release.revision = expected
                raise StaleRelease(f"{release.id} changed since it was read")
            self._append(release)

    def _row(self, release: Release) -> dict[str, object]:
        return release_row(release)

    def _append(self, release: Release) -> None:
        events = release.collect_events()
        if events:
            # Each event linked to the one before it (inside this unit of work's transaction).
            append_chained(self.db, event_rows(release.id, events), self.audit_key)

    def active_ids(self) -> list[str]:
        rows = self.db.execute("SELECT id FROM releases WHERE active = 1 ORDER BY created_at")
        return [r[0] for r in rows.fetchall()]

    def unconverged(self, now: datetime) -> dict[str, bool]:
        rows = self.db.execute(
            "SELECT id, unconverged FROM releases WHERE unconverged > 0 "
            "AND (due_at IS NULL OR due_at <= ?) ORDER BY created_at",
            [now.timestamp()],
        )
        return {r[0]: r[1] == UNCONVERGED for r in rows.fetchall()}

    def mark_converged(self, release_id: str, *, flags_only: bool = False) -> None:
        done, was = (FLAGS_CONVERGED, UNCONVERGED) if flags_only else (0, None)
        with self.database.write() as db:
            db.execute(
                "UPDATE releases SET unconverged = ? WHERE id = ? AND unconverged = coalesce(?, unconverged)",
                [done, release_id, was],
            )

    def defer_converge(self, release_id: str, until: datetime) -> None:
        with self.database.write() as db:
            db.execute(
                "UPDATE releases SET due_at = ? WHERE id = ? AND unconverged > 0",
                [until.timestamp(), release_id],
            )

    def due_ids(self, now: datetime) -> list[str]:
        rows = self.db.execute(
            "SELECT id FROM releases WHERE active = 1 AND (due_at IS NULL OR due_at <= ?) "
            "ORDER BY created_at",
            [now.timestamp()],
        )
        return [r[0] for r in rows.fetchall()]

    def narration_due_ids(self) -> list[str]:
        return [
            r["id"]
            for r in self.db.table("releases").rows_where("narrate = 1", order_by="created_at")
        ]

    def record_llm_calls(self, release_id: str | None, calls: Iterable[LlmCall]) -> None:
        """``release_id`` None: calls that made no release (a dry run, an unreadable or
        refused request); counted all the same."""
        rows = [{"release_id": release_id, **asdict(c), "at": _ts(c.at)} for c in calls]
        if rows:
            with self.unit_of_work():
                self.db.table("llm_calls").insert_all(rows)

    def llm_calls(self, release_id: str | None = None) -> list[dict[str, object]]:
        where, args = ("release_id = ?", [release_id]) if release_id else (None, [])
        return list(self.db.table("llm_calls").rows_where(where, args, order_by="id"))

    def active_by_status(self) -> dict[str, int]:
        rows = self.db.query(
            "SELECT status, count(*) AS n FROM releases WHERE active = 1 GROUP BY status"
        )
        return {str(r["status"]): int(r["n"]) for r in rows}

    def active_for_service(self, service: str) -> list[str]:
        return [
            r["id"]
            for r in self.db.table("releases").rows_where("active = 1 AND service = ?", [service])
        ]

    def listing(self, service: str | None = None, limit: int = 50) -> list[dict[str, object]]:
        where, args = ("service = ?", [service]) if service else (None, [])
        return [
            {k: r[k] for k in ("id", "service", "version", "status", "created_at", "updated_at")}
            for r in self.db.table("releases").rows_where(
                where, args, order_by="created_at desc, id desc", limit=limit
            )
        ]

    # -- events and the chat outbox -------------------------------------------------------------

    def events(self, release_id: str) -> list[StoredEvent]:
        return [
            self._event(r)
            for r in self.db.table("events").rows_where(
                "release_id = ?", [release_id], order_by="id"
            )
        ]

    def undelivered(
        self, limit: int = 500, excluding: Collection[str] = (), release_id: str | None = None
    ) -> list[StoredEvent]:
        skipped = list(excluding)
        only, args = ("AND e.release_id = ? ", [release_id]) if release_id else ("", [])
        rows = self.db.query(
            "SELECT e.* FROM events e LEFT JOIN deliveries d ON d.event_id = e.id "
            f"WHERE d.event_id IS NULL {only}"
            f"AND e.release_id NOT IN ({', '.join('?' * len(skipped))}) ORDER BY e.id LIMIT ?",
            [*args, *skipped, limit],
        )
        return [self._event(r) for r in rows]

    def mark_delivered(self, event_ids: list[int], at: datetime) -> None:
        with self.unit_of_work():
            self.db.table("deliveries").insert_all(
                ({"event_id": i, "delivered_at": _ts(at)} for i in event_ids), ignore=True
            )

    def delivered_count(self, release_id: str) -> int:
        rows = self.db.query(
            "SELECT count(*) AS n FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE e.release_id = ?",
            [release_id],
        )
        return int(next(rows)["n"])

    def delivery_failures(self) -> dict[str, DeliveryFailure]:
        return {
            str(r["release_id"]): DeliveryFailure(
                release_id=str(r["release_id"]),
                failures=int(r["failures"]),
                error=str(r["error"]),
                retry_at=datetime.fromisoformat(str(r["retry_at"])),
            )
            for r in self.db.table("delivery_failures").rows
        }

    def record_delivery_failure(self, failure: DeliveryFailure) -> None:
        with self.unit_of_work():
            self.db.table("delivery_failures").upsert(
                {
                    "release_id": failure.release_id,
                    "failures": failure.failures,
                    "error": failure.error,
                    "retry_at": _ts(failure.retry_at),
                },
                pk="release_id",
            )

    def clear_delivery_failure(self, release_id: str) -> None:
        with self.unit_of_work():
            self.db.execute("DELETE FROM delivery_failures WHERE release_id = ?", [release_id])

    @staticmethod
    def _event(row: dict[str, object]) -> StoredEvent:
        return StoredEvent(
            id=int(str(row["id"])),
            release_id=str(row["release_id"]),
            at=datetime.fromisoformat(str(row["at"])),
            actor=str(row["actor"]),
            action=str(row["action"]),
            details=str(row["details"]),
            data=json.loads(str(row["data"])),
        )

    # -- the virtual clock's persisted time -----------------------------------------------------

    def load_clock(self) -> datetime | None:
        rows = list(self.db.table("clock").rows_where("id = 1"))
        return datetime.fromisoformat(rows[0]["now"]) if rows else None

    def save_clock(self, now: datetime) -> None:
        with self.unit_of_work():
            self.db.table("clock").upsert({"id": 1, "now": _ts(now)}, pk="id")
