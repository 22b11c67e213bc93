"""The simulated fleet reads a service's stored state once per call or observation, never
keeps it longer, and sees its own writes at once (the state itself is in the store's
database: tests/test_store_contract.py, test_replicas.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.adapters.sim.fleet import SimulatedFleet
from bot.adapters.sim.profiles import load_profiles
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.flags import SqliteFlags
from bot.adapters.sqlite.fleet_state import SqliteFleetState
from bot.bootstrap import EMBEDDED_MIGRATIONS
from bot.domain.observations import Target, TrafficState
from bot.ports.fleet_state import AbstractFleetState, FleetState

T0 = datetime(2025, 3, 4, 14, 0, tzinfo=UTC)
PAY = Target(service="payments-api", env="prod", region="us-east-1")
CANARY = TrafficState(stable_version="2.3.1", new_version="2.4.0", new_weight=10)


class Counted(AbstractFleetState):
    """The SQLite adapter, counting the reads: whole snapshots, and single targets' rows."""

    def __init__(self, stored: SqliteFleetState) -> None:
        self.stored, self.lock, self.reads, self.rows = stored, stored.lock, 0, 0

    def snapshot(self, service: str) -> FleetState:
        self.reads += 1
        return self.stored.snapshot(service)

    def traffic(self, target: Target) -> TrafficState | None:
        self.rows += 1
        return self.stored.traffic(target)

    def put_traffic(self, target: Target, state: TrafficState) -> None:
        self.stored.put_traffic(target, state)

    def forget_traffic(self, target: Target) -> None:
        self.stored.forget_traffic(target)

    def add_faults(self, service: str, version: str, specs: Sequence[str]) -> None:
        self.stored.add_faults(service, version, specs)

    def clear_faults(self, service: str, version: str | None = None) -> None:
        self.stored.clear_faults(service, version)

    def set_load(self, service: str, rps_per_region: float | None) -> float | None:
        return self.stored.set_load(service, rps_per_region)


def fleets(path: Path) -> tuple[Counted, SimulatedFleet, SimulatedFleet]:
    """Two processes' fleets on one database file; the first one's reads counted."""
    made = []
    for _ in range(2):
        database = Database(path)
        database.migrate(*EMBEDDED_MIGRATIONS)
        made.append((SqliteFleetState(database), SqliteFlags(database)))
    counted = Counted(made[0][0])
    one = SimulatedFleet(counted, load_profiles(), made[0][1])
    return counted, one, SimulatedFleet(made[1][0], load_profiles(), made[1][1])


def test_one_observation_reads_the_state_once(tmp_path: Path) -> None:
    counted, fleet, _ = fleets(tmp_path / "bot.db")
    fleet.apply(PAY, CANARY)
    fleet.inject("payments-api", "2.4.0", ["errors:2x", "dep:postgres=degraded"])
    end = T0 + timedelta(minutes=5)
    counted.reads = 0
    fleet.traces(PAY, T0, end)  # state, faults, load, dependencies: one call
    assert counted.reads == 1
    with fleet.reading("payments-api"):
        fleet.windows([PAY], T0, end)
        fleet.logs(PAY, T0, end)
        fleet.traces(PAY, T0, end)
        fleet.dependencies("payments-api", ["postgres"])
    assert counted.reads == 2


def test_the_state_is_never_kept_past_a_call_and_a_write_is_seen_at_once(
    tmp_path: Path,
) -> None:
    _, fleet, other = fleets(tmp_path / "bot.db")
    assert fleet.state(PAY).new_version is None
    other.apply(PAY, CANARY)  # another process
    assert fleet.state(PAY) == CANARY
    with fleet.reading("payments-api"):
        assert fleet.faults("payments-api", "2.4.0") == []
        fleet.inject("payments-api", "2.4.0", ["errors:2x"])  # its own write, in the scope
        assert [f.spec for f in fleet.faults("payments-api", "2.4.0")] == ["errors:2x"]
    other.clear_faults("payments-api")
    assert fleet.faults("payments-api", "2.4.0") == []


def test_converge_reads_each_target_s_row_not_the_service_s_snapshot(tmp_path: Path) -> None:
    counted, fleet, other = fleets(tmp_path / "bot.db")
    other.apply(PAY, CANARY)  # another process
    counted.reads = 0
    assert fleet.state(PAY) == CANARY
    never_routed = Target(service="payments-api", env="prod", region="eu-west-1")
    assert fleet.state(never_routed) == TrafficState(stable_version="2.3.1", instances_total=12)
    assert (counted.reads, counted.rows) == (0, 2)
    with fleet.reading("payments-api"):  # an observation reads the snapshot, once
        fleet.window(PAY, T0, T0 + timedelta(minutes=1))
        assert fleet.state(PAY) == CANARY
    assert (counted.reads, counted.rows) == (1, 2)
