"""The simulated fleet's share of a tick, for each of 1,000 targets in their first canary
step, in CPU seconds: window, logs and traces each read on its own; one observation as the
tick reads it (the three in one ``reading`` scope: the state read once); and converge's read
of each target's router state.

Each repeat observes the next 10-second window of every target, so nothing is served from
the fleet's cache of the last draw. Run: ``python -m bench.sim_bench``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from bot.adapters.sim.fleet import SimulatedFleet
from bot.adapters.sim.profiles import load_profiles
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.flags import SqliteFlags
from bot.bootstrap import EMBEDDED_MIGRATIONS
from bot.domain.observations import Target, TrafficState

START = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=10)


def fleet_with(targets: int) -> tuple[SimulatedFleet, list[Target]]:
    """A fleet on an in-memory database with ``targets`` services, each at 5 % canary."""
    database = Database()
    database.migrate(*EMBEDDED_MIGRATIONS)
    fleet = SimulatedFleet(database, load_profiles(), SqliteFlags(database))
    where = [Target(service=f"svc-{i:04d}", env="prod", region="-") for i in range(targets)]
    for target in where:
        state = TrafficState(stable_version="1.0.0", new_version="1.0.1", new_weight=5)
        fleet.apply(target, state.model_copy(update={"instances_total": 10}))
    return fleet, where


def observe_all(fleet: SimulatedFleet, targets: list[Target], start: datetime) -> float:
    """CPU seconds (user + sys) to read every target's window, logs and traces once."""
    end = start + WINDOW
    began = time.process_time()
    for target in targets:
        fleet.window(target, start, end)
        fleet.logs(target, start, end)
        fleet.traces(target, start, end)
    return time.process_time() - began


def observe_scoped(fleet: SimulatedFleet, targets: list[Target], start: datetime) -> float:
    """CPU seconds to observe every target as the tick does: one ``reading`` scope each."""
    end = start + WINDOW
    began = time.process_time()
    for target in targets:
        with fleet.reading(target.service):
            fleet.windows([target], start, end)
            fleet.logs(target, start, end)
            fleet.traces(target, start, end)
    return time.process_time() - began


def converge_reads(fleet: SimulatedFleet, targets: list[Target]) -> float:
    """CPU seconds for converge's reads: each target's router state, outside any scope."""
    began = time.process_time()
    for target in targets:
        fleet.state(target)
    return time.process_time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    fleet, targets = fleet_with(args.targets)
    observe_all(fleet, targets, START - WINDOW)  # warm the caches a running bot has warm
    rows: dict[str, list[float]] = {"apart": [], "scoped": [], "converge": []}
    for i in range(args.repeat):  # interleaved: the machine's speed drifts
        rows["apart"].append(observe_all(fleet, targets, START + 2 * i * WINDOW))
        rows["scoped"].append(observe_scoped(fleet, targets, START + (2 * i + 1) * WINDOW))
        rows["converge"].append(converge_reads(fleet, targets))
    what = {
        "apart": "window + logs + traces, each call on its own",
        "scoped": "one observation (window, logs, traces in one reading scope)",
        "converge": "converge: each target's router state",
    }
    for key, seconds in rows.items():
        print(
            f"| {what[key]}, {args.targets} targets (CPU, median of {args.repeat}) "
            f"| {statistics.median(seconds) * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
