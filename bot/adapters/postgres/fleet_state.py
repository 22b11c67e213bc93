"""The simulated fleet's state in PostgreSQL, shared by the replicas: the same tables as
SQLite's (faults keep their injection order in an identity column), read the same way."""

from __future__ import annotations

from collections.abc import Sequence

from bot.adapters.postgres.database import AdvisoryLock, PgMigrations, PostgresDatabase
from bot.adapters.sqlite.fleet_state import SNAPSHOT, TRAFFIC, fleet_state, traffic_state
from bot.domain.observations import Target, TrafficState
from bot.ports.fleet_state import AbstractFleetState, FleetState

migrations = PgMigrations("release-bot.simulator")
migrations.step(
    "m001_sim_tables",
    "CREATE TABLE sim_traffic (service TEXT NOT NULL, env TEXT NOT NULL, region TEXT NOT NULL,"
    " state TEXT NOT NULL, PRIMARY KEY (service, env, region))",
    "CREATE TABLE sim_faults (id BIGINT GENERATED ALWAYS AS IDENTITY, service TEXT NOT NULL,"
    " version TEXT NOT NULL, spec TEXT NOT NULL, PRIMARY KEY (service, version, spec))",
)
migrations.step(
    "m002_sim_load",
    "CREATE TABLE sim_load (service TEXT PRIMARY KEY, rps DOUBLE PRECISION NOT NULL)",
)


_SNAPSHOT, _TRAFFIC = SNAPSHOT.format("%(service)s", "id"), TRAFFIC.format("%s")


class PostgresFleetState(AbstractFleetState):
    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        self.lock = AdvisoryLock(database, "release-bot.simulator")

    def snapshot(self, service: str) -> FleetState:
        # one statement: one round trip, one consistent read of the three tables
        rows = self.database.rows(_SNAPSHOT, {"service": service})
        return fleet_state([tuple(row.values()) for row in rows])

    def traffic(self, target: Target) -> TrafficState | None:
        rows = self.database.rows(_TRAFFIC, [target.service, target.env, target.region])
        return traffic_state(str(rows[0]["state"])) if rows else None

    def put_traffic(self, target: Target, state: TrafficState) -> None:
        self.database.execute(
            "INSERT INTO sim_traffic (service, env, region, state) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (service, env, region) DO UPDATE SET state = excluded.state",
            [target.service, target.env, target.region, state.model_dump_json()],
        )

    def forget_traffic(self, target: Target) -> None:
        self.database.execute(
            "DELETE FROM sim_traffic WHERE service = %s AND env = %s AND region = %s",
            [target.service, target.env, target.region],
        )

    def add_faults(self, service: str, version: str, specs: Sequence[str]) -> None:
        with self.database.transaction() as conn:
            for spec in specs:
                conn.execute(
                    "INSERT INTO sim_faults (service, version, spec) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    [service, version, spec],
                )

    def clear_faults(self, service: str, version: str | None = None) -> None:
        where, args = "service = %s", [service]
        if version is not None:
            where, args = "service = %s AND version = %s", [service, version]
        self.database.execute(f"DELETE FROM sim_faults WHERE {where}", args)

    def set_load(self, service: str, rps_per_region: float | None) -> float | None:
        with self.database.transaction() as conn:
            rows = conn.execute(
                "SELECT rps FROM sim_load WHERE service = %s FOR UPDATE", [service]
            ).fetchall()
            if rps_per_region is None:
                conn.execute("DELETE FROM sim_load WHERE service = %s", [service])
            else:
                conn.execute(
                    "INSERT INTO sim_load (service, rps) VALUES (%s, %s)"
                    " ON CONFLICT (service) DO UPDATE SET rps = excluded.rps",
                    [service, rps_per_region],
                )
        return float(rows[0]["rps"]) if rows else None
