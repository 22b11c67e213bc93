"""The simulated fleet's state in SQLite: the tables ``sim_traffic``, ``sim_faults`` and
``sim_load``, one service's rows read in one query."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import sqlite_utils
from sqlite_utils import Migrations

from bot.adapters.sqlite.database import Database
from bot.domain.observations import Target, TrafficState
from bot.ports.fleet_state import AbstractFleetState, FleetState

migrations = Migrations("release-bot.simulator")
# One service's rows of the three tables, each fault with its place in the injection order
# (no ORDER BY: sorting every read costs a third of it, and faults are few); the load's
# first, so PostgreSQL types its column from rps (a bare NULL would make it text).
SNAPSHOT = """
SELECT 'load' AS kind, NULL AS a, NULL AS b, NULL AS state, rps, 0 AS place
  FROM sim_load WHERE service = {0}
UNION ALL SELECT 'traffic', env, region, state, NULL, 0 FROM sim_traffic WHERE service = {0}
UNION ALL SELECT 'fault', version, spec, NULL, NULL, {1} FROM sim_faults WHERE service = {0}
"""
# One target's traffic state (its primary key), placeholders as SNAPSHOT's.
TRAFFIC = "SELECT state FROM sim_traffic WHERE service = {0} AND env = {0} AND region = {0}"
traffic_state = lru_cache(maxsize=4096)(TrafficState.model_validate_json)  # immutable: shared


@migrations()
def m001_sim_tables(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE sim_traffic (
            service TEXT NOT NULL,
            env TEXT NOT NULL,
            region TEXT NOT NULL,
            state TEXT NOT NULL,  -- TrafficState as JSON
            PRIMARY KEY (service, env, region)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE sim_faults (
            service TEXT NOT NULL,
            version TEXT NOT NULL,
            spec TEXT NOT NULL,  -- canonical fault spec, e.g. errors:3x@25
            PRIMARY KEY (service, version, spec)
        )
        """
    )


@migrations()
def m002_sim_load(db: sqlite_utils.Database) -> None:
    # The load a run's line asks for (traffic=): it replaces the profile's rps, flat.
    db.execute(
        """
        CREATE TABLE sim_load (
            service TEXT PRIMARY KEY,
            rps REAL NOT NULL  -- per region
        )
        """
    )


def fleet_state(rows: Sequence[Sequence[object]]) -> FleetState:
    """The snapshot query's rows, as both stores answer it."""
    traffic: dict[tuple[str, str], TrafficState] = {}
    faults: list[tuple[int, str, str]] = []
    rps: float | None = None
    for kind, a, b, state, load, place in rows:
        if kind == "traffic":
            traffic[str(a), str(b)] = traffic_state(str(state))
        elif kind == "fault":
            faults.append((int(place), str(a), str(b)))  # type: ignore[call-overload]
        else:
            rps = float(load)  # type: ignore[arg-type]
    if not faults:
        return FleetState(traffic, (), rps)  # the usual read: nothing injected
    faults.sort()
    return FleetState(traffic, tuple((version, spec) for _, version, spec in faults), rps)


_SNAPSHOT, _TRAFFIC = SNAPSHOT.format("?", "rowid"), TRAFFIC.format("?")


def _where(target: Target) -> tuple[str, str, str]:
    return target.service, target.env, target.region


class SqliteFleetState(AbstractFleetState):
    def __init__(self, database: Database) -> None:
        self.database = database
        self.lock = database.lock

    def snapshot(self, service: str) -> FleetState:
        with self.database.lock:
            # the connection's own execute: sqlite-utils' wrapper adds nothing to a read
            rows = self.database.db.conn.execute(_SNAPSHOT, [service] * 3).fetchall()
        return fleet_state(rows)

    def traffic(self, target: Target) -> TrafficState | None:
        with self.database.lock:
            row = self.database.db.conn.execute(_TRAFFIC, _where(target)).fetchone()
        return None if row is None else traffic_state(row[0])

    def put_traffic(self, target: Target, state: TrafficState) -> None:
        with self.database.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO sim_traffic (service, env, region, state)"
                " VALUES (?, ?, ?, ?)",
                [target.service, target.env, target.region, state.model_dump_json()],
            )

    def forget_traffic(self, target: Target) -> None:
        with self.database.transaction() as db:
            db.execute(
                "DELETE FROM sim_traffic WHERE service = ? AND env = ? AND region = ?",
                [target.service, target.env, target.region],
            )

    def add_faults(self, service: str, version: str, specs: Sequence[str]) -> None:
        with self.database.transaction() as db:
            for spec in specs:
                db.execute(
                    "INSERT OR IGNORE INTO sim_faults (service, version, spec) VALUES (?, ?, ?)",
                    [service, version, spec],
                )

    def clear_faults(self, service: str, version: str | None = None) -> None:
        where, args = "service = ?", [service]
        if version is not None:
            where, args = "service = ? AND version = ?", [service, version]
        with self.database.transaction() as db:
            db.execute(f"DELETE FROM sim_faults WHERE {where}", args)

    def set_load(self, service: str, rps_per_region: float | None) -> float | None:
        with self.database.transaction() as db:
            row = db.execute("SELECT rps FROM sim_load WHERE service = ?", [service]).fetchone()
            if rps_per_region is None:
                db.execute("DELETE FROM sim_load WHERE service = ?", [service])
            else:
                db.execute(
                    "INSERT OR REPLACE INTO sim_load (service, rps) VALUES (?, ?)",
                    [service, rps_per_region],
                )
        return None if row is None else float(row[0])
