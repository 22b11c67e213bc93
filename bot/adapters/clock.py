"""Clocks: the real one, and a virtual one persisted with the store so a resume keeps time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.ports.clock import AbstractClock, AbstractVirtualClock
from bot.ports.store import AbstractReleaseStore


class RealClock(AbstractClock):
    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock(AbstractVirtualClock):
    """Time moves only when ``advance`` is called; it is saved in the database each time."""

    def __init__(self, store: AbstractReleaseStore, start: datetime | None = None) -> None:
        self.store = store
        saved = store.load_clock()
        self._now = saved or (start or datetime.now(UTC)).replace(microsecond=0)
        if saved is None:
            store.save_clock(self._now)

    def now(self) -> datetime:
        return self._now

    def catch_up(self) -> datetime:
        # Another process on the database may have moved the time since (it held the lease).
        saved = self.store.load_clock()
        self._now = max(self._now, saved) if saved is not None else self._now
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now = self.catch_up() + timedelta(seconds=seconds)
        self.store.save_clock(self._now)
        return self._now
