"""The simulated fleet's state: each target's traffic, the faults injected per version, the
load a run asked for. Kept in the store's database, so every process on it (each replica on
PostgreSQL) simulates one fleet: a weight one applies is the weight the next one draws from."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from bot.domain.observations import Target, TrafficState


@dataclass(frozen=True)
class FleetState:
    """One service's whole simulated state, read at once."""

    traffic: Mapping[tuple[str, str], TrafficState] = field(default_factory=dict)  # (env, region)
    faults: tuple[tuple[str, str], ...] = ()  # (version, canonical spec), in injection order
    rps: float | None = None  # per region, when a run's line set the load


class AbstractFleetState(abc.ABC):
    # One change of the state at a time (the rollback rehearsal's apply and restore): on
    # SQLite the database's own lock (no second lock to deadlock against it), on PostgreSQL an
    # advisory lock, across the replicas.
    lock: AbstractContextManager[object]

    @abc.abstractmethod
    def snapshot(self, service: str) -> FleetState:
        """Everything stored for ``service``, in one read."""

    def traffic(self, target: Target) -> TrafficState | None:
        """The target's stored traffic state alone (a converge reads nothing else); None:
        the router never changed it. A store answers it with one row, not the snapshot."""
        return self.snapshot(target.service).traffic.get((target.env, target.region))

    @abc.abstractmethod
    def put_traffic(self, target: Target, state: TrafficState) -> None: ...

    @abc.abstractmethod
    def forget_traffic(self, target: Target) -> None: ...

    @abc.abstractmethod
    def add_faults(self, service: str, version: str, specs: Sequence[str]) -> None:
        """Store each spec for the version once, in order; one already there is kept."""

    @abc.abstractmethod
    def clear_faults(self, service: str, version: str | None = None) -> None:
        """Forget the faults of one version of the service, or of all its versions."""

    @abc.abstractmethod
    def set_load(self, service: str, rps_per_region: float | None) -> float | None:
        """Serve ``rps_per_region`` in each region (None: the profile's traffic again);
        returns the load it replaced (None: the profile's)."""
